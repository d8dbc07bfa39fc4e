"""Reading the printed trace code off a photo or scan of a marked page, with Tesseract,
for when its per-copy QR code cannot be read (cut off, smudged, blacked out).

Owns: `printed_codes` (the trace codes and registry numbers Tesseract reads in the
image's text: every `XXXXX-XXXXX` that the forgiving trace-code reading of
admin.services.leak_input accepts, and every registry number) and the one-line
account of what was tried. Tesseract is Debian's `tesseract` binary (package
tesseract-ocr, English data), run on the image as given through stdin, page
segmentation as one block of text, then automatic. Must not: touch the database,
decide which copy matches, or write anything to disk. Failure: no tesseract
installed, an image it cannot read, a run over `OCR_TIMEOUT` seconds, or no code
in its text is an empty answer whose `tried` says so plainly; never an exception.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from PIL import Image, UnidentifiedImageError

from admin.services.leak_input import code_candidates

OCR_TIMEOUT = 60
_PASSES = ("6", "3")  # --psm: one uniform block of text, then fully automatic
_CODE = re.compile(
    r"(?<![0-9A-Za-z])([0-9A-Za-z]{5}) ?[-\u2010-\u2014] ?([0-9A-Za-z]{5})(?![0-9A-Za-z])"
)
_REGISTRY = re.compile(r"(?<![0-9A-Z-])([A-Z0-9][A-Z0-9-]*/\d{4}/\d+)")
NO_TESSERACT = "the printed trace code was not read: tesseract is not installed (tesseract-ocr)"


@dataclass(frozen=True)
class PrintedCodes:
    codes: list[str] = field(default_factory=list)  # as printed, forgiving reading applies
    registries: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)


def _grey_png(data: bytes) -> bytes | None:
    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = opened.convert("L")
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError):
        return None
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _read(tesseract: str, png: bytes, psm: str) -> str | None:
    try:
        done = subprocess.run([tesseract, "stdin", "stdout", "--psm", psm, "-l", "eng"],
                              input=png, capture_output=True, timeout=OCR_TIMEOUT,
                              check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def _found(text: str) -> tuple[list[str], list[str]]:
    codes = [f"{a}-{b}".upper() for a, b in _CODE.findall(text)]
    codes = [code for code in dict.fromkeys(codes) if code_candidates(code)]
    registries = list(dict.fromkeys(_REGISTRY.findall(text.upper())))
    return codes, registries


def printed_codes(data: bytes) -> PrintedCodes:
    """The trace codes and registry numbers printed in the image `data`, as read."""
    tesseract = shutil.which("tesseract")
    if tesseract is None:
        return PrintedCodes(tried=[NO_TESSERACT])
    png = _grey_png(data)
    if png is None:
        return PrintedCodes(tried=["the image cannot be read (not a PNG or JPEG Pillow decodes)"])
    for psm in _PASSES:
        text = _read(tesseract, png, psm)
        if text is None:
            return PrintedCodes(tried=["tesseract could not read the image"])
        codes, registries = _found(text)
        if codes:
            read = f"tesseract read the printed code(s) {', '.join(codes)}"
            return PrintedCodes(codes, registries, [read])
    return PrintedCodes(tried=["tesseract read no trace code in the printed text"])


__all__ = ["NO_TESSERACT", "OCR_TIMEOUT", "PrintedCodes", "printed_codes"]
