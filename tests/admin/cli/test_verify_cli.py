"""`barid verify TOKEN|FILE|IMAGE`: offline signature check of a token, a verify
URL, a delivered .eml and a (photographed) QR code; the online status question."""

from __future__ import annotations

import datetime as dt
import http.server
import io
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageFilter

from gateway.stamping.qr import qr_png
from keys.gateway_keys import GatewayKeys, load_gateway_keys
from keys.tokens import issue_token

SHA1 = "0d0f53280c56fa59dd065f1d2a0891f26e32d8eebc792a7ff006b986e576c778"
SHA2 = "a" * 64
ISSUED = dt.datetime(2026, 3, 1, 10, 15, 30, tzinfo=dt.UTC)
PUBLIC_URL = "http://localhost:8080"  # barid init's default http.public_url
UNREACHABLE = "http://127.0.0.1:9"


def _keys(tmp_path: Path) -> GatewayKeys:
    return load_gateway_keys(tmp_path / "data" / "keys")


def _token(keys: GatewayKeys, serial: int = 42, documents: int = 2) -> str:
    return issue_token(keys.signing_key, keys.signing_key_id, agency="MOH", year=2026,
                       serial=serial, issued_at=ISSUED,
                       document_sha256=[SHA1, SHA2][:documents])  # fmt: skip


def _flip(token: str, at: int = 60) -> str:
    replacement = "B" if token[at] != "B" else "C"
    return token[:at] + replacement + token[at + 1 :]


def _json(result: Any) -> dict[str, Any]:
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert isinstance(data, dict)
    return data


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fails any attempt to open a URL; the list records the attempts."""
    attempts: list[str] = []

    def refuse(request: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(getattr(request, "full_url", str(request)))
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return attempts


def test_token_is_valid_offline(barid: Any, tmp_path: Path, no_network: list[str]) -> None:
    keys = _keys(tmp_path)
    token = _token(keys)
    out = _json(barid("verify", token, "--offline", "--json"))
    assert out["ok"] and out["signature"] == "valid" and out["source"] == "token"
    assert out["registry"] == "MOH/2026/000042" and out["agency"] == "MOH"
    assert out["issued_at"] == "2026-03-01T10:15:30Z"
    assert out["key_id"] == keys.signing_key_id and out["key"] == "current"
    assert out["document_count"] == 2
    assert [d["sha256_prefix"] for d in out["digests"]] == [SHA1[:32], SHA2[:32]]
    assert out["online"] is None
    assert no_network == []

    text = barid("verify", token.lower(), "--offline")  # read case-insensitively
    assert text.code == 0, text.err
    for fact in ["valid", "MOH/2026/000042", "2026-03-01T10:15:30Z", keys.signing_key_id,
                 SHA1[:32], "not asked"]:  # fmt: skip
        assert fact in text.out, text.out


def test_changed_token_is_forged(barid: Any, tmp_path: Path, no_network: list[str]) -> None:
    token = _token(_keys(tmp_path))
    for forged in [_flip(token), _flip(token, 20), token[:-1], "NOTATOKEN"]:
        result = barid("verify", forged, "--json")  # no network question for a forgery
        assert result.code == 1, result.err
        out = json.loads(result.out)
        assert not out["ok"] and out["signature"] == "forged"
        assert "forged or damaged" in out["reason"]
        line = result.err.strip()
        assert line.startswith("barid: ") and "\n" not in line and "Traceback" not in line
    text = barid("verify", _flip(token), "--offline")
    assert text.code == 1 and "FORGED" in text.out
    assert no_network == []


def test_verify_url_and_delivered_message(
    barid: Any, tmp_path: Path, no_network: list[str]
) -> None:
    token = _token(_keys(tmp_path), documents=1)
    url = f"{PUBLIC_URL}/v/{token}"
    out = _json(barid("verify", url, "--offline", "--json"))
    assert out["source"] == "url" and out["registry"] == "MOH/2026/000042"

    eml = tmp_path / "delivered.eml"
    # A long header, folded as a mail client would store it.
    eml.write_bytes(
        b"From: minister@moh.gov.example\r\nTo: minister@mof.gov.example\r\n"
        b"Subject: Letter\r\nBarid-Registry: MOH/2026/000042\r\n"
        + f"Barid-Verify:\r\n {url}\r\n".encode()
        + b"Content-Type: text/plain\r\n\r\nBody\r\n"
    )
    out = _json(barid("verify", str(eml), "--offline", "--json"))
    assert out["source"] == "eml" and out["signature"] == "valid"
    assert out["document_count"] == 1

    plain = tmp_path / "plain.eml"
    plain.write_bytes(b"From: a@b.example\r\nSubject: x\r\n\r\nBody\r\n")
    result = barid("verify", str(plain), "--offline")
    assert result.code == 1 and "no Barid-Verify header" in result.err
    assert no_network == []


def _photographed(png: bytes) -> bytes:
    """The QR as a phone might see it: larger, slightly turned, softened, JPEG."""
    with Image.open(io.BytesIO(png)) as image:
        grey = image.convert("L")
    big = grey.resize((int(grey.width * 2.3), int(grey.height * 2.3)), Image.Resampling.BILINEAR)
    turned = big.rotate(7, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    soft = turned.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    soft.convert("RGB").save(out, format="JPEG", quality=60)
    return out.getvalue()


def test_qr_code_image(barid: Any, tmp_path: Path, no_network: list[str]) -> None:
    token = _token(_keys(tmp_path))
    png, _version = qr_png(f"{PUBLIC_URL}/v/{token}")
    image = tmp_path / "qr.png"
    image.write_bytes(png)
    out = _json(barid("verify", str(image), "--offline", "--json"))
    assert out["source"] == "image" and out["signature"] == "valid"
    assert out["token"] == token

    photo = tmp_path / "photo.jpg"
    photo.write_bytes(_photographed(png))
    out = _json(barid("verify", str(photo), "--offline", "--json"))
    assert out["source"] == "image" and out["registry"] == "MOH/2026/000042"

    blank = tmp_path / "blank.png"
    Image.new("L", (200, 200), 255).save(blank)
    result = barid("verify", str(blank), "--offline")
    assert result.code == 1 and "no QR code" in result.err
    assert no_network == []


def test_token_of_a_retired_key_still_verifies(barid: Any, tmp_path: Path) -> None:
    old = _token(_keys(tmp_path))
    rotated = _json(barid("keys", "rotate", "--json"))
    out = _json(barid("verify", old, "--offline", "--json"))
    assert out["signature"] == "valid" and out["key"] == "retired"
    assert out["key_id"] == rotated["retired"]
    new = _token(_keys(tmp_path), serial=43)
    out = _json(barid("verify", new, "--offline", "--json"))
    assert out["key"] == "current" and out["key_id"] == rotated["current"]


def test_online_status_not_reachable(
    barid: Any, tmp_path: Path, make_cli: Callable[[dict[str, str]], Any]
) -> None:
    token = _token(_keys(tmp_path))
    cli = make_cli({**barid.env, "BARID_HTTP__PUBLIC_URL": UNREACHABLE})
    result = cli("verify", token)
    assert result.code == 0, result.err  # a valid signature; the status is unknown
    assert "online status: not reachable" in result.out
    out = _json(cli("verify", token, "--json"))
    assert out["online"]["status"] == "not reachable"
    offline = cli("verify", token, "--offline")
    assert offline.code == 0 and "not reachable" not in offline.out


class _Gateway(http.server.BaseHTTPRequestHandler):
    """Answers /api/v1/verify/<token> with the reply the test sets."""

    reply: tuple[int, bytes] = (404, b"not found")
    paths: list[str] = []  # noqa: RUF012

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        code, body = type(self).reply
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def status_server() -> Iterator[tuple[str, type[_Gateway]]]:
    handler = type("Handler", (_Gateway,), {"paths": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_online_status_answers(barid: Any, tmp_path: Path, make_cli: Callable[[dict[str, str]], Any],
                               status_server: tuple[str, type[_Gateway]]) -> None:  # fmt: skip
    url, handler = status_server
    token = _token(_keys(tmp_path))
    cli = make_cli({**barid.env, "BARID_HTTP__PUBLIC_URL": url})

    handler.reply = (200, b'{"status": "valid", "revoked": null}')
    out = _json(cli("verify", f"{url}/v/{token.lower()}", "--json"))
    assert out["ok"] and out["online"] == {"status": "valid", "revoked": None}
    assert handler.paths[-1] == f"/api/v1/verify/{token}"

    handler.reply = (404, b"<html>no such page</html>")  # the endpoint is not there yet
    result = cli("verify", token)
    assert result.code == 0 and "online status: not reachable" in result.out

    handler.reply = (200, json.dumps({"status": "revoked", "revoked": {
        "at": "2026-03-02T09:00:00Z", "reason": "issued in error"}}).encode())  # fmt: skip
    result = cli("verify", token)
    assert result.code == 1
    assert "REVOKED at 2026-03-02T09:00:00Z: issued in error" in result.out
    line = result.err.strip()
    assert line.startswith("barid: MOH/2026/000042") and "\n" not in line
    out = json.loads(cli("verify", token, "--json").out)
    assert not out["ok"] and out["online"]["revoked"]["reason"] == "issued in error"

    handler.reply = (200, b'{"status": "unknown", "revoked": null}')
    result = cli("verify", token)
    assert result.code == 0 and "no record" in result.out

    count = len(handler.paths)
    assert cli("verify", token, "--offline").code == 0
    assert len(handler.paths) == count  # --offline asks nobody
