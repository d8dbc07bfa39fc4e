"""Structured MIME header values: Content-Type, Content-Disposition, parameters.

Owns: RFC 2045 §5.1 parameters, RFC 2183 dispositions, comments and quoted
strings, RFC 2231 continuations and charsets. Must not: guess; ambiguous input
(a duplicate parameter, a continuation gap) is malformed.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from types import MappingProxyType

from gateway.mime.headers import decode_words
from gateway.mime.verdicts import RejectedError, malformed

# RFC 2045 tspecials plus blanks end a token; '=' and '/' are handled by callers.
_TOKEN = re.compile(r"[^\s()<>@,;:\\\"/\[\]?=]+")
# Values seen unquoted in the wild (boundary==_x, name=a/b) are read up to ';'.
_LOOSE_VALUE = re.compile(r"[^\s;()\"]+")
_SECTION = re.compile(r"^(?P<base>[^*]+)\*(?:(?P<num>[0-9]{1,3})\*?|)$")
_MAX_SECTIONS = 100


def _skip_cfws(text: str, pos: int) -> int:
    """Skip blanks and (nested) comments starting at pos."""
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in " \t\r\n":
            pos += 1
        elif ch == "(":
            depth = 0
            while pos < n:
                ch = text[pos]
                if ch == "\\":
                    pos += 2
                    continue
                if ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                pos += 1
            else:
                raise RejectedError(malformed("unterminated comment in header"))
        else:
            break
    return pos


def _quoted(text: str, pos: int) -> tuple[str, int]:
    """Read the quoted string starting at text[pos] == '"'."""
    out: list[str] = []
    pos += 1
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == "\\" and pos + 1 < n:
            out.append(text[pos + 1])
            pos += 2
        elif ch == '"':
            return "".join(out), pos + 1
        else:
            out.append(ch)
            pos += 1
    raise RejectedError(malformed("unterminated quoted string in header"))


def _token(text: str, pos: int, what: str) -> tuple[str, int]:
    match = _TOKEN.match(text, pos)
    if match is None:
        raise RejectedError(malformed(f"bad {what}"))
    return match.group(), match.end()


def parse_parameters(text: str, pos: int, what: str) -> dict[str, str]:
    """`*(";" attribute "=" value)`: raw attribute names (lower-case) to values."""
    raw: dict[str, str] = {}
    n = len(text)
    while True:
        pos = _skip_cfws(text, pos)
        if pos >= n:
            return raw
        if text[pos] != ";":
            raise RejectedError(malformed(f"bad {what} parameters"))
        pos = _skip_cfws(text, pos + 1)
        if pos >= n:
            return raw  # a trailing ';' is common and harmless
        if text[pos] == ";":
            continue
        attribute, pos = _token(text, pos, f"{what} parameter")
        pos = _skip_cfws(text, pos)
        if pos >= n or text[pos] != "=":
            raise RejectedError(malformed(f"bad {what} parameter"))
        pos = _skip_cfws(text, pos + 1)
        if pos < n and text[pos] == '"':
            value, pos = _quoted(text, pos)
        else:
            match = _LOOSE_VALUE.match(text, pos)
            if match is None:
                raise RejectedError(malformed(f"bad {what} parameter value"))
            value, pos = match.group(), match.end()
        key = attribute.lower()
        if key in raw:
            raise RejectedError(malformed(f"duplicate {what} parameter"))
        raw[key] = value


def _charset_decode(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:
        return data.decode("utf-8", "replace")


def _combine(raw: dict[str, str], what: str) -> dict[str, str]:
    """Apply RFC 2231: join `name*0`, `name*1*`, ...; decode `charset'lang'%XX`."""
    plain: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for key, value in raw.items():
        match = _SECTION.match(key)
        if match is None:
            plain[key] = value
            continue
        number = match.group("num")
        encoded = key.endswith("*")
        index = int(number) if number is not None else -1
        sections.setdefault(match.group("base"), {})[index] = (value, encoded)
    for base, parts in sections.items():
        if -1 in parts:
            if len(parts) > 1:
                raise RejectedError(malformed(f"ambiguous {what} parameter"))
            ordered = [parts[-1]]
        else:
            if sorted(parts) != list(range(len(parts))) or len(parts) > _MAX_SECTIONS:
                raise RejectedError(malformed(f"broken {what} parameter continuation"))
            ordered = [parts[i] for i in range(len(parts))]
        charset = ""
        pieces: list[bytes] = []
        for position, (value, encoded) in enumerate(ordered):
            if not encoded:
                pieces.append(value.encode("utf-8"))
                continue
            if position == 0:
                head = value.split("'", 2)
                if len(head) != 3:
                    raise RejectedError(malformed(f"bad {what} parameter encoding"))
                charset, value = head[0], head[2]
            pieces.append(urllib.parse.unquote_to_bytes(value))
        # RFC 2231 §4: the extended form takes precedence over a plain duplicate.
        plain[base] = _charset_decode(b"".join(pieces), charset)
    return plain


def _finish(raw: dict[str, str], what: str) -> Mapping[str, str]:
    params = _combine(raw, what)
    for key in ("name", "filename"):
        if key in params:
            params[key] = decode_words(params[key])  # RFC 2047 names, as clients send
    return MappingProxyType(params)


def parse_content_type(value: str) -> tuple[str, Mapping[str, str]]:
    """`("multipart/signed", {"protocol": ..., "micalg": ..., "boundary": ...})`."""
    pos = _skip_cfws(value, 0)
    major, pos = _token(value, pos, "Content-Type")
    pos = _skip_cfws(value, pos)
    if pos >= len(value) or value[pos] != "/":
        raise RejectedError(malformed("bad Content-Type"))
    pos = _skip_cfws(value, pos + 1)
    minor, pos = _token(value, pos, "Content-Type")
    params = _finish(parse_parameters(value, pos, "Content-Type"), "Content-Type")
    return f"{major}/{minor}".lower(), params


def parse_disposition(value: str) -> tuple[str, Mapping[str, str]]:
    """`("attachment", {"filename": ...})` (RFC 2183)."""
    pos = _skip_cfws(value, 0)
    kind, pos = _token(value, pos, "Content-Disposition")
    params = _finish(parse_parameters(value, pos, "Content-Disposition"), "Content-Disposition")
    return kind.lower(), params


def parse_transfer_encoding(value: str) -> str:
    """The mechanism token of Content-Transfer-Encoding (RFC 2045 §6.1), lower-case."""
    pos = _skip_cfws(value, 0)
    mechanism, pos = _token(value, pos, "Content-Transfer-Encoding")
    if _skip_cfws(value, pos) != len(value):
        raise RejectedError(malformed("bad Content-Transfer-Encoding"))
    return mechanism.lower()
