"""Public verification API end to end (docs/CONTRACT.md §6): tokens of real accepted
messages through a running gateway's HTTP listener, forgeries, unknown and
revoked messages, document look-ups, the published keys (with a retired one)
and the OpenAPI description."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import update

from gateway.http.app import build_app
from gateway.store.db import transaction
from gateway.store.models import Message
from gateway.verification import VerificationService
from gateway.verification.service import MAX_DOCUMENT_MATCHES
from keys.tokens import MAX_TOKEN_CHARS
from testkit.messages import PDF
from testkit.metrics import exposition
from testkit.verification import (
    MOF,
    MOH,
    RETIRED_KEY,
    RETIRED_KID,
    client,
    flip,
    install_retired_key,
    send_letter,
    token_for,
    verdict,
)


@pytest.fixture(scope="session")
def demo_template(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo data directory with a retired token key installed before start."""
    data = tmp_path_factory.mktemp("demo-retired") / "d"
    shutil.copytree(demo_template, data)
    install_retired_key(data / "keys")
    return data


@pytest.fixture
async def http(live: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with client(live) as session:
        yield session


async def stored_token(live: Any, registry: str) -> str:
    message = await live.gateway.store.message_by_registry(registry)
    assert message is not None
    return str(message.token)


async def test_accepted_message_verifies_with_minimal_disclosure(
    live: Any, gnupghome: Path, http: httpx.AsyncClient
) -> None:
    registry = await send_letter(live, gnupghome, PDF, "letter.pdf")
    token = await stored_token(live, registry)

    body = await verdict(http, token)
    assert body["status"] == "valid" and body["problem"] is None
    assert body["registry"] == registry
    assert body["agency"] == {
        "code": "MOH",
        "name_en": "Ministry of Health",
        "name_ar": "وزارة الصحة",
    }
    assert body["sender"] == {"name_en": "Karim Abbas", "name_ar": "كريم عباس"}
    assert {"name": "letter.pdf", "sha256": hashlib.sha256(PDF).hexdigest()} in body["documents"]
    assert body["revoked"] is None
    assert body["key_id"] == live.gateway_keys.signing_key_id
    assert body["issued_at"].endswith("Z") and len(body["issued_at"]) == 20
    assert set(body) == {"status", "problem", "registry", "agency", "issued_at", "sender",
                         "documents", "revoked", "key_id"}  # fmt: skip
    text = json.dumps(body, ensure_ascii=False)
    for secret in ("@", MOF, MOH, "Official letter", "letter text", "trace"):
        assert secret not in text

    # Letter case does not matter; the verdict is never cached.
    lower = await http.get(f"/api/v1/verify/{token.lower()}")
    assert lower.json()["status"] == "valid"
    assert lower.headers["cache-control"] == "no-store"

    # Every one-character change is a forgery, found without the database.
    for position in range(len(token)):
        changed = await verdict(http, flip(token, position))
        assert changed["status"] == "forged", position
        assert changed["problem"] in {"malformed", "bad-signature", "unknown-key",
                                      "unsupported-version"}  # fmt: skip
        assert changed["registry"] is None and changed["agency"] is None

    # Revoked directly in the database: the verdict says so, with the reason.
    async with transaction(live.gateway.sessions) as session:
        await session.execute(
            update(Message)
            .where(Message.registry_number == registry)
            .values(status="revoked", revoked_at="2026-04-01T08:15:30.123456Z",
                    revoked_reason="withdrawn by the issuing agency")
        )  # fmt: skip
    body = await verdict(http, token)
    assert body["status"] == "revoked" and body["registry"] == registry
    assert body["revoked"] == {"at": "2026-04-01T08:15:30Z",
                               "reason": "withdrawn by the issuing agency"}  # fmt: skip
    assert body["agency"]["code"] == "MOH"

    # The metrics show the route template, never the token.
    metrics = exposition()
    assert 'route="/api/v1/verify/{token}"' in metrics
    assert token not in metrics and token.lower() not in metrics and token[:40] not in metrics


async def test_forged_unknown_and_retired_tokens(live: Any, http: httpx.AsyncClient) -> None:
    # Signed by a key the gateway never had.
    stranger = await verdict(http, token_for(ed25519.Ed25519PrivateKey.generate()))
    assert stranger["status"] == "forged" and stranger["problem"] == "unknown-key"
    assert stranger["registry"] is None and stranger["key_id"] is None

    # Signed by the gateway's own key, but for a message that was never stored.
    ours = await verdict(http, token_for(live.gateway_keys.signing_key, serial=424_242))
    assert ours["status"] == "unknown" and ours["problem"] is None
    assert ours["registry"] == "MOH/2026/424242"
    assert ours["issued_at"] == "2026-03-01T09:30:00Z"
    assert ours["key_id"] == live.gateway_keys.signing_key_id
    assert ours["agency"] is None and ours["sender"] is None and ours["documents"] == []

    # Signed before a key rotation: the retired key still verifies (not forged).
    old = await verdict(http, token_for(RETIRED_KEY, serial=17))
    assert old["status"] == "unknown" and old["key_id"] == RETIRED_KID

    # Garbage, too long, and the reserved word "document" used as a token.
    for token in ("NOT-A-TOKEN", "A" * (MAX_TOKEN_CHARS + 1), "document", "AAAA"):
        body = await verdict(http, token)
        assert body["status"] == "forged" and body["problem"] == "malformed", token

    # keys.json: the current key first, then the retired one, cacheable.
    response = await http.get("/.well-known/barid/keys.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    current = live.gateway_keys.signing_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert keys[0] == {"kid": live.gateway_keys.signing_key_id, "alg": "Ed25519",
                       "public_key": _b64url(current), "status": "current"}  # fmt: skip
    retired = RETIRED_KEY.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert {"kid": RETIRED_KID, "alg": "Ed25519", "public_key": _b64url(retired),
            "status": "retired"} in keys  # fmt: skip
    assert len(keys) == 2

    # OpenAPI: valid JSON naming every path, with response schemas.
    response = await http.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = json.loads(response.text)
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {"/api/v1/verify/{token}", "/api/v1/verify/document",
                                  "/.well-known/barid/keys.json", "/healthz"}  # fmt: skip
    for path in spec["paths"].values():
        for operation in path.values():
            assert "200" in operation["responses"]
            for response_spec in operation["responses"].values():
                ref = response_spec["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in spec["components"]["schemas"]

    # Unknown API paths answer in JSON; nothing leaks.
    missing = await http.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "not found"}


async def test_document_lookup(live: Any, gnupghome: Path, http: httpx.AsyncClient) -> None:
    document = b"%PDF-1.4\n" + b"a decree of the minister\n" * 200 + b"%%EOF\n"
    first = await send_letter(live, gnupghome, document, "decree.pdf")
    second = await send_letter(live, gnupghome, document, "decree-copy.pdf")
    sha = hashlib.sha256(document).hexdigest()

    raw = await http.post("/api/v1/verify/document", content=document,
                          headers={"content-type": "application/pdf"})  # fmt: skip
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["status"] == "match" and body["sha256"] == sha
    assert [m["registry"] for m in body["matches"]] == [first, second]
    assert all(m["status"] == "valid" and m["agency"]["code"] == "MOH" for m in body["matches"])
    assert set(body["matches"][0]) == {"registry", "status", "agency"}
    assert "@" not in raw.text and "decree" not in raw.text

    form = await http.post("/api/v1/verify/document",
                           files={"file": ("decree.pdf", document, "application/pdf")})  # fmt: skip
    assert form.status_code == 200, form.text
    assert form.json() == body

    changed = bytearray(document)
    changed[100] ^= 1
    for request in (
        http.post("/api/v1/verify/document", content=bytes(changed)),
        http.post("/api/v1/verify/document", files={"file": ("x.pdf", bytes(changed))}),
    ):
        response = await request
        assert response.status_code == 200
        assert response.json() == {"status": "no-match",
                                   "sha256": hashlib.sha256(changed).hexdigest(), "matches": []}  # fmt: skip

    empty = await http.post("/api/v1/verify/document", content=b"")
    assert empty.status_code == 400 and empty.json() == {"error": "empty document"}
    no_file = await http.post("/api/v1/verify/document", data={"other": "x"},
                              files={"attachment": ("a.pdf", b"abc")})  # fmt: skip
    assert no_file.status_code == 400 and set(no_file.json()) == {"error"}
    broken = await http.post("/api/v1/verify/document", content=b"--x\r\nnonsense",
                             headers={"content-type": "multipart/form-data; boundary=x"})  # fmt: skip
    assert broken.status_code == 400 and set(broken.json()) == {"error"}
    assert (await http.get("/api/v1/verify/document")).json()["status"] == "forged"

    metrics = exposition()
    assert 'route="/api/v1/verify/document"' in metrics


async def test_document_size_limit_and_match_cap(live: Any) -> None:
    """A small limit on an app of its own (the same database): 413 before and while reading."""
    keys = live.gateway_keys
    service = VerificationService(live.gateway.sessions, keys.verification_keys,
                                  current_key_id=keys.signing_key_id)  # fmt: skip
    app = build_app(live.gateway.engine, verification=service, max_document_bytes=1024)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        declared = await http.post("/api/v1/verify/document", content=b"x" * 1025)
        assert declared.status_code == 413 and declared.json() == {"error": "document too large"}

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            for _ in range(3):
                yield b"y" * 512

        streamed = await http.post("/api/v1/verify/document", content=chunks())
        assert streamed.status_code == 413
        upload = await http.post("/api/v1/verify/document", files={"file": ("a", b"z" * 2000)})
        assert upload.status_code == 413 and upload.json() == {"error": "document too large"}
        fits = await http.post("/api/v1/verify/document", content=b"x" * 1024)
        assert fits.status_code == 200 and fits.json()["status"] == "no-match"

    # The existing caller (no verification service) still gets only /healthz.
    plain = httpx.ASGITransport(app=build_app(live.gateway.engine))
    async with httpx.AsyncClient(transport=plain, base_url="http://gateway") as http:
        assert (await http.get("/healthz")).status_code == 200
        assert (await http.get("/.well-known/barid/keys.json")).status_code == 404

    # Many messages holding one document: at most MAX_DOCUMENT_MATCHES registry numbers.
    async with transaction(live.gateway.sessions) as session:
        await _clone_documents(session, count=MAX_DOCUMENT_MATCHES + 5)
    verdict_ = await service.by_document(b"shared annex")
    assert verdict_.status == "match" and len(verdict_.matches) == MAX_DOCUMENT_MATCHES


async def _clone_documents(session: Any, count: int) -> None:
    """`count` stored messages (cloned from a demo-like row) sharing one document."""
    from sqlalchemy import select

    from gateway.store.models import Agency, Blob, Employee, MessageDocument

    agency_id = await session.scalar(select(Agency.id).where(Agency.code == "MOH"))
    employee_id = await session.scalar(select(Employee.id).where(Employee.address == MOH))
    session.add(Blob(id="b" * 32, purpose="original", sha256="0" * 64, size=0, kek_id="k",
                     nonce=b"", wrapped_key=b"", ciphertext=b"",
                     created_at="2026-01-01T00:00:00.000000Z"))  # fmt: skip
    sha = hashlib.sha256(b"shared annex").hexdigest()
    for n in range(count):
        message = Message(
            registry_number=f"MOH/2026/{900_000 + n:06d}", agency_id=agency_id,
            sender_employee_id=employee_id, sender_address=MOH, classification=0,
            subject="s", size=1, sha256="0" * 64, original_blob_id="b" * 32, token="T",
            key_id=None, accepted_at="2026-01-01T00:00:00.000000Z", status="valid",
            client_address="127.0.0.1",
        )  # fmt: skip
        session.add(message)
        await session.flush()
        session.add(MessageDocument(message_id=message.id, position=0, name="annex.pdf",
                                    content_type="application/pdf", size=12, sha256=sha))  # fmt: skip


def _b64url(raw: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def test_decide_needs_the_stored_token_and_documents() -> None:
    """Pure decision: a genuine signature alone never vouches for rows it does not cover."""
    from gateway.verification.service import (
        AgencyFacts,
        DocumentFacts,
        SenderFacts,
        StoredFacts,
        decide,
    )
    from keys.tokens import TokenContents, verify_token

    key = ed25519.Ed25519PrivateKey.generate()
    token = token_for(key, documents=(b"one",))
    contents = verify_token(token, {_kid(key): key.public_key()})
    assert isinstance(contents, TokenContents)
    facts = StoredFacts(
        token=token.lower(), status="valid", revoked_at=None, revoked_reason=None,
        agency=AgencyFacts("MOH", "Ministry of Health", "وزارة الصحة"),
        sender=SenderFacts("Karim Abbas", "كريم عباس"),
        documents=(DocumentFacts("one.pdf", hashlib.sha256(b"one").hexdigest()),),
    )  # fmt: skip
    assert decide(token, contents, facts).status == "valid"
    assert decide(token, contents, None).status == "unknown"
    other_token = StoredFacts(**{**_fields(facts), "token": flip(token, 5)})
    assert decide(token, contents, other_token).status == "unknown"
    other_docs = StoredFacts(
        **{**_fields(facts), "documents": (DocumentFacts("two.pdf", "0" * 64),)}
    )
    unknown = decide(token, contents, other_docs)
    assert unknown.status == "unknown" and unknown.documents == () and unknown.sender is None
    revoked = decide(token, contents, StoredFacts(**{**_fields(facts), "status": "revoked"}))
    assert revoked.as_dict()["revoked"] == {"at": None, "reason": None}


def _kid(key: ed25519.Ed25519PrivateKey) -> str:
    from keys.gateway_keys import key_id

    return key_id(key.public_key())


def _fields(facts: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(facts, f.name) for f in dataclasses.fields(facts)}
