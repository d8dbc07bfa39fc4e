"""Test helpers: build MIME messages byte by byte (CRLF) and sign them with real tools.

Owns: message builders, a gpg signer/verifier over a short GnuPG home, and an
openssl CMS signer/verifier with a throwaway CA. Must not: be imported by code.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from keys.demo_material import make_openpgp_key, stop_gpg_agent

SENDER = "ali.hassan@moh.gov.example"
CODE = "MOH-000042-K"


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def entity(headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A MIME entity: header fields, blank line, body (no trailing CRLF added)."""
    head = b"".join(f"{name}: {value}\r\n".encode() for name, value in headers)
    return head + b"\r\n" + body


def text_part(text: str, subtype: str = "plain") -> bytes:
    return entity(
        [("Content-Type", f"text/{subtype}; charset=utf-8"),
         ("Content-Transfer-Encoding", "8bit")],
        crlf(text),
    )  # fmt: skip


def attachment(name: str, data: bytes, content_type: str = "application/pdf") -> bytes:
    return entity(
        [("Content-Type", f'{content_type}; name="{name}"'),
         ("Content-Disposition", f'attachment; filename="{name}"'),
         ("Content-Transfer-Encoding", "base64")],
        b64_lines(data),
    )  # fmt: skip


def multipart_body(parts: list[bytes], boundary: str) -> bytes:
    """Parts joined by RFC 2046 delimiters: the CRLF before each '--b' is the delimiter's."""
    b = boundary.encode()
    out = b"--" + b + b"\r\n"
    out += (b"\r\n--" + b + b"\r\n").join(parts)
    return out + b"\r\n--" + b + b"--\r\n"


def multipart(subtype: str, parts: list[bytes], boundary: str, extra: str = "") -> bytes:
    return entity(
        [("Content-Type", f'multipart/{subtype}; boundary="{boundary}"{extra}')],
        multipart_body(parts, boundary),
    )


def message(body_entity: bytes, headers: list[tuple[str, str]] | None = None) -> bytes:
    """Top-level header fields followed by the entity's own header fields and body."""
    top = headers if headers is not None else default_headers()
    return (
        b"".join(f"{n}: {v}\r\n".encode() for n, v in top) + b"MIME-Version: 1.0\r\n" + body_entity
    )


def with_headers(mime_entity: bytes, headers: list[tuple[str, str]] | None = None) -> bytes:
    """Top-level fields in front of an entity that already has MIME-Version."""
    top = headers if headers is not None else default_headers()
    return b"".join(f"{n}: {v}\r\n".encode() for n, v in top) + mime_entity


def to_crlf(data: bytes) -> bytes:
    """What a client's SMTP layer sends: every line ending as CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def default_headers(**overrides: str) -> list[tuple[str, str]]:
    fields = {
        "From": f'"Ali Hassan" <{SENDER}>',
        "To": "minister@moh.gov.example",
        "Subject": "Budget letter",
        "Message-ID": "<m1@moh.gov.example>",
        "Date": "Mon, 01 Sep 2025 10:00:00 +0300",
        "Barid-Employee-Code": CODE,
    }
    fields.update(overrides)
    return [(k.replace("_", "-"), v) for k, v in fields.items()]


def pdf_bytes(size: int = 2000) -> bytes:
    body = bytes((i * 37 + 11) % 256 for i in range(size))
    return b"%PDF-1.7\n" + body + b"\n%%EOF\n"


# ---------------------------------------------------------------- OpenPGP (gpg)


@dataclass
class GpgSigner:
    home: Path
    fingerprint: str

    def _run(self, *args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["gpg", "--homedir", str(self.home), "--batch", "--yes", *args],
            input=data, capture_output=True, timeout=60, check=False,
        )  # fmt: skip

    def sign(self, data: bytes, armor: bool = True) -> bytes:
        args = ["--detach-sign", "--local-user", self.fingerprint, "--digest-algo", "SHA256"]
        if armor:
            args.append("--armor")
        done = self._run(*args, data=data)
        assert done.returncode == 0, done.stderr.decode()
        # gpg writes armor with LF; a mail client sends it with CRLF line ends.
        return done.stdout.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") if armor else done.stdout

    def verify(self, data: bytes, signature: bytes) -> bool:
        with tempfile.TemporaryDirectory(prefix="v", dir="/tmp") as tmp:
            sig_file, data_file = Path(tmp) / "s", Path(tmp) / "d"
            sig_file.write_bytes(signature)
            data_file.write_bytes(data)
            done = self._run("--verify", str(sig_file), str(data_file), data=b"")
        return done.returncode == 0

    @classmethod
    def create(cls) -> GpgSigner:
        home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))
        fingerprint, _, _ = make_openpgp_key(home, "Ali Hassan", SENDER, CODE)
        return cls(home, fingerprint)

    def close(self) -> None:
        stop_gpg_agent(self.home)
        shutil.rmtree(self.home, ignore_errors=True)


# ---------------------------------------------------------------- CMS (openssl)


@dataclass
class CmsSigner:
    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def cert(self) -> Path:
        return self.directory / "cert.pem"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    def openssl(self, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["openssl", *args], input=data, capture_output=True, timeout=60, check=False
        )

    def sign(self, data: bytes, *, detached: bool, binary: bool, der: bool = False) -> bytes:
        args = ["cms", "-sign", "-signer", str(self.cert), "-inkey", str(self.key), "-md", "sha256"]
        if not detached:
            args.append("-nodetach")
        if binary:
            args.append("-binary")
        args += ["-outform", "DER"] if der else ["-outform", "SMIME", "-crlfeol"]
        done = self.openssl(*args, data=data)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout

    def verify_detached(self, data: bytes, signature_der: bytes) -> bool:
        with tempfile.TemporaryDirectory(prefix="c", dir="/tmp") as tmp:
            sig, content = Path(tmp) / "s.der", Path(tmp) / "d"
            sig.write_bytes(signature_der)
            content.write_bytes(data)
            done = self.openssl(
                "cms", "-verify", "-binary", "-inform", "DER", "-in", str(sig),
                "-content", str(content), "-CAfile", str(self.ca), "-purpose", "any",
                "-out", "/dev/null",
            )  # fmt: skip
        return done.returncode == 0

    def verify_opaque(self, signature_der: bytes) -> bytes | None:
        """The encapsulated content when the signed-data verifies, else None."""
        done = self.openssl(
            "cms", "-verify", "-binary", "-inform", "DER", "-CAfile", str(self.ca),
            "-purpose", "any", data=signature_der,
        )  # fmt: skip
        return done.stdout if done.returncode == 0 else None

    @classmethod
    def create(cls) -> CmsSigner:
        from keys.demo_material import (
            make_ca,
            make_smime_certificate,
            write_certificate_pem,
            write_private_key_pem,
        )

        directory = Path(tempfile.mkdtemp(prefix="cms", dir="/tmp"))
        ca_key, ca_cert = make_ca("MOH test CA")
        key, cert = make_smime_certificate(ca_key, ca_cert, "Ali Hassan", SENDER, CODE)
        write_certificate_pem(directory / "ca.pem", ca_cert)
        write_certificate_pem(directory / "cert.pem", cert)
        write_private_key_pem(directory / "key.pem", key)
        return cls(directory)

    def close(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
