"""DKIM signatures for what leaves the gateway: RSA-SHA256 and Ed25519-SHA256 together.

Owns: relaxed/relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4), the body hash,
the header selection with over-signing, and both DKIM-Signature fields (RFC 6376
§3.5; Ed25519 per RFC 8463). Must not: send or change the message; `sign` only
returns the fields to put on top of it. The signatures are made with
`cryptography` (OpenSSL), which is several times faster than dkimpy's pure
Python RSA; the tests check every field with dkimpy's verifier.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from keys.dkim_dns import dkim_records
from keys.gateway_keys import GatewayKeys

CRLF = b"\r\n"
# Signed when present; each name is listed once more than it occurs ("over-signing",
# RFC 6376 §8.15), so nobody can add such a field later without breaking the signature.
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "references",
    "in-reply-to",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "barid-registry",
    "barid-employee-code",
    "barid-trace",
    "barid-verify",
    "barid-classification",
    "barid-receipt",
    "barid-recipient",
    "auto-submitted",
    "barid-alert",
    "barid-alert-kind",
)
# Runs of WSP that relaxed canonicalization changes: any run with a tab, or two or more
# characters (a lone space is already canonical, and skipping it is much faster).
_WSP_RUN = re.compile(rb"\t[ \t]*| [ \t]+")
_B64_LINE = 72


class DkimError(ValueError):
    """The message cannot be signed (no header/body separator, no From field)."""


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4: squeeze WSP runs, drop WSP at line ends and trailing empty lines."""
    if body and not body.endswith(CRLF):
        body += CRLF
    body = _WSP_RUN.sub(b" ", body).replace(b" \r\n", CRLF)
    end = len(body)
    while body.endswith(CRLF, 0, end):
        end -= 2
    return body[:end] + CRLF if end else b""


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """RFC 6376 §3.4.2: lower-case name, unfolded value with WSP squeezed and trimmed."""
    unfolded = value.replace(CRLF, b"")
    return name.strip().lower() + b":" + _WSP_RUN.sub(b" ", unfolded).strip(b" ") + CRLF


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """([(name, raw value incl. folding)], body) of a CRLF message."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        raise DkimError("message has no empty line between header and body")
    fields: list[tuple[bytes, bytes]] = []
    for line in message[:end].split(CRLF):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + CRLF + line)
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            raise DkimError("malformed header line")
        fields.append((name, value))
    return fields, message[end + 4 :]


def _fold_names(names: list[str], width: int = 64) -> str:
    """The h= list, folded after a colon when a line grows past `width` (RFC 6376 §3.5)."""
    lines = [names[0]]
    for name in names[1:]:
        if len(lines[-1]) + len(name) + 1 > width:
            lines[-1] += ":"
            lines.append(name)
        else:
            lines[-1] += ":" + name
    return "\r\n\t ".join(lines)


class DkimSigner:
    """Signs with both gateway DKIM keys, selectors `<prefix>-rsa` and `<prefix>-ed25519`.

    The selectors and the domain are those of `keys.dkim_dns.dkim_records`, so
    the DNS records `barid dkim dns` prints are the ones verifiers will fetch.
    """

    def __init__(self, keys: GatewayKeys, domain: str, selector_prefix: str) -> None:
        records = {r.algorithm: r for r in dkim_records(keys, selector_prefix, domain)}
        self.domain = records["rsa"].domain
        self.rsa_selector = records["rsa"].selector
        self.ed25519_selector = records["ed25519"].selector
        rsa_key, ed_key = keys.dkim_rsa_key, keys.dkim_ed25519_key

        def sign_rsa(data: bytes) -> bytes:
            return rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())

        def sign_ed25519(data: bytes) -> bytes:
            # RFC 8463 §3: PureEdDSA over the SHA-256 hash of the canonicalized data.
            return ed_key.sign(hashlib.sha256(data).digest())

        self._signers: tuple[tuple[str, str, Callable[[bytes], bytes]], ...] = (
            ("rsa-sha256", self.rsa_selector, sign_rsa),
            ("ed25519-sha256", self.ed25519_selector, sign_ed25519),
        )

    def sign(self, message: bytes, timestamp: int | None = None) -> bytes:
        """Two `DKIM-Signature:` fields (RSA first) to prepend to `message`.

        `message` must use CRLF line ends, as every copy Barid writes does.
        """
        fields, body = split_message(message)
        names = [name.strip().lower().decode("ascii", "replace") for name, _ in fields]
        if "from" not in names:
            raise DkimError("message has no From field (RFC 6376 §5.4)")
        signed: list[str] = []
        for wanted in SIGNED_HEADERS:
            signed += [wanted] * (names.count(wanted) + 1)
        canonical = self._selected(fields, names, signed)
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
        when = int(time.time()) if timestamp is None else timestamp
        header_list = _fold_names(signed)
        out = []
        for algorithm, selector, sign in self._signers:
            tags = (
                f"v=1; a={algorithm}; c=relaxed/relaxed; d={self.domain}; s={selector};\r\n"
                f"\tt={when}; h={header_list};\r\n\tbh={body_hash};\r\n\tb="
            )
            unsigned = relaxed_header(b"dkim-signature", tags.encode("ascii"))
            signature = base64.b64encode(sign(canonical + unsigned.removesuffix(CRLF))).decode()
            folded = "\r\n\t ".join(
                signature[i : i + _B64_LINE] for i in range(0, len(signature), _B64_LINE)
            )
            out.append(f"DKIM-Signature: {tags}{folded}\r\n".encode("ascii"))
        return b"".join(out)

    @staticmethod
    def _selected(fields: list[tuple[bytes, bytes]], names: list[str], signed: list[str]) -> bytes:
        """Canonicalized fields in `h=` order, each instance taken from the bottom up.

        A name listed more often than it occurs contributes nothing (RFC 6376 §5.4.2).
        """
        used: dict[str, int] = {}
        parts = []
        for name in signed:
            seen = used.get(name, 0)
            positions = [i for i, n in enumerate(names) if n == name]
            if seen < len(positions):
                index = positions[-1 - seen]
                parts.append(relaxed_header(fields[index][0], fields[index][1]))
            used[name] = seen + 1
        return b"".join(parts)

    def signed(self, message: bytes, timestamp: int | None = None) -> bytes:
        """`message` with both DKIM-Signature fields on top."""
        return self.sign(message, timestamp) + message
