"""Helpers for the public verification tests: a retired token key the gateway
still publishes, signed demo letters, and tokens made outside the gateway."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keys.gateway_keys import RETIRED_SIGNING_DIR, key_id
from keys.tokens import issue_token
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
# A fixed key, retired before the tests start: its public half sits in
# <keys_dir>/retired-signing/, so tokens it signed must still verify.
RETIRED_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
RETIRED_KID = key_id(RETIRED_KEY.public_key())


def install_retired_key(keys_dir: Path) -> None:
    retired = keys_dir / RETIRED_SIGNING_DIR
    retired.mkdir(mode=0o700, exist_ok=True)
    pem = RETIRED_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (retired / "2025-retired.pem").write_bytes(pem)


def token_for(key: ed25519.Ed25519PrivateKey, *, agency: str = "MOH", serial: int = 987_654,
              documents: tuple[bytes, ...] = (b"a document",)) -> str:  # fmt: skip
    return issue_token(
        key, key_id(key.public_key()), agency=agency, year=2026, serial=serial,
        issued_at=dt.datetime(2026, 3, 1, 9, 30, tzinfo=dt.UTC),
        document_sha256=[hashlib.sha256(d).hexdigest() for d in documents],
    )  # fmt: skip


def flip(token: str, position: int) -> str:
    """The token with one character replaced by another base32 character."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    replacement = alphabet[(alphabet.index(token[position]) + 1) % len(alphabet)]
    return token[:position] + replacement + token[position + 1 :]


async def send_letter(live: Any, gnupghome: Path, document: bytes, name: str) -> str:
    """Submit a signed letter from MOH's minister to MOF's; its registry number."""
    extra = [("Barid-Employee-Code", live.credentials[MOH]["code"])]
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=extra, document=document, name=name)
    code, text = await live.send(MOH, [MOF], raw)
    assert code == 250, (code, text)
    return str(text.split()[-1])


def client(live: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{live.gateway.http_port}", timeout=30)


async def verdict(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    response = await http.get(f"/api/v1/verify/{token}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = json.loads(response.text)
    return body
