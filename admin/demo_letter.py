"""The demo's sample official letter: PGP/MIME, signed with a demo employee's key.

Owns: the bytes of `<data_dir>/demo/letters/welcome.eml`, shaped as Thunderbird
sends signed mail (RFC 3156 `multipart/signed` over `multipart/mixed` with a
bilingual text part and a small PDF document), so that a newcomer can submit a
real official message with one `swaks --data @file` and read it back over
IMAP. Must not: be used outside the demo; the signature is made with the
demo's throwaway gpg home during `barid demo`.
"""

from __future__ import annotations

import base64
import email.utils
import secrets
from pathlib import Path

import gnupg

# A minimal, valid one-page PDF saying "Barid demo letter".
DEMO_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Contents 4 0 R"
    b"/Resources<</Font<</F1 5 0 R>>>>>>endobj\n"
    b"4 0 obj<</Length 52>>stream\nBT /F1 24 Tf 72 760 Td (Barid demo letter) Tj ET\n"
    b"endstream endobj\n5 0 obj<</Type/Font/Subtype/Type1/BaseFont/Helvetica>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)
TEXT = (
    "السلام عليكم،\r\nمرفق خطاب رسمي تجريبي موقّع من بريد.\r\n\r\n"
    "Greetings,\r\nattached is a signed official demo letter from Barid.\r\n"
)


class DemoLetterError(Exception):
    pass


def _b64(data: bytes) -> bytes:
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return encoded


def build_letter(
    gnupghome: Path, *, sender: str, recipient: str, sender_code: str, domain: str
) -> bytes:
    """The signed letter from `sender` (whose secret key is in `gnupghome`)."""
    boundary = secrets.token_hex(8)
    inner = (
        (
            f'Content-Type: multipart/mixed; boundary="mixed-{boundary}"\r\n\r\n'
            f"--mixed-{boundary}\r\n"
            'Content-Type: text/plain; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + _b64(TEXT.encode("utf-8"))
        + (
            f"--mixed-{boundary}\r\n"
            'Content-Type: application/pdf; name="letter.pdf"\r\n'
            'Content-Disposition: attachment; filename="letter.pdf"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + _b64(DEMO_PDF)
        + f"--mixed-{boundary}--\r\n".encode()
    )
    gpg = gnupg.GPG(gnupghome=str(gnupghome))
    signed = gpg.sign(inner, keyid=sender, detach=True, binary=False)
    signature = str(signed).encode("ascii").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if not signature.startswith(b"-----BEGIN PGP SIGNATURE-----"):
        raise DemoLetterError(f"gpg could not sign the demo letter: {signed.status}")
    headers = [
        ("From", sender),
        ("To", recipient),
        ("Subject", "Demo official letter"),
        ("Date", email.utils.formatdate(localtime=False)),
        ("Message-ID", f"<{secrets.token_hex(12)}@{domain}>"),
        ("MIME-Version", "1.0"),
        ("Barid-Employee-Code", sender_code),
        (
            "Content-Type",
            'multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature";'
            f' boundary="signed-{boundary}"',
        ),
    ]
    head = "".join(f"{name}: {value}\r\n" for name, value in headers).encode()
    return (
        head
        + b"\r\n"
        + f"--signed-{boundary}\r\n".encode()
        + inner
        + f"\r\n--signed-{boundary}\r\n".encode()
        + b'Content-Type: application/pgp-signature; name="signature.asc"\r\n\r\n'
        + signature.rstrip(b"\r\n")
        + f"\r\n--signed-{boundary}--\r\n".encode()
    )
