"""Where one copy of a message goes: Barid's own INBOX, a peer gateway, or an agency's IMAP server.

Owns: `DeliveryTarget`, the routing decision made once per recipient at
acceptance (`target_for`), and the one text form of a target kept in
`delivery_queue.target` ("local", "peer:<name>", "imap:<name>"): `column` writes
it, `DeliveryTarget.parse` reads it, `column_prefix` filters on it in SQL.
Must not: do I/O or know how a copy is sent (the delivery workers dispatch on `kind`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from gateway.model.message import Recipient


class TargetKind(enum.StrEnum):
    """The three kinds of delivery target; the value is the kind's word in the column."""

    LOCAL = "local"  # Barid's own mailbox store (the local delivery worker)
    PEER = "peer"  # a federation peer's gateway, over SMTP (the remote delivery worker)
    IMAP = "imap"  # an agency's own IMAP server, by APPEND (the remote delivery worker)


REMOTE_KINDS = (TargetKind.PEER, TargetKind.IMAP)
_SEPARATOR = ":"


@dataclass(frozen=True, slots=True)
class DeliveryTarget:
    """One delivery target: its kind and, for a peer or an IMAP server, the configured name."""

    kind: TargetKind
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind is TargetKind.LOCAL:
            if self.name:
                raise ValueError("the local target has no name")
        elif not self.name:
            raise ValueError(f"a {self.kind.value} target needs a name")

    @property
    def remote(self) -> bool:
        """True for a target outside this gateway's own mailbox store."""
        return self.kind is not TargetKind.LOCAL

    @property
    def column(self) -> str:
        """The text form stored in `delivery_queue.target` and shown to operators."""
        if self.kind is TargetKind.LOCAL:
            return self.kind.value
        return column_prefix(self.kind) + self.name

    def __str__(self) -> str:
        return self.column

    @classmethod
    def parse(cls, text: str) -> DeliveryTarget:
        """The target stored as `text`; ValueError (naming the accepted forms) otherwise."""
        if text == TargetKind.LOCAL.value:
            return LOCAL
        word, separator, name = text.partition(_SEPARATOR)
        kinds = {kind.value: kind for kind in REMOTE_KINDS}
        if not separator or word not in kinds or not name:
            raise ValueError(
                f"unknown delivery target {text!r} (expected local, peer:<name> or imap:<name>)"
            )
        return cls(kinds[word], name)


LOCAL = DeliveryTarget(TargetKind.LOCAL)


def peer_gateway(name: str) -> DeliveryTarget:
    """The gateway of the federation peer configured as `name`."""
    return DeliveryTarget(TargetKind.PEER, name)


def agency_server(name: str) -> DeliveryTarget:
    """The agency IMAP server configured as `name`."""
    return DeliveryTarget(TargetKind.IMAP, name)


def column_prefix(kind: TargetKind) -> str:
    """The start of the column text of every target of a remote `kind` (for SQL filters)."""
    if kind is TargetKind.LOCAL:
        raise ValueError("the local target has no prefix")
    return kind.value + _SEPARATOR


def target_for(recipient: Recipient) -> DeliveryTarget:
    """The routing decision: a local recipient goes to Barid's INBOX, or to the agency's
    own IMAP server when it has one; a remote recipient to its federation peer's
    gateway (ValueError when it has none)."""
    if recipient.local:
        return agency_server(recipient.mailserver) if recipient.mailserver else LOCAL
    if not recipient.peer:
        raise ValueError(f"remote recipient {recipient.address} has no federation peer")
    return peer_gateway(recipient.peer)
