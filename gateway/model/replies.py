"""Every SMTP reply Barid gives, as named constants (docs/CONTRACT.md §5, RFC 3463 codes).

Owns: the exact reply text. Must not: contain anything but ASCII, and never
internal exception text. `reply(code, enhanced, text)` builds the parameterised ones.
"""

from __future__ import annotations


def reply(code: int, enhanced: str, text: str) -> str:
    """One reply line; the text is forced to printable ASCII on one line."""
    clean = " ".join(text.encode("ascii", "replace").decode("ascii").split())
    return f"{code} {enhanced} {clean}"


ACCEPTED = "250 2.0.0 Accepted {registry}"
SENDER_OK = "250 2.1.0 Sender OK"
RECIPIENT_OK = "250 2.1.5 Recipient OK"

TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTH_THROTTLED = "454 4.7.0 Too many failed logins; try again later"
AUTH_UNAVAILABLE = "454 4.3.0 Authentication temporarily unavailable; try again later"

SENDER_NOT_YOURS = "553 5.7.1 Sender address is not the authenticated employee's"
NULL_SENDER = "553 5.7.1 The null sender is not allowed for submission"
RECIPIENT_UNKNOWN = "550 5.1.1 Recipient not in the directory nor in a federated domain"
RECIPIENT_INACTIVE = "550 5.2.1 Recipient mailbox is not active"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
NO_VALID_RECIPIENTS = "554 5.5.1 No valid recipients"

TOO_BIG = "552 5.3.4 Message too big"
STORAGE_UNAVAILABLE = "451 4.3.0 Storage temporarily unavailable; try again later"
DISK_FULL = "452 4.3.1 Insufficient system storage; try again later"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections; try again later"
RATE_LIMITED = "450 4.7.1 Sending rate exceeded; try again later"
INTERNAL = "451 4.3.0 Temporary failure; try again later"
TOO_MANY_FROM_ADDRESS = "421 4.7.0 Too many connections from your address; try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down"
IDLE_TIMEOUT = "421 4.4.2 Idle too long; closing connection"
COMMAND_TOO_SLOW = "421 4.4.2 Command not completed in time; closing connection"
DATA_TOO_SLOW = "451 4.4.2 Message data arriving too slowly; closing connection"
DATA_DEADLINE = "451 4.4.2 Message not completed in time; closing connection"
BARE_LF_COMMAND = "500 5.5.2 Commands must end with CRLF"
LINE_TOO_LONG = "550 5.6.0 Message has a line longer than 998 octets (the RFC 5322 limit)"
EIGHT_BIT_HEADER = "550 5.6.7 Non-ASCII header text requires SMTPUTF8"
IN_TRANSIT_FULL = "452 4.3.1 Too many messages in transit; try again later"
