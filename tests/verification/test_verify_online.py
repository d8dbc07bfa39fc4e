"""The pieces of verification together, on a running gateway: `barid verify`
checks a delivered copy offline and asks the real API for its status; after
`barid revoke` the same command and the API say revoked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from gateway.store.models import Message
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"


async def test_verify_a_delivered_copy_then_revoke_it(
    live: Any, gnupghome: Path, make_cli: Any, tmp_path: Path
) -> None:
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF],
                   extra=[("Barid-Employee-Code", live.credentials[MOH]["code"])])  # fmt: skip
    code, text = await live.send(MOH, [MOF], raw)
    assert code == 250, (code, text)
    registry = text.split()[-1]
    async with live.gateway.sessions() as session:
        token = await session.scalar(
            select(Message.token).where(Message.registry_number == registry)
        )
    assert token
    assert live.gateway.store is not None
    message = await live.gateway.store.message_by_registry(registry)
    assert message is not None
    copy = (await live.gateway.store.copies_for(message.id))[0]
    eml = tmp_path / "copy.eml"
    eml.write_bytes(await live.gateway.store.load_copy(copy.id))

    base = f"http://127.0.0.1:{live.gateway.http_port}"
    cli = make_cli({"BARID_CONFIG": str(live.data / "barid.toml"), "BARID_HTTP__PUBLIC_URL": base})

    async def barid(*args: str) -> Any:
        return await asyncio.to_thread(cli, *args)

    checked = await barid("verify", str(eml), "--json")
    assert checked.code == 0, (checked.out, checked.err)
    out = json.loads(checked.out)
    assert registry in json.dumps(out) and "valid" in json.dumps(out)

    revoked = await barid("revoke", registry, "--reason", "issued in error")
    assert revoked.code == 0, revoked.err
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        verdict = (await http.get(f"/api/v1/verify/{token}")).json()
    assert verdict["status"] == "revoked" and verdict["revoked"]["reason"] == "issued in error"
    again = await barid("verify", token)
    assert again.code == 1 and "revoked" in (again.out + again.err).lower()


async def test_the_qr_made_at_acceptance_round_trips(
    live: Any, gnupghome: Path, make_cli: Any, tmp_path: Path
) -> None:
    """The QR image in a delivered copy's cover: decoded with zxing-cpp, verified
    offline by `barid verify IMAGE`, and valid online."""
    import email
    import email.policy

    import zxingcpp
    from PIL import Image

    raw = pgp_mime(gnupghome, MOH, MOH, [MOF],
                   extra=[("Barid-Employee-Code", live.credentials[MOH]["code"])])  # fmt: skip
    code, text = await live.send(MOH, [MOF], raw)
    assert code == 250, (code, text)
    registry = text.split()[-1]
    assert live.gateway.store is not None
    message = await live.gateway.store.message_by_registry(registry)
    assert message is not None
    copy = (await live.gateway.store.copies_for(message.id))[0]
    parsed = email.message_from_bytes(
        await live.gateway.store.load_copy(copy.id), policy=email.policy.default
    )
    [png] = [
        p.get_payload(decode=True) for p in parsed.walk() if p.get_content_type() == "image/png"
    ]
    image = tmp_path / "qr.png"
    image.write_bytes(png)
    [barcode] = zxingcpp.read_barcodes(Image.open(image))
    assert barcode.text == parsed["Barid-Verify"]  # the QR says exactly the verify URL

    base = f"http://127.0.0.1:{live.gateway.http_port}"
    cli = make_cli({"BARID_CONFIG": str(live.data / "barid.toml"), "BARID_HTTP__PUBLIC_URL": base})
    checked = await asyncio.to_thread(cli, "verify", str(image), "--json")
    assert checked.code == 0, (checked.out, checked.err)
    assert registry in checked.out
    token = barcode.text.rsplit("/v/", 1)[1]
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        assert (await http.get(f"/api/v1/verify/{token}")).json()["status"] == "valid"
        page = await http.get(f"/v/{token}?lang=en")
    assert page.status_code == 200 and registry in page.text
