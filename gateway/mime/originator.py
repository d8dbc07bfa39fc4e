"""Top-level header facts: who the message says it is from, and what it is.

Owns: From (one field, one mailbox, no address-shaped display name), Sender,
Subject, Message-ID and Barid-Employee-Code as RFC 5322 §3.6 and docs/CONTRACT.md §4
require. Must not: compare them with the authenticated employee; checks do that.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.mime.addresses import (
    AddressSyntaxError,
    Mailbox,
    claims_other_address,
    parse_mailbox_list,
)
from gateway.mime.headers import HeaderField, decode_words, single
from gateway.mime.verdicts import RejectedError, malformed, refused


@dataclass(frozen=True, slots=True)
class Originator:
    from_address: str  # lower-case
    from_display_name: str  # RFC 2047 decoded; "" when none
    sender_address: str | None  # lower-case; None without a Sender header
    subject: str  # RFC 2047 decoded; "" when none
    message_id: str | None  # as sent, e.g. "<abc@host>"
    employee_code: str | None  # Barid-Employee-Code as sent, trimmed


def _mailboxes(field: HeaderField) -> list[Mailbox]:
    try:
        return parse_mailbox_list(field.value)
    except AddressSyntaxError:
        raise RejectedError(malformed(f"bad address in {field.name} header")) from None


def _forgery(mailbox: Mailbox, field: HeaderField) -> None:
    if claims_other_address(mailbox, field.value) is not None:
        raise RejectedError(refused(f"display name in {field.name} shows another address"))


def read_originator(fields: tuple[HeaderField, ...]) -> Originator:
    """The facts, or RejectedError: malformed (550 5.6.0) or refused (550 5.7.1)."""
    from_field = single(fields, "From")
    if from_field is None:
        raise RejectedError(malformed("no From header"))
    senders = _mailboxes(from_field)
    if len(senders) != 1:
        raise RejectedError(refused("From header must hold exactly one address"))
    author = senders[0]
    _forgery(author, from_field)

    sender_address = None
    sender_field = single(fields, "Sender")
    if sender_field is not None:
        found = _mailboxes(sender_field)
        if len(found) != 1:  # RFC 5322 §3.6.2: Sender is a single mailbox
            raise RejectedError(malformed("Sender header must hold one address"))
        _forgery(found[0], sender_field)
        sender_address = found[0].address

    subject_field = single(fields, "Subject")
    message_id_field = single(fields, "Message-ID")
    message_id = message_id_field.value if message_id_field is not None else ""
    code_field = single(fields, "Barid-Employee-Code")
    code = None
    if code_field is not None:
        code = code_field.value.strip()
        if not code:
            raise RejectedError(malformed("empty Barid-Employee-Code header"))
    return Originator(
        from_address=author.address,
        from_display_name=author.display_name,
        sender_address=sender_address,
        subject=decode_words(subject_field.value) if subject_field is not None else "",
        message_id=message_id or None,
        employee_code=code,
    )
