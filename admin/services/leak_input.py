"""What a leak trace was given: a typed trace code, a leaked copy (.eml), a document or
a photo or scan of a printed page.

Owns: reading the input into a `LeakInput` (its kind, its SHA-256 for the case
file, and the facts a lookup needs), and the forgiving reading of a typed trace
code: `code_candidates`. Must not: touch the database or decide what matches.
A photo is told by its content (PNG or JPEG magic bytes), never by its name.
Failure: a file that cannot be read is an `InvalidInput`; a text that is no
trace code at all gives no candidates (the caller answers "no copy matches").

Trace codes are 10 Crockford base32 characters (gateway.stamping.trace) and carry
no check character, so the only protection against a misread is the alphabet:
case, hyphens and spaces are layout; O, I, L and U are not in it and read as 0,
1, 1 and V. Characters that are all in the alphabet but look alike on a
printout (0/D, 2/Z, 5/S, 6/G, 8/B) are tried both ways: every such reading is a
candidate, and the caller refuses to choose when more than one copy matches.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import itertools
import re
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from admin.services.errors import InvalidInput
from gateway.stamping.trace import CROCKFORD_ALPHABET, TRACE_CHARS

MAX_FILE_BYTES = 64 * 1024 * 1024
# Outside the alphabet: one reading only.
_OUTSIDE = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V", "-": None, " ": None})
# Inside the alphabet, alike on paper: each is tried as itself and as its twin.
_TWINS = {"0": "D", "D": "0", "2": "Z", "Z": "2", "5": "S", "S": "5", "6": "G", "G": "6",
          "8": "B", "B": "8"}  # fmt: skip
_CODE_IN_TEXT = re.compile(r"\b([0-9A-Z]{5})-([0-9A-Z]{5})\b")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG
_FILE_SUFFIXES = {".eml", ".pdf", ".png", ".jpg", ".jpeg"}  # a missing file, not a code
_MESSAGE_HEADERS = ("from", "to", "date", "subject", "message-id", "mime-version")


@dataclass(frozen=True)
class LeakInput:
    kind: str  # "code", "eml", "document" or "photo"
    text: str  # what was typed, or the file's name
    sha256: str  # of the typed text (UTF-8) or of the file's bytes
    data: bytes = b""  # the file's bytes (empty for a code)
    codes: tuple[str, ...] = field(default=())  # trace codes found or read


def code_candidates(typed: str) -> tuple[str, ...]:
    """Every canonical `XXXXX-XXXXX` code `typed` may stand for; () if it is not a code."""
    compact = typed.strip().upper().translate(_OUTSIDE)
    if len(compact) != TRACE_CHARS or any(ch not in CROCKFORD_ALPHABET for ch in compact):
        return ()
    choices = [(ch, _TWINS[ch]) if ch in _TWINS else (ch,) for ch in compact]
    readings = ("".join(chars) for chars in itertools.product(*choices))
    return tuple(f"{r[:5]}-{r[5:]}" for r in readings)


def _is_message(data: bytes, name: str) -> bool:
    if name.lower().endswith(".eml"):
        return True
    head = data[:8192].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].lower()
    names = {line.split(b":", 1)[0].strip() for line in head.splitlines() if b":" in line}
    return b"barid-trace" in names or sum(h.encode() in names for h in _MESSAGE_HEADERS) >= 3


def codes_in_message(data: bytes) -> tuple[str, ...]:
    """The copy's trace code: its Barid-Trace header, else codes written in its cover."""
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    header = parsed.get("Barid-Trace")
    if header:
        return (str(header).strip().upper(),)
    found: list[str] = []
    if isinstance(parsed, EmailMessage):
        for part in parsed.walk():
            if part.get_content_maintype() != "text":
                continue
            try:
                text = str(part.get_content())
            except (LookupError, ValueError):
                continue
            found += [f"{a}-{b}" for a, b in _CODE_IN_TEXT.findall(text.upper())]
    return tuple(dict.fromkeys(code for code in found if code_candidates(code)))


def read_input(value: str) -> LeakInput:
    """The input named by `value`: an existing file (a message or a document), else a code."""
    path = Path(value)
    if not path.is_file():
        if path.suffix.lower() in _FILE_SUFFIXES or "/" in value.strip("/"):
            raise InvalidInput(f"{value}: no such file", problems=[f"{value}: no such file"])
        digest = hashlib.sha256(value.encode("utf-8")).hexdigest()
        return LeakInput("code", value, digest, codes=code_candidates(value))
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInput(f"{value}: larger than {MAX_FILE_BYTES} bytes")
        data = path.read_bytes()
    except OSError as exc:
        message = f"{value}: cannot read ({exc.strerror})"
        raise InvalidInput(message, problems=[message]) from None
    digest = hashlib.sha256(data).hexdigest()
    if data.startswith(_IMAGE_MAGIC):
        return LeakInput("photo", path.name, digest, data)
    if _is_message(data, path.name):
        return LeakInput("eml", path.name, digest, data, codes_in_message(data))
    return LeakInput("document", path.name, digest, data)
