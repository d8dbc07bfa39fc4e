from __future__ import annotations

import base64
import hashlib
import hmac
import re
import stat
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from keys.dkim_dns import dkim_dns_records, dkim_records
from keys.gateway_keys import (
    DKIM_ED25519_KEY_FILE,
    DKIM_RSA_KEY_FILE,
    MASTER_KEY_FILE,
    RETIRED_SIGNING_DIR,
    SIGNING_KEY_FILE,
    default_keys_dir,
    derive_key,
    ensure_gateway_keys,
    load_gateway_keys,
)
from keys.key_files import KeyFileError, write_new_file

ALL_FILES = {SIGNING_KEY_FILE, DKIM_RSA_KEY_FILE, DKIM_ED25519_KEY_FILE, MASTER_KEY_FILE}


@pytest.fixture(scope="module")
def keys_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = default_keys_dir(tmp_path_factory.mktemp("data"))
    ensure_gateway_keys(directory)
    return directory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _copy_keys(src: Path, dst: Path) -> Path:
    dst.mkdir(mode=0o700)
    for name in ALL_FILES:
        write_new_file(dst / name, (src / name).read_bytes())
    return dst


def test_ensure_creates_everything_once(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "keys"
    first = ensure_gateway_keys(directory)
    assert set(first.created) == ALL_FILES
    assert first.present == ()
    assert first.created_any
    assert _mode(directory) == 0o700
    for name in ALL_FILES:
        assert _mode(directory / name) == 0o600, name
    before = {name: (directory / name).read_bytes() for name in ALL_FILES}

    second = ensure_gateway_keys(directory)
    assert second.created == ()
    assert set(second.present) == ALL_FILES
    assert not second.created_any
    assert {name: (directory / name).read_bytes() for name in ALL_FILES} == before
    assert sorted(p.name for p in directory.iterdir()) == sorted(ALL_FILES)  # no temp files


def test_ensure_only_fills_in_what_is_missing(keys_dir: Path, tmp_path: Path) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    (directory / DKIM_RSA_KEY_FILE).unlink()
    signing_before = (directory / SIGNING_KEY_FILE).read_bytes()
    report = ensure_gateway_keys(directory)
    assert report.created == (DKIM_RSA_KEY_FILE,)
    assert set(report.present) == ALL_FILES - {DKIM_RSA_KEY_FILE}
    assert (directory / SIGNING_KEY_FILE).read_bytes() == signing_before
    assert (directory / DKIM_RSA_KEY_FILE).read_bytes() != (
        keys_dir / DKIM_RSA_KEY_FILE
    ).read_bytes()


def test_load_returns_keys_and_ids(keys_dir: Path) -> None:
    keys = load_gateway_keys(keys_dir)
    raw = keys.signing_public_key.public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    assert keys.signing_key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert re.fullmatch(r"[0-9a-f]{16}", keys.signing_key_id)
    assert isinstance(keys.dkim_rsa_key, rsa.RSAPrivateKey)
    assert keys.dkim_rsa_key.key_size == 2048
    assert isinstance(keys.dkim_ed25519_key, ed25519.Ed25519PrivateKey)
    assert len(keys.master_key) == 32
    assert base64.b64decode((keys_dir / MASTER_KEY_FILE).read_bytes()) == keys.master_key
    assert dict(keys.verification_keys) == {keys.signing_key_id: keys.signing_public_key}
    text = repr(keys)
    assert keys.master_key.hex() not in text
    assert base64.b64encode(keys.master_key).decode() not in text
    assert "master_key" not in text


def test_load_refuses_key_readable_by_others(keys_dir: Path, tmp_path: Path) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    path = directory / SIGNING_KEY_FILE
    path.chmod(0o644)
    with pytest.raises(KeyFileError) as info:
        load_gateway_keys(directory)
    message = str(info.value)
    assert str(path) in message
    assert f"chmod 600 {path}" in message
    assert "0644" in message


def test_load_refuses_group_readable_master_key(keys_dir: Path, tmp_path: Path) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    (directory / MASTER_KEY_FILE).chmod(0o640)
    with pytest.raises(KeyFileError, match=re.escape(str(directory / MASTER_KEY_FILE))):
        load_gateway_keys(directory)


def test_load_refuses_world_writable_directory(keys_dir: Path, tmp_path: Path) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    directory.chmod(0o777)
    with pytest.raises(KeyFileError, match="chmod 700"):
        load_gateway_keys(directory)


def test_load_refuses_missing_file(keys_dir: Path, tmp_path: Path) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    (directory / DKIM_ED25519_KEY_FILE).unlink()
    with pytest.raises(KeyFileError, match=r"dkim-ed25519\.pem: DKIM Ed25519 key is missing"):
        load_gateway_keys(directory)


def test_load_refuses_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="key directory is missing"):
        load_gateway_keys(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        (SIGNING_KEY_FILE, b"-----BEGIN PRIVATE KEY-----\nAAAA\n", "not a valid PEM private key"),
        (MASTER_KEY_FILE, b"not base64!!\n", "not valid base64"),
        (MASTER_KEY_FILE, base64.b64encode(b"short") + b"\n", "must be 32 bytes"),
    ],
)
def test_load_refuses_malformed_files(
    keys_dir: Path, tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    (directory / name).unlink()
    write_new_file(directory / name, content)
    with pytest.raises(KeyFileError, match=reason):
        load_gateway_keys(directory)


def test_load_refuses_wrong_key_type(keys_dir: Path, tmp_path: Path) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    (directory / SIGNING_KEY_FILE).unlink()
    write_new_file(directory / SIGNING_KEY_FILE, (keys_dir / DKIM_RSA_KEY_FILE).read_bytes())
    with pytest.raises(KeyFileError, match="must be an Ed25519 key"):
        load_gateway_keys(directory)


def test_retired_signing_keys_stay_verifiable(keys_dir: Path, tmp_path: Path) -> None:
    directory = _copy_keys(keys_dir, tmp_path / "keys")
    old = ed25519.Ed25519PrivateKey.generate().public_key()
    retired = directory / RETIRED_SIGNING_DIR
    retired.mkdir()
    (retired / "old.pem").write_bytes(
        old.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    keys = load_gateway_keys(directory)
    assert len(keys.verification_keys) == 2
    assert old in keys.verification_keys.values()
    assert keys.verification_keys[keys.signing_key_id] == keys.signing_public_key


def test_write_new_file_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    write_new_file(path, b"first")
    with pytest.raises(FileExistsError):
        write_new_file(path, b"second")
    assert path.read_bytes() == b"first"
    assert _mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def _hkdf_reference(master: bytes, info: bytes, length: int) -> bytes:
    # RFC 5869 written out with hmac, independent of the implementation under test.
    prk = hmac.new(b"\x00" * 32, master, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def test_derive_key_is_stable_and_purpose_specific() -> None:
    master = bytes(range(32))
    audit = derive_key(master, "audit-chain")
    assert audit == _hkdf_reference(master, b"barid/v1/audit-chain", 32)
    assert derive_key(master, "audit-chain") == audit
    assert derive_key(master, "trace-code") != audit
    assert derive_key(master, "audit-chain", 64)[:32] == audit
    assert derive_key(bytes(reversed(range(32))), "audit-chain") != audit


def test_derive_key_pinned_vector() -> None:
    # Pinned: changing the derivation would orphan every keyed value already stored
    # (audit chain MACs, trace codes), so this must never change.
    assert derive_key(bytes(32), "audit-chain").hex() == (
        "4deea02577ce2a3e39995c1375b6eb6ca7399e7be7b3318db531354450d7c291"
    )


@pytest.mark.parametrize("purpose", ["", "Audit", "audit chain", "x" * 65])
def test_derive_key_refuses_bad_purpose(purpose: str) -> None:
    with pytest.raises(ValueError, match="invalid key purpose"):
        derive_key(bytes(32), purpose)


def test_derive_key_refuses_short_master() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        derive_key(bytes(16), "audit-chain")


def test_dkim_dns_records_format(keys_dir: Path) -> None:
    keys = load_gateway_keys(keys_dir)
    rsa_record, ed_record = dkim_records(keys, "barid2026", "MOH.gov.example.")
    assert rsa_record.name == "barid2026-rsa._domainkey.moh.gov.example"
    assert ed_record.name == "barid2026-ed25519._domainkey.moh.gov.example"

    match = re.fullmatch(r"v=DKIM1; k=rsa; p=([A-Za-z0-9+/=]+)", rsa_record.value)
    assert match
    public = serialization.load_der_public_key(base64.b64decode(match[1]))
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == keys.dkim_rsa_key.public_key().public_numbers()

    match = re.fullmatch(r"v=DKIM1; k=ed25519; p=([A-Za-z0-9+/=]+)", ed_record.value)
    assert match
    raw = base64.b64decode(match[1])
    assert len(raw) == 32
    assert raw == keys.dkim_ed25519_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )

    lines = dkim_dns_records(keys, "barid2026", "moh.gov.example")
    assert len(lines) == 2
    for line, record in zip(lines, (rsa_record, ed_record), strict=True):
        assert line.startswith(f"{record.name}. IN TXT ")
        strings = re.findall(r'"([^"]*)"', line)
        assert all(len(s) <= 255 for s in strings)
        assert "".join(strings) == record.value
    assert len(re.findall(r'"([^"]*)"', lines[0])) > 1  # RSA 2048 needs two strings


@pytest.mark.parametrize(
    ("prefix", "domain"), [("bad_prefix", "moh.gov.example"), ("ok", "nodots"), ("ok", "a..b")]
)
def test_dkim_records_refuse_bad_names(keys_dir: Path, prefix: str, domain: str) -> None:
    keys = load_gateway_keys(keys_dir)
    with pytest.raises(ValueError):
        dkim_records(keys, prefix, domain)


def test_dkimpy_signs_and_verifies_with_published_rsa_record(keys_dir: Path) -> None:
    keys = load_gateway_keys(keys_dir)
    record = dkim_records(keys, "barid", "moh.gov.example")[0]
    published = {f"{record.name}.".encode(): record.value.encode()}

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        return published.get(name, b"")

    message = (
        b"From: Ali <ali@moh.gov.example>\r\n"
        b"To: Bo <bo@mof.gov.example>\r\n"
        b"Subject: Circular 12\r\n"
        b"Barid-Registry: MOH/2026/000012\r\n"
        b"\r\n"
        b"Please find the circular attached.\r\n"
    )
    signature = dkim.sign(
        message,
        b"barid-rsa",
        b"moh.gov.example",
        (keys_dir / DKIM_RSA_KEY_FILE).read_bytes(),
        include_headers=[b"from", b"to", b"subject", b"barid-registry"],
    )
    assert signature.startswith(b"DKIM-Signature:")
    assert dkim.verify(signature + message, dnsfunc=dnsfunc)
    tampered = message.replace(b"000012", b"000013")
    assert not dkim.verify(signature + tampered, dnsfunc=dnsfunc)
