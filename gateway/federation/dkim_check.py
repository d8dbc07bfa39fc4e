"""DKIM on receipt from a federation peer: the peer's key records and the transfer verdict.

Owns: reading a peer's `dkim_keys` file (the zone lines `barid dkim dns` prints, see
`keys.dkim_dns.DkimRecord.zone_line`) and deciding whether a transferred message
carries a DKIM signature (RFC 6376; Ed25519-SHA256 per RFC 8463) that verifies, was
made for one of the peer's domains, and covers the headers that matter. Must not:
change the message, look up DNS when the peer's records are configured, or raise
for a bad message (every failure is a `DkimVerdict` with ok=False and a reason).

Contract of `verify_transfer`: a message passes when at least one DKIM-Signature
1. has d= equal to one of `domains` or a subdomain of one (case-insensitive, on a
   label boundary: "evilregion.gov.example" is not under "region.gov.example");
2. lists in h= "from" and every header of `required_headers` present in the message
   (over-signing, which Barid's signer does, is then checked by the verification);
3. has no l= body length limit (a limit lets anyone append to the body);
4. has a key: from `records` when given (never DNS; an unknown name is "no key"),
   otherwise from DNS through dkimpy;
5. verifies (dkimpy: body hash and header signature).
Checks 1-3 come first, so a signature for a foreign domain causes no DNS lookup.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import dkim
from dkim import dnsplug
from dkim.util import parse_tag_value

from gateway.federation.trust import TrustError

log = logging.getLogger("barid.federation")
# dkimpy logs key and signature problems at error level; keep them apart.
_DKIMPY_LOG = logging.getLogger("barid.federation.dkimpy")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
_TTL = re.compile(r"^[0-9]+[smhdw]?$", re.IGNORECASE)
_CLASSES = frozenset({"in", "ch", "hs"})
_H_SPLIT = re.compile(rb"\s*:\s*")


class DkimRecordsError(TrustError):
    """A peer's DKIM key file is missing or malformed; the message names file and line."""


@dataclass(frozen=True)
class DkimVerdict:
    """Whether a transfer carries an acceptable DKIM signature, and why (not)."""

    ok: bool
    domain: str | None  # d= of the passing signature
    selector: str | None
    reason: str  # short ASCII: "pass", "no signature", "signature did not verify", ...


# ---------------------------------------------------------------- the records file


def _tokenize(line: str, where: str, depth: int) -> tuple[list[tuple[str, bool]], int]:
    """Tokens (text, quoted) of one zone-file line, and the parenthesis depth after it."""
    tokens: list[tuple[str, bool]] = []
    i, n = 0, len(line)
    while i < n:
        char = line[i]
        if char in " \t\r\n":
            i += 1
        elif char == ";":
            break
        elif char == "(":
            depth += 1
            i += 1
        elif char == ")":
            if depth == 0:
                raise DkimRecordsError(f"{where}: unbalanced ')'")
            depth -= 1
            i += 1
        elif char == '"':
            i += 1
            out: list[str] = []
            while True:
                if i >= n:
                    raise DkimRecordsError(f"{where}: unterminated quoted string")
                char = line[i]
                if char == '"':
                    i += 1
                    break
                if char == "\\":
                    digits = line[i + 1 : i + 4]
                    if len(digits) == 3 and digits.isdigit():
                        out.append(chr(int(digits)))
                        i += 4
                        continue
                    if i + 1 >= n:
                        raise DkimRecordsError(f"{where}: unterminated quoted string")
                    out.append(line[i + 1])
                    i += 2
                    continue
                out.append(char)
                i += 1
            tokens.append(("".join(out), True))
        else:
            start = i
            while i < n and line[i] not in ' \t\r\n;()"':
                i += 1
            tokens.append((line[start:i], False))
    return tokens, depth


def _record(tokens: list[tuple[str, bool]], where: str) -> tuple[str, str]:
    """(name, value) of one TXT record: NAME [TTL] [CLASS] TXT "string"..."""
    name, quoted = tokens[0]
    if quoted:
        raise DkimRecordsError(f"{where}: a record starts with its DNS name, not a string")
    index = 1
    while index < len(tokens) and index <= 2:
        text, quoted = tokens[index]
        if quoted or not (_TTL.fullmatch(text) or text.lower() in _CLASSES):
            break
        index += 1
    if index >= len(tokens) or tokens[index][1] or tokens[index][0].upper() != "TXT":
        raise DkimRecordsError(f'{where}: expected NAME [TTL] [IN] TXT "value"')
    strings = tokens[index + 1 :]
    if not strings or not all(quoted for _, quoted in strings):
        raise DkimRecordsError(f"{where}: a TXT record needs one or more quoted strings")
    fqdn = name.rstrip(".").lower()
    labels = fqdn.split(".")
    if "_domainkey" not in labels[1:-1] or not all(_LABEL.fullmatch(lbl) for lbl in labels):
        raise DkimRecordsError(
            f"{where}: {name!r} is not a DKIM key name (selector._domainkey.domain)"
        )
    value = "".join(text for text, _ in strings)
    try:
        dkim.evaluate_pk(fqdn.encode("ascii"), value.encode("ascii"))
    except Exception as exc:  # dkimpy raises many kinds for a bad record
        raise DkimRecordsError(f"{where}: {fqdn}: not a usable DKIM key record ({exc})") from None
    return fqdn, value


def load_dkim_records(path: Path) -> dict[str, str]:
    """DNS name (lower case, no trailing dot) -> TXT value of a peer's DKIM key file.

    The file holds zone-file lines as `barid dkim dns` prints them
    (`name. IN TXT "part" "part"`: the parts are joined without separator); a TTL is
    allowed, parentheses may continue a record over several lines, and blank lines
    and comments (`;` anywhere outside a string, `#` at the start of a line) are
    ignored. Every value must be a usable DKIM key record. Raises DkimRecordsError
    (a TrustError, hence a ValueError) naming the file and line.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DkimRecordsError(f"{path}: DKIM key file not found") from None
    except IsADirectoryError:
        raise DkimRecordsError(f"{path}: DKIM key file is a directory") from None
    except OSError as exc:
        raise DkimRecordsError(f"{path}: cannot read DKIM key file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise DkimRecordsError(f"{path}: DKIM key file is not UTF-8 text") from None
    records: dict[str, str] = {}
    pending: list[tuple[str, bool]] = []
    depth, start = 0, 0
    number = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if depth == 0 and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if depth == 0:
            if line[:1] in (" ", "\t"):
                raise DkimRecordsError(
                    f"{path}:{number}: a record must start with its DNS name in column 1"
                )
            start = number
        tokens, depth = _tokenize(line, f"{path}:{number}", depth)
        pending += tokens
        if depth or not pending:
            continue
        where = f"{path}:{start}"
        name, value = _record(pending, where)
        pending = []
        if records.get(name, value) != value:
            raise DkimRecordsError(f"{where}: a second, different record for {name}")
        records[name] = value
    if depth:
        raise DkimRecordsError(f"{path}:{start}: '(' not closed by the end of the file")
    if not records:
        raise DkimRecordsError(f"{path}:{number}: no DKIM key record in the file")
    return records


# ---------------------------------------------------------------- the verdict


def _under(domain: str, peer_domains: Collection[str]) -> bool:
    return any(domain == peer or domain.endswith("." + peer) for peer in peer_domains)


def _ascii(value: bytes) -> str:
    return value.decode("ascii", "replace")


def verify_transfer(
    message: bytes,
    *,
    domains: Collection[str],
    records: Mapping[str, str] | None,
    required_headers: Collection[str],
) -> DkimVerdict:
    """Whether `message` carries a DKIM signature of the peer (see the module contract).

    `records`: DNS name -> TXT value (as `load_dkim_records` returns); None means
    DNS (dkimpy's resolver). Never raises for a bad message.
    """
    peer_domains = {d.strip().rstrip(".").lower() for d in domains if d.strip()}
    required = {h.strip().lower() for h in required_headers}
    keys = None if records is None else {k.rstrip(".").lower(): v for k, v in records.items()}
    try:
        verifier = dkim.DKIM(message, logger=_DKIMPY_LOG)
        headers = [(_ascii(name).strip().lower(), value) for name, value in verifier.headers]
    except Exception:  # dkimpy's parser on arbitrary input
        return DkimVerdict(False, None, None, "message cannot be parsed")
    signatures = [value for name, value in headers if name == "dkim-signature"]
    if not signatures:
        return DkimVerdict(False, None, None, "no signature")
    present = {name for name, _ in headers}
    must_cover = {"from"} | (required & present)

    lookups: dict[str, bool] = {}  # name -> key found

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        fqdn = _ascii(name).rstrip(".").lower()
        if keys is None:
            found: bytes | None = dnsplug.get_txt(name, timeout=timeout)
        else:
            value = keys.get(fqdn)
            found = None if value is None else value.encode("ascii")
        lookups[fqdn] = bool(found)
        return found

    dnsfunc: Callable[..., bytes | None] = lookup
    reasons: list[str] = []
    for index, header in enumerate(signatures):
        reason, domain, selector = _check_one(
            verifier, index, header, peer_domains, must_cover, keys, dnsfunc, lookups
        )
        if reason == "pass":
            return DkimVerdict(True, domain, selector, "pass")
        if reason not in reasons:
            reasons.append(reason)
    return DkimVerdict(False, None, None, "; ".join(reasons))


def _check_one(
    verifier: dkim.DKIM,
    index: int,
    header: bytes,
    peer_domains: Collection[str],
    must_cover: set[str],
    keys: Mapping[str, str] | None,
    dnsfunc: Callable[..., bytes | None],
    lookups: dict[str, bool],
) -> tuple[str, str | None, str | None]:
    """(reason, d=, s=) for the signature at `index`; reason "pass" when it is good."""
    try:
        tags = parse_tag_value(header)
        domain = _ascii(tags[b"d"]).strip().rstrip(".").lower()
        selector = _ascii(tags[b"s"]).strip().lower()
        covered = {_ascii(h).strip().lower() for h in _H_SPLIT.split(tags[b"h"].strip())}
    except Exception:  # a malformed tag list or a missing d=, s= or h=
        return "malformed DKIM-Signature", None, None
    if not domain or not selector:
        return "malformed DKIM-Signature", None, None
    if not _under(domain, peer_domains):
        return f"d={domain} is not a domain of the peer", domain, selector
    missing = sorted(must_cover - covered)
    if missing:
        return f"signature does not cover {', '.join(missing)}", domain, selector
    if b"l" in tags:
        return "signature has a body length limit (l=)", domain, selector
    name = f"{selector}._domainkey.{domain}"
    if keys is not None and name not in keys:
        return f"no key for selector {selector} of {domain}", domain, selector
    try:
        good = bool(verifier.verify(idx=index, dnsfunc=dnsfunc))
    except Exception as exc:  # dkim.DKIMException and whatever bad input provokes
        log.debug("DKIM signature %d did not verify: %s", index, exc)
        good = False
    if good:
        return "pass", domain, selector
    if lookups.get(name) is False:
        return f"no key for selector {selector} of {domain}", domain, selector
    return "signature did not verify", domain, selector
