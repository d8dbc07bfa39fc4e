"""Reading a photo or scan of a printed marked page: the per-copy QR code in its footer.

Owns: `copies_in_photo` (the QR codes found in a PNG or JPEG, decoded with
zxing-cpp, the reader `barid verify IMAGE` uses too, and which copy each names)
and the one-line account of what was tried. A marked page's QR code holds
`<http.public_url>/v/<token>?copy=<trace code>` (gateway.stamping.pdf_mark): it
names a copy only when the URL is this gateway's verify URL, the token is signed
by one of this gateway's keys (which gives the registry number) and `copy` is a
canonical trace code. Must not: touch the database, guess a copy from a partial
read, or read the printed text (admin.services.leak_ocr does, when no QR code
here names a copy).
Failure: an image that cannot be decoded or holds no QR code naming a copy is
an empty answer with the reason; never an exception.
"""

from __future__ import annotations

import io
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field

import zxingcpp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image, UnidentifiedImageError

from gateway.stamping.stamper import VERIFY_PATH
from gateway.store.registry import format_registry
from keys.tokens import TokenError, verify_token

_CODE = re.compile(r"[0-9A-Z]{5}-[0-9A-Z]{5}")
_ONLY_QR = zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)


@dataclass(frozen=True)
class PhotoCopies:
    named: list[tuple[str, str]] = field(default_factory=list)  # (registry, trace code)
    tried: list[str] = field(default_factory=list)  # why each other QR code names no copy
    unreadable: bool = False  # the data is no image Pillow decodes


def _qr_texts(data: bytes) -> list[str] | None:
    """The texts of the QR codes in the image; None when it is no image Pillow reads."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("L")
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    return [barcode.text for barcode in zxingcpp.read_barcodes(image, formats=_ONLY_QR)]


def _named(
    text: str, public_url: str, keys: Mapping[str, Ed25519PublicKey]
) -> tuple[str, str] | str:
    """(registry, trace code) the QR text names, or why it names none."""
    prefix = public_url + VERIFY_PATH
    if not text.startswith(prefix):
        return "a QR code that is not this gateway's verify URL"
    token, _, query = text[len(prefix) :].partition("?")
    copy = urllib.parse.parse_qs(query).get("copy", [""])[0]
    if not copy:
        return "this gateway's verify URL naming no copy (the message's QR code, not a page's)"
    if not _CODE.fullmatch(copy):
        return "this gateway's verify URL with a copy that is not a trace code"
    contents = verify_token(token, keys)
    if isinstance(contents, TokenError):
        return "this gateway's verify URL with a token none of its keys signed"
    return format_registry(*contents.registry_parts), copy


def copies_in_photo(
    data: bytes, public_url: str, keys: Mapping[str, Ed25519PublicKey]
) -> PhotoCopies:
    """The copies the image's per-copy QR codes name, and what else was found."""
    texts = _qr_texts(data)
    if texts is None:
        return PhotoCopies(
            tried=["the image cannot be read (not a PNG or JPEG Pillow decodes)"], unreadable=True
        )
    if not texts:
        return PhotoCopies(tried=["no QR code found in the image"])
    found = PhotoCopies()
    for text in texts:
        named = _named(text, public_url, keys)
        if isinstance(named, str):
            found.tried.append(named)
        elif named not in found.named:
            found.named.append(named)
    return found


__all__ = ["PhotoCopies", "copies_in_photo"]
