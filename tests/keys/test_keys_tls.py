from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from keys.tls import TlsFileError, ensure_dev_certificate, load_server_context

HOSTNAME = "barid.test"


@pytest.fixture(scope="module")
def dev_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    assert ensure_dev_certificate(cert, key, HOSTNAME) is True
    return cert, key


def test_dev_certificate_contents(dev_pair: tuple[Path, Path]) -> None:
    cert_path, key_path = dev_pair
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [HOSTNAME, "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    ]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=365) <= lifetime <= datetime.timedelta(days=366)
    now = datetime.datetime.now(datetime.UTC)
    assert cert.not_valid_before_utc <= now < cert.not_valid_after_utc


def test_ensure_dev_certificate_is_idempotent(tmp_path: Path) -> None:
    cert, key = tmp_path / "tls" / "cert.pem", tmp_path / "tls" / "key.pem"
    assert ensure_dev_certificate(cert, key, "mail.example") is True
    before = cert.read_bytes(), key.read_bytes()
    assert ensure_dev_certificate(cert, key, "mail.example") is False
    assert (cert.read_bytes(), key.read_bytes()) == before


def test_ensure_dev_certificate_refuses_half_a_pair(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(b"someone's certificate")
    with pytest.raises(TlsFileError, match=str(key)):
        ensure_dev_certificate(cert, key, HOSTNAME)
    assert cert.read_bytes() == b"someone's certificate"
    assert not key.exists()


@pytest.mark.parametrize("purpose", ["sslserver", "sslclient"])
def test_openssl_accepts_dev_certificate_for_server_and_client_use(
    dev_pair: tuple[Path, Path], openssl_tool: str, purpose: str
) -> None:
    # sslclient: the certificate also authenticates the gateway in mutual TLS.
    cert, _ = dev_pair
    result = subprocess.run(
        [openssl_tool, "verify", "-CAfile", str(cert), "-purpose", purpose, str(cert)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


@pytest.mark.parametrize("server_name", [HOSTNAME, "localhost"])
def test_tls_handshake_over_loopback(dev_pair: tuple[Path, Path], server_name: str) -> None:
    cert, key = dev_pair
    server_context = load_server_context(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    received: list[bytes] = []
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_context.wrap_socket(conn, server_side=True) as tls:
                received.append(tls.recv(100))
                tls.sendall(b"250 ok")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname=server_name) as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            tls.sendall(b"EHLO client")
            assert tls.recv(100) == b"250 ok"
    finally:
        thread.join(10)
        listener.close()
    assert not errors
    assert received == [b"EHLO client"]


def test_handshake_fails_for_a_name_not_in_the_certificate(dev_pair: tuple[Path, Path]) -> None:
    cert, key = dev_pair
    server_context = load_server_context(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with conn, server_context.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            client_context.wrap_socket(raw, server_hostname="other.example")
    finally:
        thread.join(10)
        listener.close()


def test_server_context_requires_tls12(dev_pair: tuple[Path, Path]) -> None:
    context = load_server_context(*dev_pair)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_load_server_context_reports_missing_files(
    dev_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = dev_pair
    with pytest.raises(TlsFileError, match=str(tmp_path / "none.pem")):
        load_server_context(tmp_path / "none.pem", key)
    with pytest.raises(TlsFileError, match=str(tmp_path / "none.key")):
        load_server_context(cert, tmp_path / "none.key")


def test_load_server_context_reports_garbage(dev_pair: tuple[Path, Path], tmp_path: Path) -> None:
    cert, key = dev_pair
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"this is not PEM\n")
    with pytest.raises(TlsFileError, match=f"{garbage}: not a PEM certificate"):
        load_server_context(garbage, key)
    with pytest.raises(TlsFileError, match=f"{garbage}: not a PEM private key"):
        load_server_context(cert, garbage)


def test_load_server_context_reports_mismatched_key(
    dev_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, _ = dev_pair
    other_cert, other_key = tmp_path / "c.pem", tmp_path / "k.pem"
    ensure_dev_certificate(other_cert, other_key, HOSTNAME)
    with pytest.raises(TlsFileError, match="does not match") as info:
        load_server_context(cert, other_key)
    assert str(other_key) in str(info.value)
    assert str(cert) in str(info.value)
