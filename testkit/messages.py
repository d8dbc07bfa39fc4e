"""Helpers for the end-to-end submission tests: messages made the way mail
clients make them, signed with real gpg and openssl, from the demo directory."""

from __future__ import annotations

import base64
import email.utils
import re
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"  # a binary "document"


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def b64(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def entity(headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n" + body


def text_part(text: str) -> bytes:
    return entity([("Content-Type", "text/plain; charset=utf-8"),
                   ("Content-Transfer-Encoding", "8bit")], crlf(text))  # fmt: skip


def attachment(name: str, data: bytes, ctype: str = "application/pdf") -> bytes:
    return entity([("Content-Type", f'{ctype}; name="{name}"'),
                   ("Content-Disposition", f'attachment; filename="{name}"'),
                   ("Content-Transfer-Encoding", "base64")], b64(data))  # fmt: skip


def multipart(parts: Sequence[bytes], boundary: str) -> bytes:
    b = boundary.encode()
    return (b"--" + b + b"\r\n" + (b"\r\n--" + b + b"\r\n").join(parts) + b"\r\n--" + b
            + b"--\r\n")  # fmt: skip


def top_headers(sender: str, to: Sequence[str], subject: str,
                extra: Sequence[tuple[str, str]] = ()) -> list[tuple[str, str]]:  # fmt: skip
    return [
        ("From", sender),
        ("To", ", ".join(to)),
        ("Subject", subject),
        ("Date", email.utils.formatdate(localtime=False)),
        ("Message-ID", f"<{uuid.uuid4().hex}@client.test>"),
        ("MIME-Version", "1.0"),
        *extra,
    ]


def gpg(home: Path, *args: str, data: bytes = b"") -> bytes:
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", *args],
                          input=data, capture_output=True, check=True, timeout=60).stdout  # fmt: skip


def pgp_mime(home: Path, signer: str, sender: str, to: Sequence[str], *,
             extra: Sequence[tuple[str, str]] = (), document: bytes = PDF,
             name: str = "letter.pdf", outside: bytes | None = None,
             tamper: bool = False) -> bytes:  # fmt: skip
    """Thunderbird's shape: multipart/signed over multipart/mixed(text, attachment)."""
    inner = entity([("Content-Type", 'multipart/mixed; boundary="inner-b"')],
                   multipart([text_part("نص الرسالة / letter text"),
                              attachment(name, document)], "inner-b"))  # fmt: skip
    signature = gpg(home, "--local-user", signer, "--detach-sign", "--armor", data=inner)
    if tamper:
        inner = inner.replace(b"letter text", b"letter TEXT")
    signed = entity(
        [("Content-Type", 'multipart/signed; micalg=pgp-sha256; '
                          'protocol="application/pgp-signature"; boundary="sig-b"')],
        multipart([inner, entity([("Content-Type", 'application/pgp-signature; name="signature.asc"')],
                                 signature.rstrip(b"\r\n").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))],
                  "sig-b"),
    )  # fmt: skip
    if outside is None:
        return _wrap(sender, to, extra, signed)
    outer = multipart([signed, attachment("unsigned.pdf", outside)], "outer-b")
    return entity([*top_headers(sender, to, "Official letter", extra),
                   ("Content-Type", 'multipart/mixed; boundary="outer-b"')], outer)  # fmt: skip


def _wrap(sender: str, to: Sequence[str], extra: Sequence[tuple[str, str]], part: bytes) -> bytes:
    """Top-level headers + a MIME entity's own headers and body."""
    return (
        b"".join(
            f"{k}: {v}\r\n".encode() for k, v in top_headers(sender, to, "Official letter", extra)
        )
        + part
    )


def detached_openpgp(home: Path, signer: str, sender: str, to: Sequence[str], *,
                     extra: Sequence[tuple[str, str]] = ()) -> bytes:  # fmt: skip
    sig = gpg(home, "--local-user", signer, "--detach-sign", "--armor", data=PDF)
    body = multipart([text_part("see attached"), attachment("memo.pdf", PDF),
                      attachment("memo.pdf.asc", sig, "application/pgp-signature")], "d-b")  # fmt: skip
    return entity([*top_headers(sender, to, "Memo", extra),
                   ("Content-Type", 'multipart/mixed; boundary="d-b"')], body)  # fmt: skip


def openssl_cms(cert: Path, key: Path, data: bytes, *, attached: bool = False) -> bytes:
    args = ["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-signer", str(cert),
            "-inkey", str(key)]  # fmt: skip
    if attached:
        args.append("-nodetach")
    return subprocess.run(args, input=data, capture_output=True, check=True, timeout=60).stdout


def smime_signed(cert: Path, key: Path, sender: str, to: Sequence[str], *, opaque: bool = False,
                 extra: Sequence[tuple[str, str]] = ()) -> bytes:  # fmt: skip
    """Outlook's shapes: multipart/signed (detached) or application/pkcs7-mime (opaque)."""
    inner = entity([("Content-Type", 'multipart/mixed; boundary="in-b"')],
                   multipart([text_part("official letter"), attachment("order.pdf", PDF)], "in-b"))  # fmt: skip
    if opaque:
        der = openssl_cms(cert, key, inner, attached=True)
        part = entity([("Content-Type", 'application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"'),
                       ("Content-Transfer-Encoding", "base64"),
                       ("Content-Disposition", 'attachment; filename="smime.p7m"')], b64(der))  # fmt: skip
        return _wrap(sender, to, extra, part)
    der = openssl_cms(cert, key, inner)
    part = entity(
        [("Content-Type", 'multipart/signed; protocol="application/pkcs7-signature"; '
                          'micalg=sha-256; boundary="s-b"')],
        multipart([inner, entity([("Content-Type", 'application/pkcs7-signature; name="smime.p7s"'),
                                  ("Content-Transfer-Encoding", "base64"),
                                  ("Content-Disposition", 'attachment; filename="smime.p7s"')],
                                 b64(der))], "s-b"),
    )  # fmt: skip
    return _wrap(sender, to, extra, part)


def detached_cms(cert: Path, key: Path, sender: str, to: Sequence[str], *,
                 extra: Sequence[tuple[str, str]] = ()) -> bytes:  # fmt: skip
    der = openssl_cms(cert, key, PDF)
    body = multipart([text_part("see attached"), attachment("memo.pdf", PDF),
                      attachment("memo.pdf.p7s", der, "application/pkcs7-signature")], "c-b")  # fmt: skip
    return entity([*top_headers(sender, to, "Memo", extra),
                   ("Content-Type", 'multipart/mixed; boundary="c-b"')], body)  # fmt: skip


def unsigned(sender: str, to: Sequence[str], *, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    body = multipart([text_part("no signature"), attachment("x.pdf", PDF)], "u-b")
    return entity([*top_headers(sender, to, "Unsigned", extra),
                   ("Content-Type", 'multipart/mixed; boundary="u-b"')], body)  # fmt: skip


def split_pgp_mime(raw: bytes) -> tuple[bytes, bytes]:
    """The signed entity and the signature of a multipart/signed message (RFC 3156)."""
    boundary = re.search(rb'boundary="([^"]+)"', raw.split(b"\r\n\r\n", 1)[0])
    assert boundary
    delim = b"--" + boundary.group(1)
    parts = raw.split(b"\r\n" + delim)
    first = raw.index(delim + b"\r\n") + len(delim) + 2
    inner = raw[first : raw.index(b"\r\n" + delim, first)]
    signature_part = parts[2] if len(parts) > 2 else b""
    signature = signature_part.split(b"\r\n\r\n", 1)[1]
    return inner, signature
