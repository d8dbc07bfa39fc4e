"""Federation DKIM: the peer's key file and the verdict on transferred messages."""

from __future__ import annotations

import base64
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gateway.federation import dkim_check
from gateway.federation.dkim_check import (
    DkimRecordsError,
    DkimVerdict,
    load_dkim_records,
    verify_transfer,
)
from gateway.federation.trust import TrustError
from gateway.stamping.dkim import DkimSigner
from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys, default_keys_dir, ensure_gateway_keys, load_gateway_keys

DOMAIN = "region.gov.example"
PREFIX = "barid"
REQUIRED = ("barid-trace", "barid-registry")

MESSAGE = (
    b"From: Registry <registry@region.gov.example>\r\n"
    b"To: minister@central.gov.example\r\n"
    b"Subject: Budget circular\r\n"
    b"Date: Sat, 01 Mar 2025 10:15:30 +0000\r\n"
    b"Message-ID: <c1@region.gov.example>\r\n"
    b"Barid-Registry: REG/2025/000042\r\n"
    b"Barid-Trace: v=1; id=Zm9vYmFy; sig=c2lnbmF0dXJl\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Please find the circular below.\r\n"
    b"Regards\r\n"
)


@pytest.fixture(scope="module")
def gateway_keys(tmp_path_factory: pytest.TempPathFactory) -> GatewayKeys:
    directory = default_keys_dir(tmp_path_factory.mktemp("fedkeys"))
    ensure_gateway_keys(directory)
    return load_gateway_keys(directory)


@pytest.fixture(scope="module")
def signer(gateway_keys: GatewayKeys) -> DkimSigner:
    return DkimSigner(gateway_keys, DOMAIN, PREFIX)


def zone_file(directory: Path, keys: GatewayKeys, *domains: str, name: str = "keys.zone") -> Path:
    """The records as `barid dkim dns` prints them, with a comment and a blank line."""
    lines = ["; DKIM keys of the region gateway", ""]
    for domain in domains:
        lines += [record.zone_line() for record in dkim_records(keys, PREFIX, domain)]
    path = directory / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def records(gateway_keys: GatewayKeys, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("fedzone")
    return load_dkim_records(
        zone_file(
            directory,
            gateway_keys,
            DOMAIN,
            f"mail.{DOMAIN}",
            f"evil{DOMAIN}",
        )
    )


@pytest.fixture(scope="module")
def signed(signer: DkimSigner) -> bytes:
    return signer.signed(MESSAGE)


def split_signatures(signed: bytes) -> tuple[bytes, bytes, bytes]:
    """(RSA field, Ed25519 field, message) of a message Barid's signer signed."""
    second = signed.index(b"DKIM-Signature:", 1)
    end = signed.index(b"\r\n", signed.index(b"b=", second))
    rest = signed[end + 2 :]
    while rest[:1] in (b" ", b"\t"):  # the folded b= continues
        rest = rest[rest.index(b"\r\n") + 2 :]
    ed_end = len(signed) - len(rest)
    return signed[:second], signed[second:ed_end], rest


def check(
    message: bytes,
    records: dict[str, str] | None,
    domains: tuple[str, ...] = (DOMAIN,),
    required: tuple[str, ...] = REQUIRED,
) -> DkimVerdict:
    return verify_transfer(message, domains=domains, records=records, required_headers=required)


def rsa_pem(keys: GatewayKeys) -> bytes:
    return keys.dkim_rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


# ---------------------------------------------------------------- passing


def test_split_signatures_helper(signed: bytes) -> None:
    rsa, ed, message = split_signatures(signed)
    assert message == MESSAGE
    assert b"a=rsa-sha256" in rsa and b"a=ed25519" not in rsa
    assert b"a=ed25519-sha256" in ed and b"a=rsa" not in ed


def test_both_signatures_pass(signed: bytes, records: dict[str, str]) -> None:
    assert check(signed, records) == DkimVerdict(True, DOMAIN, "barid-rsa", "pass")


def test_rsa_alone_passes(signed: bytes, records: dict[str, str]) -> None:
    rsa, _, message = split_signatures(signed)
    assert check(rsa + message, records) == DkimVerdict(True, DOMAIN, "barid-rsa", "pass")


def test_ed25519_alone_passes(signed: bytes, records: dict[str, str]) -> None:
    _, ed, message = split_signatures(signed)
    verdict = check(ed + message, records)
    assert verdict == DkimVerdict(True, DOMAIN, "barid-ed25519", "pass")


def test_peer_domain_is_case_insensitive(signed: bytes, records: dict[str, str]) -> None:
    assert check(signed, records, domains=("REGION.Gov.Example.",)).ok


def test_subdomain_of_a_peer_domain_passes(
    gateway_keys: GatewayKeys, records: dict[str, str]
) -> None:
    message = DkimSigner(gateway_keys, f"mail.{DOMAIN}", PREFIX).signed(MESSAGE)
    verdict = check(message, records, domains=("central.gov.example", DOMAIN))
    assert verdict.ok
    assert verdict.domain == f"mail.{DOMAIN}"


def test_one_good_signature_among_bad_ones_passes(signed: bytes, records: dict[str, str]) -> None:
    rsa, ed, message = split_signatures(signed)
    broken = rsa.replace(b"b=", b"b=BBBB", 1)  # leading "AAAA" (zero bytes) would still verify
    verdict = check(b"DKIM-Signature: garbage\r\n" + broken + ed + message, records)
    assert verdict == DkimVerdict(True, DOMAIN, "barid-ed25519", "pass")


# ---------------------------------------------------------------- failing


def test_changed_body_byte_fails(signed: bytes, records: dict[str, str]) -> None:
    tampered = signed.replace(b"circular below", b"circular bel0w")
    assert tampered != signed
    assert check(tampered, records) == DkimVerdict(False, None, None, "signature did not verify")


def test_changed_barid_trace_fails(signed: bytes, records: dict[str, str]) -> None:
    tampered = signed.replace(b"id=Zm9vYmFy", b"id=Zm9vYmFz")
    assert tampered != signed
    verdict = check(tampered, records)
    assert not verdict.ok
    assert verdict.reason == "signature did not verify"


def test_added_barid_trace_on_top_fails(signed: bytes, records: dict[str, str]) -> None:
    # Over-signing: h= lists barid-trace once more than it occurred.
    verdict = check(b"Barid-Trace: v=1; id=Zm9yZ2Vk\r\n" + signed, records)
    assert not verdict.ok
    assert verdict.reason == "signature did not verify"


def test_added_from_on_top_fails(signed: bytes, records: dict[str, str]) -> None:
    verdict = check(b"From: someone@central.gov.example\r\n" + signed, records)
    assert not verdict.ok


def test_domain_not_of_the_peer_fails(signed: bytes, records: dict[str, str]) -> None:
    verdict = check(signed, records, domains=("central.gov.example",))
    assert verdict == DkimVerdict(False, None, None, f"d={DOMAIN} is not a domain of the peer")
    assert not check(signed, records, domains=()).ok


def test_lookalike_domain_fails(gateway_keys: GatewayKeys, records: dict[str, str]) -> None:
    message = DkimSigner(gateway_keys, f"evil{DOMAIN}", PREFIX).signed(MESSAGE)
    verdict = check(message, records)
    assert not verdict.ok
    assert verdict.reason == f"d=evil{DOMAIN} is not a domain of the peer"
    # A parent of the peer's domain is not the peer's either.
    assert not check(message, records, domains=("gov.example.evil",)).ok


def test_required_header_not_covered_fails(
    gateway_keys: GatewayKeys, records: dict[str, str]
) -> None:
    header = dkim.sign(
        MESSAGE,
        b"barid-rsa",
        DOMAIN.encode(),
        rsa_pem(gateway_keys),
        include_headers=[b"from", b"to", b"subject", b"barid-registry"],
    )
    verdict = check(header + MESSAGE, records)
    assert verdict == DkimVerdict(False, None, None, "signature does not cover barid-trace")
    # Only the required headers present in the message must be covered.
    without_trace = b"".join(
        line + b"\r\n" for line in MESSAGE.split(b"\r\n")[:-1] if b"Barid-Trace" not in line
    )
    header = dkim.sign(
        without_trace,
        b"barid-rsa",
        DOMAIN.encode(),
        rsa_pem(gateway_keys),
        include_headers=[b"from", b"to", b"subject", b"barid-registry"],
    )
    assert check(header + without_trace, records).ok


def test_from_not_covered_fails(signed: bytes, records: dict[str, str]) -> None:
    # dkimpy refuses to sign without From, so edit h=; the policy check comes first.
    rsa, _, message = split_signatures(signed)
    tampered = rsa.replace(b"h=from:from:", b"h=", 1)
    assert tampered != rsa
    verdict = check(tampered + message, records, required=())
    assert verdict.reason == "signature does not cover from"


def test_body_length_limit_fails(gateway_keys: GatewayKeys, records: dict[str, str]) -> None:
    header = dkim.sign(
        MESSAGE,
        b"barid-rsa",
        DOMAIN.encode(),
        rsa_pem(gateway_keys),
        include_headers=[b"from", b"barid-trace", b"barid-registry"],
        length=True,
    )
    assert check(header + MESSAGE, records).reason == "signature has a body length limit (l=)"


def test_no_signature_fails(records: dict[str, str]) -> None:
    assert check(MESSAGE, records) == DkimVerdict(False, None, None, "no signature")


def test_missing_key_record_fails(signed: bytes, records: dict[str, str]) -> None:
    rsa, _, message = split_signatures(signed)
    without_rsa = {name: value for name, value in records.items() if "barid-rsa" not in name}
    verdict = check(rsa + message, without_rsa)
    assert verdict == DkimVerdict(False, None, None, f"no key for selector barid-rsa of {DOMAIN}")
    assert check(signed, {}).reason == f"no key for selector barid-rsa of {DOMAIN}; " + (
        f"no key for selector barid-ed25519 of {DOMAIN}"
    )


def test_wrong_key_in_record_fails(signed: bytes, records: dict[str, str]) -> None:
    # The Ed25519 record holds another key: the signature does not verify.
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    raw = other.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    name = f"barid-ed25519._domainkey.{DOMAIN}"
    swapped = {**records, name: f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"}
    _, ed, message = split_signatures(signed)
    assert check(ed + message, swapped).reason == "signature did not verify"


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\x00\xff garbage without header",
        b"DKIM-Signature: garbage\r\n" + MESSAGE,
        b"DKIM-Signature: v=1; a=rsa-sha256; b=; bh=; h=from\r\n" + MESSAGE,
    ],
)
def test_bad_messages_do_not_raise(message: bytes, records: dict[str, str]) -> None:
    verdict = check(message, records)
    assert not verdict.ok
    assert verdict.reason.isascii() and verdict.reason


def test_records_never_use_dns(
    signed: bytes, records: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_dns(name: bytes, timeout: int = 5) -> bytes | None:
        raise AssertionError("DNS used")

    monkeypatch.setattr(dkim_check.dnsplug, "get_txt", no_dns)
    assert check(signed, records).ok
    assert not check(signed, {}).ok


def test_without_records_dns_is_asked(
    signed: bytes, records: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bytes] = []

    def fake_dns(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        value = records.get(name.decode().rstrip("."))
        return None if value is None else value.encode()

    monkeypatch.setattr(dkim_check.dnsplug, "get_txt", fake_dns)
    assert check(signed, None) == DkimVerdict(True, DOMAIN, "barid-rsa", "pass")
    assert asked == [f"barid-rsa._domainkey.{DOMAIN}.".encode()]
    asked.clear()
    # No lookup at all for a domain that is not the peer's.
    assert not check(signed, None, domains=("central.gov.example",)).ok
    assert asked == []
    monkeypatch.setattr(dkim_check.dnsplug, "get_txt", lambda name, timeout=5: None)
    assert check(signed, None).reason.startswith("no key for selector barid-rsa")


# ---------------------------------------------------------------- the records file


def test_load_records_as_barid_prints_them(gateway_keys: GatewayKeys, tmp_path: Path) -> None:
    expected = {r.name: r.value for r in dkim_records(gateway_keys, PREFIX, DOMAIN)}
    lines = [r.zone_line() for r in dkim_records(gateway_keys, PREFIX, DOMAIN)]
    assert lines[0].count('" "') >= 1  # the RSA value is split into 255-octet strings
    loaded = load_dkim_records(zone_file(tmp_path, gateway_keys, DOMAIN))
    assert loaded == expected


def test_load_records_zone_variants(gateway_keys: GatewayKeys, tmp_path: Path) -> None:
    rsa, ed = dkim_records(gateway_keys, PREFIX, DOMAIN)
    value = rsa.value
    path = tmp_path / "variants.zone"
    path.write_text(
        "# exported from the region's DNS\n"
        f"BARID-RSA._DOMAINKEY.{DOMAIN.upper()}. 3600 IN TXT (\n"
        f'    "{value[:100]}"   ; first part\n'
        f'    "{value[100:]}" )\n'
        "\n"
        f'{ed.name} txt "{ed.value}" ; no class, no dot\n'
    )
    assert load_dkim_records(path) == {rsa.name: rsa.value, ed.name: ed.value}


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ("hello world\n", 1, "expected NAME"),
        (f'; c\n\nbarid-rsa._domainkey.{DOMAIN}. IN TXT "v=DKIM1; p=\n', 3, "unterminated"),
        (f'{DOMAIN}. IN TXT "v=DKIM1; k=ed25519; p=AAAA"\n', 1, "not a DKIM key name"),
        (f'x._domainkey.{DOMAIN}. IN TXT "v=DKIM1; k=rsa; p=notbase64!"\n', 1, "not a usable"),
        (f"x._domainkey.{DOMAIN}. IN TXT v=DKIM1\n", 1, "quoted strings"),
        (f'x._domainkey.{DOMAIN}. IN A "1.2.3.4"\n', 1, "expected NAME"),
        (f'x._domainkey.{DOMAIN}. IN TXT ( "v=DKIM1"\n', 1, "not closed"),
        (f'x._domainkey.{DOMAIN}. IN TXT "v=DKIM1" )\n', 1, "unbalanced"),
        (f'  x._domainkey.{DOMAIN}. IN TXT "v=DKIM1"\n', 1, "column 1"),
        ('"quoted" TXT "v=DKIM1"\n', 1, "starts with its DNS name"),
    ],
)
def test_load_records_errors_name_file_and_line(
    tmp_path: Path, content: str, line: int, problem: str
) -> None:
    path = tmp_path / "bad.zone"
    path.write_text(content)
    with pytest.raises(DkimRecordsError, match=problem) as info:
        load_dkim_records(path)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_load_records_refuses_conflicting_duplicates(
    gateway_keys: GatewayKeys, tmp_path: Path
) -> None:
    rsa, ed = dkim_records(gateway_keys, PREFIX, DOMAIN)
    path = tmp_path / "dup.zone"
    path.write_text(
        f"{rsa.zone_line()}\n{rsa.zone_line()}\n"  # the same twice is fine
        f'{rsa.name}. IN TXT "{ed.value}"\n'
    )
    with pytest.raises(DkimRecordsError, match=f"{path}:3: a second, different record"):
        load_dkim_records(path)


@pytest.mark.parametrize("content", [b"", b"; only a comment\n\n", b"\xff\xfe\x00"])
def test_load_records_refuses_empty_or_binary(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.zone"
    path.write_bytes(content)
    with pytest.raises(DkimRecordsError, match=str(path)):
        load_dkim_records(path)


def test_load_records_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "none.zone"
    with pytest.raises(DkimRecordsError, match=f"{path}: DKIM key file not found") as info:
        load_dkim_records(path)
    assert isinstance(info.value, TrustError)
    assert isinstance(info.value, ValueError)
