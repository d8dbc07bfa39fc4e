"""The verification QR code (ISO/IEC 18004) as a small PNG image (RFC 2083).

Owns: encoding the verify URL at error correction level M, enforcing the
version limit (docs/CONTRACT.md §6: version <= 15) and writing the 1-bit PNG. Must not:
build the URL or the token; callers pass the exact text to encode. The admin
plane's TOTP enrolment uses the same encoder (PNG, or SVG for screens).
zxing-cpp's writer chooses the segment modes: the URL prefix goes in byte mode and
the upper-case base32 token in alphanumeric mode (5.5 bits per character).
"""

from __future__ import annotations

import struct
import zlib

import zxingcpp

MAX_QR_VERSION = 15
QR_EC_LEVEL = "M"
MODULE_PIXELS = 4  # pixels per module: a version 15 code is 85 x 85 modules, 340 px
QUIET_ZONE_MODULES = 4  # ISO/IEC 18004 §6.3.8
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A grey pixel from the writer (0 black, 255 white) as one PNG bit (1 white).
_TO_BIT = bytes.maketrans(bytes((0, 255)), b"01")


class QrTooLarge(ValueError):
    """The text needs a QR code above MAX_QR_VERSION at level M."""


def _encode(text: str) -> zxingcpp.Barcode:
    try:
        return zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level=QR_EC_LEVEL)
    except ValueError as exc:  # longer than version 40 can hold
        raise QrTooLarge(f"{len(text)} characters do not fit any QR code: {exc}") from None


def qr_version(text: str) -> int:
    """The QR version (1..40) the writer uses for `text` at level M."""
    side = int(_encode(text).to_image(scale=1, add_quiet_zones=False).shape[0])
    return (side - 17) // 4


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def png_from_modules(rows: list[bytes], scale: int) -> bytes:
    """A 1-bit greyscale PNG from rows of module values (0 black, 255 white)."""
    width = len(rows[0]) * scale
    pad = -width % 8
    lines = []
    for row in rows:
        bits = row.translate(_TO_BIT).decode("ascii")
        bits = bits.replace("0", "0" * scale).replace("1", "1" * scale) + "1" * pad
        line = b"\x00" + int(bits, 2).to_bytes((width + pad) // 8, "big")  # filter: None
        lines.append(line * scale)
    header = struct.pack(">IIBBBBB", width, len(rows) * scale, 1, 0, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(b"".join(lines))),
            _png_chunk(b"IEND", b""),
        )
    )


def qr_png(text: str, scale: int = MODULE_PIXELS) -> tuple[bytes, int]:
    """(PNG bytes, QR version) for `text`; raises QrTooLarge above version 15."""
    barcode = _encode(text)
    image = barcode.to_image(scale=1, add_quiet_zones=True)
    side = int(image.shape[0])
    version = (side - 2 * QUIET_ZONE_MODULES - 17) // 4
    if version > MAX_QR_VERSION:
        raise QrTooLarge(
            f"QR code would be version {version} (limit {MAX_QR_VERSION} at level M);"
            " shorten http.public_url or send fewer documents"
        )
    flat = bytes(memoryview(image))  # type: ignore[arg-type]
    rows = [flat[i : i + side] for i in range(0, side * side, side)]
    return png_from_modules(rows, scale), version


def qr_modules(text: str) -> list[bytes]:
    """The QR code of `text` as rows of modules (0 dark, 255 light), no quiet zone.

    Any version the writer picks (the version 15 limit is for the verify QR only)."""
    image = _encode(text).to_image(scale=1, add_quiet_zones=False)
    side = int(image.shape[0])
    flat = bytes(memoryview(image))  # type: ignore[arg-type]
    return [flat[i : i + side] for i in range(0, side * side, side)]


def qr_svg(text: str) -> str:
    """The same QR code as an SVG document (for screens: it scales without blur)."""
    return str(zxingcpp.write_barcode_to_svg(_encode(text)))
