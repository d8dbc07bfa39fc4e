"""Which mailbox an agency's security alerts are filed into (`[alerts]` section).

Owns: parsing and checking `security_mailboxes` ("MOH=security@moh.gov.example;
MOF=ciso@mof.gov.example") and `default_security_mailbox`. Pure. Must not: look
anything up in the directory (the alert mailer does, and logs an address that
is not there). Failure: a malformed entry, an agency named twice or an address
that is not local@domain raises ValueError with the entry named, which the
settings turn into a configuration error naming the key.
"""

from __future__ import annotations

import re

from policies.codes import AGENCY_CODE_RE

ADDRESS_RE = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})+$"
)


def address(text: str) -> str:
    """`text` stripped and lower-cased; "" stays ""; ValueError unless local@domain."""
    value = text.strip().lower()
    if value and not ADDRESS_RE.fullmatch(value):
        raise ValueError(f"{text.strip()!r} is not a mail address (local@domain)")
    return value


def mailboxes(text: str) -> dict[str, str]:
    """ "MOH=security@moh.gov.example; MOF=ciso@mof.gov.example" -> {agency code: address}."""
    out: dict[str, str] = {}
    for entry in (e.strip() for e in text.split(";")):
        if not entry:
            continue
        code, sep, mailbox = (part.strip() for part in entry.partition("="))
        if not sep or not AGENCY_CODE_RE.fullmatch(code) or not mailbox:
            raise ValueError(f"{entry!r}: write AGENCY=address, entries separated by ';'")
        if code in out:
            raise ValueError(f"{code} is named twice")
        out[code] = address(mailbox)
    return out
