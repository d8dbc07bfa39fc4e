"""Federation trust: pins, CA issuance, peer identification and real mutual-TLS handshakes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.federation.trust import (
    PeerTrust,
    TrustError,
    fingerprint,
    identify,
    load_peer_trust,
    parse_fingerprint,
    peer_client_context,
    transfer_server_context,
)
from keys.tls import TlsFileError, make_dev_certificate

REGION_NAME = "transfer.region.gov.example"
TIMEOUT = 10


def now_utc() -> dt.datetime:
    """The moment of use: certificates are made and judged against the clock as it is
    then, never as it was when this module was imported."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class Pair:
    """A certificate and its key, in memory and as PEM files."""

    cert: x509.Certificate
    cert_path: Path
    key_path: Path

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def _write(
    directory: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate
) -> Pair:
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return Pair(cert, cert_path, key_path)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make_ca(cn: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    made = now_utc()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(made - dt.timedelta(days=1))
        .not_valid_after(made + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate, dns_name: str
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    made = now_utc()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_name))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(made - dt.timedelta(days=1))
        .not_valid_after(made + dt.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


@dataclass(frozen=True)
class Material:
    directory: Path
    ca: Pair  # the region's CA
    region_ca_issued: Pair  # the region gateway's certificate from that CA
    central: Pair  # self-signed dev certificates
    region: Pair
    stranger: Pair
    expired: Pair
    other_ca_issued: Pair  # from a CA nobody trusts


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Material:
    directory = tmp_path_factory.mktemp("fedpki")
    ca_key, ca = _make_ca("Region Gov CA")
    other_key, other_ca = _make_ca("Region Gov CA")  # same name, different key
    return Material(
        directory=directory,
        ca=_write(directory, "ca", ca_key, ca),
        region_ca_issued=_write(directory, "region-ca", *_issue(ca_key, ca, REGION_NAME)),
        central=_write(directory, "central", *make_dev_certificate("central.gov.example")),
        region=_write(directory, "region", *make_dev_certificate("region.gov.example")),
        stranger=_write(directory, "stranger", *make_dev_certificate("stranger.example")),
        expired=_write(
            directory,
            "expired",
            *make_dev_certificate("old.gov.example", now=now_utc() - dt.timedelta(days=800)),
        ),
        other_ca_issued=_write(directory, "other", *_issue(other_key, other_ca, REGION_NAME)),
    )


def trust_file(directory: Path, name: str, *pairs: Pair) -> Path:
    path = directory / f"trust-{name}.pem"
    path.write_bytes(b"".join(p.cert.public_bytes(serialization.Encoding.PEM) for p in pairs))
    return path


def pinned(pki: Material, name: str, *pairs: Pair) -> PeerTrust:
    return load_peer_trust(name, trust_file(pki.directory, name, *pairs), [], "")


# ---------------------------------------------------------------- fingerprints


def test_fingerprint_is_sha256_hex(pki: Material) -> None:
    assert fingerprint(pki.central.der) == hashlib.sha256(pki.central.der).hexdigest()


@pytest.mark.parametrize(
    "form",
    [
        "{colons}",
        "{colons_lower}",
        "{plain}",
        "sha256:{plain}",
        "SHA256:{colons}",
        "  {plain}  ",
        "SHA256 Fingerprint={colons}",
        "sha256 Fingerprint={colons}",
    ],
)
def test_parse_fingerprint_accepts_common_forms(form: str) -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    colons = ":".join(digest[i : i + 2] for i in range(0, 64, 2)).upper()
    text = form.format(colons=colons, colons_lower=colons.lower(), plain=digest.upper())
    assert parse_fingerprint(text) == digest


@pytest.mark.parametrize(
    "text", ["", "abcd", "g" * 64, "a" * 63, "a" * 65, "sha1:" + "a" * 64, "md5:" + "a" * 64]
)
def test_parse_fingerprint_refuses_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
        parse_fingerprint(text)


# ---------------------------------------------------------------- loading


def test_pinned_trust(pki: Material) -> None:
    trust = pinned(pki, "region", pki.region, pki.region)  # a duplicate is kept once
    assert trust.pinned_mode()
    assert trust.cas == ()
    assert [c.subject for c in trust.anchors] == [pki.region.cert.subject]
    assert trust.pins == {fingerprint(pki.region.der)}
    assert not trust.strict_pins
    (entry,) = trust.describe()
    assert entry == {
        "subject": pki.region.cert.subject.rfc4514_string(),
        "fingerprint": fingerprint(pki.region.der),
        "not_after": pki.region.cert.not_valid_after_utc.isoformat(),
        "kind": "pinned",
    }
    assert x509.load_pem_x509_certificates(trust.anchors_pem()) == [pki.region.cert]


def test_ca_trust(pki: Material) -> None:
    path = trust_file(pki.directory, "ca", pki.ca)
    trust = load_peer_trust("region", path, [], f"{REGION_NAME.upper()}.")
    assert not trust.pinned_mode()
    assert trust.cas == (pki.ca.cert,)
    assert trust.pins == frozenset()
    assert trust.server_name == REGION_NAME
    assert [d["kind"] for d in trust.describe()] == ["ca"]


def test_mixed_trust_file(pki: Material) -> None:
    path = trust_file(pki.directory, "mixed", pki.ca, pki.central)
    trust = load_peer_trust("mixed", path, [], REGION_NAME)
    assert not trust.pinned_mode()
    assert [d["kind"] for d in trust.describe()] == ["ca", "pinned"]
    assert trust.accepts(pki.central.der)
    assert trust.accepts(pki.region_ca_issued.der)


def test_missing_trust_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pem"
    with pytest.raises(TrustError, match=f"{path}: peer region: TLS trust file not found"):
        load_peer_trust("region", path, [], "")


def test_trust_file_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(TrustError, match=f"{tmp_path}: .*is a directory"):
        load_peer_trust("region", tmp_path, [], "")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "holds no PEM certificate"),
        (b"just some words\n", "holds no PEM certificate"),
        (
            b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            "holds a malformed PEM certificate",
        ),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "private key"),
    ],
)
def test_unusable_trust_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "trust.pem"
    path.write_bytes(content)
    with pytest.raises(TrustError, match=problem) as info:
        load_peer_trust("region", path, [], "")
    assert str(path) in str(info.value)
    assert "region" in str(info.value)


def test_private_key_next_to_certificate_is_refused(pki: Material, tmp_path: Path) -> None:
    path = tmp_path / "trust.pem"
    path.write_bytes(pki.region.cert_path.read_bytes() + pki.region.key_path.read_bytes())
    with pytest.raises(TrustError, match="private key"):
        load_peer_trust("region", path, [], "")


def test_bad_configured_fingerprint(pki: Material) -> None:
    with pytest.raises(TrustError, match=r"peer region: tls_fingerprints: .*not a SHA-256"):
        load_peer_trust("region", pki.region.cert_path, ["12:34"], "")


def test_ca_mode_needs_a_server_name(pki: Material) -> None:
    with pytest.raises(TrustError, match="tls_server_name"):
        load_peer_trust("region", pki.ca.cert_path, [], " ")


# ---------------------------------------------------------------- accepts / identify


def test_accepts_pinned_certificate_only(pki: Material) -> None:
    trust = pinned(pki, "region", pki.region)
    assert trust.accepts(pki.region.der)
    assert not trust.accepts(pki.central.der)
    assert not trust.accepts(pki.stranger.der)
    assert not trust.accepts(pki.region_ca_issued.der)
    assert not trust.accepts(b"not DER at all")


def test_accepts_checks_the_validity_period(pki: Material) -> None:
    trust = pinned(pki, "old", pki.expired)
    assert not trust.accepts(pki.expired.der)
    assert trust.accepts(pki.expired.der, now=now_utc() - dt.timedelta(days=700))
    region = pinned(pki, "region", pki.region)
    assert not region.accepts(pki.region.der, now=now_utc() - dt.timedelta(days=1))
    assert not region.accepts(pki.region.der, now=now_utc() + dt.timedelta(days=400))
    naive = (now_utc() + dt.timedelta(days=1)).replace(tzinfo=None)
    assert region.accepts(pki.region.der, now=naive)  # naive times are UTC


def test_accepts_certificate_issued_by_the_ca(pki: Material) -> None:
    trust = load_peer_trust("region", pki.ca.cert_path, [], REGION_NAME)
    assert trust.accepts(pki.region_ca_issued.der)
    # Same issuer name, another key: the signature decides.
    assert not trust.accepts(pki.other_ca_issued.der)
    assert not trust.accepts(pki.region.der)
    assert not trust.accepts(pki.ca.der)  # a CA certificate is no gateway's leaf
    assert not trust.accepts(pki.region_ca_issued.der, now=now_utc() + dt.timedelta(days=400))


def test_strict_pins_refuse_a_ca_issued_certificate(pki: Material) -> None:
    colons = ":".join(f"{b:02X}" for b in hashlib.sha256(pki.central.der).digest())
    trust = load_peer_trust("region", pki.ca.cert_path, [colons], REGION_NAME)
    assert trust.strict_pins
    assert trust.pins == {fingerprint(pki.central.der)}
    assert not trust.accepts(pki.region_ca_issued.der)
    assert trust.accepts(pki.central.der)
    # A configured pin of the CA-issued certificate itself lets it in again.
    again = load_peer_trust(
        "region", pki.ca.cert_path, [fingerprint(pki.region_ca_issued.der)], REGION_NAME
    )
    assert again.accepts(pki.region_ca_issued.der)


def test_identify(pki: Material) -> None:
    central = pinned(pki, "central", pki.central)
    region = load_peer_trust("region", pki.ca.cert_path, [], REGION_NAME)
    trusts = [central, region]
    assert identify(trusts, pki.central.der) is central
    assert identify(trusts, pki.region_ca_issued.der) is region
    assert identify(trusts, pki.stranger.der) is None
    assert identify(trusts, pki.other_ca_issued.der) is None
    assert identify([], pki.central.der) is None


def test_identify_refuses_an_ambiguous_certificate(
    pki: Material, caplog: pytest.LogCaptureFixture
) -> None:
    one = pinned(pki, "one", pki.central)
    two = pinned(pki, "two", pki.central, pki.region)
    with caplog.at_level(logging.WARNING, logger="barid.federation"):
        assert identify([one, two], pki.central.der) is None
    assert "several peers" in caplog.text
    assert identify([one, two], pki.region.der) is two
    # The same peer listed twice is not ambiguous.
    assert identify([one, one], pki.central.der) is one


# ---------------------------------------------------------------- real handshakes


@dataclass
class Outcome:
    client_line: bytes | None  # what the client read, None when it failed
    client_error: BaseException | None
    server_saw: bytes | None  # the client's leaf as the server's handler saw it


async def exchange(
    server_context: ssl.SSLContext, client_context: ssl.SSLContext, server_hostname: str
) -> Outcome:
    """One connection over 127.0.0.1: the server greets, the client reads the greeting."""
    seen: list[bytes | None] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
        writer.write(b"220 barid transfer\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    line: bytes | None = None
    error: BaseException | None = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=client_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=TIMEOUT,
            ),
            TIMEOUT,
        )
        try:
            line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        except (ssl.SSLError, ConnectionError) as exc:
            error = exc
        finally:
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await asyncio.wait_for(writer.wait_closed(), TIMEOUT)
    except (ssl.SSLError, ConnectionError) as exc:
        error = exc
    finally:
        server.close()
        await asyncio.wait_for(server.wait_closed(), TIMEOUT)
    return Outcome(line, error, seen[0] if seen else None)


def refused_by_server(outcome: Outcome) -> bool:
    """The server's handler never ran and the client got no greeting.

    With TLS 1.3 the client may finish its side of the handshake before the server
    checks the client certificate; it then reads an alert or end of file.
    """
    return outcome.server_saw is None and not outcome.client_line


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
async def test_pinned_both_ways(pki: Material, version: ssl.TLSVersion) -> None:
    # Central listens; the region connects. Each pins the other's dev certificate.
    central_peers = [pinned(pki, "region", pki.region), pinned(pki, "other", pki.stranger)]
    server_context = transfer_server_context(
        pki.central.cert_path, pki.central.key_path, central_peers
    )
    central_for_region = pinned(pki, "central", pki.central)
    client_context = peer_client_context(
        central_for_region, pki.region.cert_path, pki.region.key_path
    )
    assert client_context.check_hostname is False
    client_context.maximum_version = version
    outcome = await exchange(server_context, client_context, "central.gov.example")
    assert outcome.client_error is None
    assert outcome.client_line == b"220 barid transfer\r\n"
    assert outcome.server_saw == pki.region.der
    assert outcome.server_saw is not None
    assert identify(central_peers, outcome.server_saw) is central_peers[0]


async def test_ca_mode_both_ways(pki: Material) -> None:
    # The region listens with its CA-issued certificate; central checks CA and name.
    region_peers = [pinned(pki, "central", pki.central)]
    server_context = transfer_server_context(
        pki.region_ca_issued.cert_path, pki.region_ca_issued.key_path, region_peers
    )
    region = load_peer_trust("region", pki.ca.cert_path, [], REGION_NAME)
    client_context = peer_client_context(region, pki.central.cert_path, pki.central.key_path)
    assert client_context.check_hostname is True
    outcome = await exchange(server_context, client_context, region.server_name)
    assert outcome.client_line == b"220 barid transfer\r\n"
    assert outcome.server_saw == pki.central.der
    assert identify(region_peers, pki.central.der) is region_peers[0]


async def test_ca_mode_wrong_server_name_fails_on_the_client(pki: Material) -> None:
    server_context = transfer_server_context(
        pki.region_ca_issued.cert_path,
        pki.region_ca_issued.key_path,
        [pinned(pki, "central", pki.central)],
    )
    region = load_peer_trust("region", pki.ca.cert_path, [], "wrong.gov.example")
    client_context = peer_client_context(region, pki.central.cert_path, pki.central.key_path)
    outcome = await exchange(server_context, client_context, region.server_name)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert "Hostname mismatch" in str(outcome.client_error)
    assert outcome.server_saw is None


async def test_ca_mode_server_from_another_ca_fails_on_the_client(pki: Material) -> None:
    server_context = transfer_server_context(
        pki.other_ca_issued.cert_path,
        pki.other_ca_issued.key_path,
        [pinned(pki, "central", pki.central)],
    )
    region = load_peer_trust("region", pki.ca.cert_path, [], REGION_NAME)
    client_context = peer_client_context(region, pki.central.cert_path, pki.central.key_path)
    outcome = await exchange(server_context, client_context, REGION_NAME)
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)


async def test_client_certificate_not_in_the_trust_fails_on_the_server(pki: Material) -> None:
    server_context = transfer_server_context(
        pki.central.cert_path, pki.central.key_path, [pinned(pki, "region", pki.region)]
    )
    client_context = peer_client_context(
        pinned(pki, "central", pki.central), pki.stranger.cert_path, pki.stranger.key_path
    )
    outcome = await exchange(server_context, client_context, "central.gov.example")
    assert refused_by_server(outcome)


async def test_expired_client_certificate_fails_on_the_server(pki: Material) -> None:
    server_context = transfer_server_context(
        pki.central.cert_path, pki.central.key_path, [pinned(pki, "old", pki.expired)]
    )
    client_context = peer_client_context(
        pinned(pki, "central", pki.central), pki.expired.cert_path, pki.expired.key_path
    )
    outcome = await exchange(server_context, client_context, "central.gov.example")
    assert refused_by_server(outcome)


async def test_client_without_certificate_fails(pki: Material) -> None:
    server_context = transfer_server_context(
        pki.central.cert_path, pki.central.key_path, [pinned(pki, "region", pki.region)]
    )
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.load_verify_locations(cafile=str(pki.central.cert_path))
    outcome = await exchange(server_context, client_context, "central.gov.example")
    assert refused_by_server(outcome)


async def test_server_without_peers_lets_nobody_in(pki: Material) -> None:
    server_context = transfer_server_context(pki.central.cert_path, pki.central.key_path, [])
    assert server_context.verify_mode == ssl.CERT_REQUIRED
    client_context = peer_client_context(
        pinned(pki, "central", pki.central), pki.region.cert_path, pki.region.key_path
    )
    outcome = await exchange(server_context, client_context, "central.gov.example")
    assert refused_by_server(outcome)


async def test_server_with_another_certificate_than_the_pinned_one_fails(pki: Material) -> None:
    # The region expects central's certificate, but a stranger answers.
    server_context = transfer_server_context(
        pki.stranger.cert_path, pki.stranger.key_path, [pinned(pki, "region", pki.region)]
    )
    client_context = peer_client_context(
        pinned(pki, "central", pki.central), pki.region.cert_path, pki.region.key_path
    )
    outcome = await exchange(server_context, client_context, "central.gov.example")
    assert isinstance(outcome.client_error, ssl.SSLCertVerificationError)
    assert outcome.server_saw is None


async def test_pinned_ca_issued_certificate_works_thanks_to_partial_chain(pki: Material) -> None:
    # Pinning a certificate that is not self-signed (its CA not trusted) needs
    # X509_V_FLAG_PARTIAL_CHAIN on both sides.
    region_pin = pinned(pki, "region", pki.region_ca_issued)
    assert region_pin.pinned_mode()
    server_context = transfer_server_context(
        pki.central.cert_path, pki.central.key_path, [region_pin]
    )
    client_context = peer_client_context(
        pinned(pki, "central", pki.central),
        pki.region_ca_issued.cert_path,
        pki.region_ca_issued.key_path,
    )
    outcome = await exchange(server_context, client_context, "central.gov.example")
    assert outcome.server_saw == pki.region_ca_issued.der
    assert identify([region_pin], pki.region_ca_issued.der) is region_pin


def test_contexts_require_tls12(pki: Material) -> None:
    server = transfer_server_context(pki.central.cert_path, pki.central.key_path, [])
    client = peer_client_context(
        pinned(pki, "region", pki.region), pki.central.cert_path, pki.central.key_path
    )
    for context in (server, client):
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.verify_flags & ssl.VERIFY_X509_PARTIAL_CHAIN


def test_client_context_reports_our_own_bad_key(pki: Material) -> None:
    with pytest.raises(TlsFileError, match="does not match"):
        peer_client_context(
            pinned(pki, "region", pki.region), pki.central.cert_path, pki.region.key_path
        )
