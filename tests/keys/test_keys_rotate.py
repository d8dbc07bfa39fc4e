"""Token signing key rotation: `rotate_signing_key` and `barid keys rotate`."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

import keys.gateway_keys as gateway_keys
from keys.gateway_keys import (
    DKIM_ED25519_KEY_FILE,
    DKIM_RSA_KEY_FILE,
    MASTER_KEY_FILE,
    RETIRED_SIGNING_DIR,
    SIGNING_KEY_FILE,
    GatewayKeys,
    ensure_gateway_keys,
    load_gateway_keys,
    rotate_signing_key,
)
from keys.tokens import TokenContents, issue_token, verify_token

SHA = "0d0f53280c56fa59dd065f1d2a0891f26e32d8eebc792a7ff006b986e576c778"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _token(keys: GatewayKeys, serial: int = 1) -> str:
    return issue_token(keys.signing_key, keys.signing_key_id, agency="MOH", year=2026,
                       serial=serial, issued_at=dt.datetime.now(dt.UTC),
                       document_sha256=[SHA])  # fmt: skip


def _unchanged_files(directory: Path) -> dict[str, bytes]:
    return {
        n: (directory / n).read_bytes()
        for n in (DKIM_RSA_KEY_FILE, DKIM_ED25519_KEY_FILE, MASTER_KEY_FILE)
    }


def test_rotate_keeps_old_tokens_verifying(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ensure_gateway_keys(directory)
    before = load_gateway_keys(directory)
    others = _unchanged_files(directory)
    old_token = _token(before)

    old_id, new_id = rotate_signing_key(directory)
    assert old_id == before.signing_key_id and new_id != old_id

    after = load_gateway_keys(directory)
    assert after.signing_key_id == new_id
    assert set(after.retired_signing_keys) == {old_id}
    assert set(after.verification_keys) == {old_id, new_id}
    checked = verify_token(old_token, after.verification_keys)
    assert isinstance(checked, TokenContents) and checked.key_id == old_id
    new = verify_token(_token(after, 2), after.verification_keys)
    assert isinstance(new, TokenContents) and new.key_id == new_id
    # The old key is not trusted for new tokens by a verifier who only has the new key.
    assert not isinstance(
        verify_token(old_token, {new_id: after.signing_public_key}), TokenContents
    )

    assert _unchanged_files(directory) == others
    assert after.master_key == before.master_key
    assert _mode(directory / SIGNING_KEY_FILE) == 0o600
    retired = directory / RETIRED_SIGNING_DIR / f"{old_id}.pem"
    assert _mode(retired) == 0o644
    assert b"PRIVATE" not in retired.read_bytes()
    assert _mode(directory) == 0o700
    assert not [p for p in directory.rglob(".*.tmp")]

    third_old, third_new = rotate_signing_key(directory)
    assert third_old == new_id
    latest = load_gateway_keys(directory)
    assert latest.signing_key_id == third_new
    assert set(latest.retired_signing_keys) == {old_id, new_id}
    assert isinstance(verify_token(old_token, latest.verification_keys), TokenContents)


def test_crash_between_the_steps_leaves_the_old_key_usable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "keys"
    ensure_gateway_keys(directory)
    before = load_gateway_keys(directory)
    token = _token(before)

    def crash(*_args: Any, **_kwargs: Any) -> None:
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as mp:
        mp.setattr(gateway_keys, "replace_file", crash)
        with pytest.raises(gateway_keys.KeyFileError, match="cannot rotate"):
            rotate_signing_key(directory)
    # The public key was retired first; the old private key is still current.
    halfway = load_gateway_keys(directory)
    assert halfway.signing_key_id == before.signing_key_id
    assert isinstance(verify_token(token, halfway.verification_keys), TokenContents)
    # Running the rotation again completes it (the retired file is already there).
    old_id, new_id = rotate_signing_key(directory)
    assert old_id == before.signing_key_id
    done = load_gateway_keys(directory)
    assert done.signing_key_id == new_id and set(done.retired_signing_keys) == {old_id}
    assert isinstance(verify_token(token, done.verification_keys), TokenContents)


def test_a_foreign_file_in_the_retired_slot_is_refused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    ensure_gateway_keys(directory)
    before = load_gateway_keys(directory)
    ensure_gateway_keys(tmp_path / "other")
    other = load_gateway_keys(tmp_path / "other")
    (directory / RETIRED_SIGNING_DIR).mkdir(mode=0o700)
    foreign = other.signing_public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (directory / RETIRED_SIGNING_DIR / f"{before.signing_key_id}.pem").write_bytes(foreign)
    with pytest.raises(gateway_keys.KeyFileError, match="does not hold the public key"):
        rotate_signing_key(directory)
    assert load_gateway_keys(directory).signing_key_id == before.signing_key_id


def test_barid_keys_rotate(barid: Any, tmp_path: Path) -> None:
    directory = tmp_path / "data" / "keys"
    before = load_gateway_keys(directory)
    token = _token(before)
    result = barid("keys", "rotate", "--json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out == {"retired": before.signing_key_id, "current": out["current"]}
    assert out["current"] == load_gateway_keys(directory).signing_key_id

    text = barid("keys", "rotate")
    assert text.code == 0, text.err
    assert out["current"] in text.out and "restart" in text.out
    latest = load_gateway_keys(directory)
    assert set(latest.retired_signing_keys) == {before.signing_key_id, out["current"]}
    assert isinstance(verify_token(token, latest.verification_keys), TokenContents)

    events = json.loads(barid("audit", "log", "--action", "keys.rotate", "--json").out)
    assert [e["action"] for e in events] == ["keys.rotate", "keys.rotate"]
    raw = json.dumps(events)
    assert before.signing_key_id in raw and "PRIVATE" not in raw
    verified = barid("audit", "verify", "--json")
    assert verified.code == 0 and json.loads(verified.out)["ok"]
