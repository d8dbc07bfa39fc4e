"""What the engine is asked (`MessageFacts`) and what it answers (`Decision`).

Owns: the facts a caller may know about a message, the decision value and the
built-in rule ids and reasons. Must not: evaluate rules (see engine).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from policies.directory import Clearance
from policies.rules import Effect, Mode, Reason

# Rule ids the engine itself uses; policy files may not reuse them.
DEFAULT_RULE = "default"
CLEARANCE_RULE = "clearance"
UNKNOWN_RECIPIENT_RULE = "unknown-recipient"  # SMTP: 550 5.1.1
INACTIVE_RECIPIENT_RULE = "inactive-recipient"  # SMTP: 550 5.2.1
UNKNOWN_SENDER_RULE = "unknown-sender"
INACTIVE_SENDER_RULE = "inactive-sender"
RESERVED_RULE_IDS = frozenset(
    {
        DEFAULT_RULE,
        CLEARANCE_RULE,
        UNKNOWN_RECIPIENT_RULE,
        INACTIVE_RECIPIENT_RULE,
        UNKNOWN_SENDER_RULE,
        INACTIVE_SENDER_RULE,
    }
)

UNKNOWN_RECIPIENT_REASON = Reason(
    en="The recipient is not in the directory nor in a federated domain.",
    ar="المستلم غير موجود في الدليل وليس ضمن نطاق شبكة شريكة.",
)
INACTIVE_RECIPIENT_REASON = Reason(
    en="The recipient's mailbox is not active.",
    ar="صندوق بريد المستلم غير مفعّل.",
)
UNKNOWN_SENDER_REASON = Reason(
    en="The sender is not in the directory nor in a federated domain.",
    ar="المرسل غير موجود في الدليل وليس ضمن نطاق شبكة شريكة.",
)
INACTIVE_SENDER_REASON = Reason(
    en="The sender's account is not active.",
    ar="حساب المرسل غير مفعّل.",
)


def clearance_reason(classification: Clearance, party: str, clearance: Clearance) -> Reason:
    """Reason for the built-in rule; `party` is "sender" or "recipient"."""
    who_ar = "للمرسل" if party == "sender" else "للمستلم"
    return Reason(
        en=(
            f"The message classification ({classification.label}) exceeds the {party}'s"
            f" clearance ({clearance.label})."
        ),
        ar=(
            f"تصنيف الرسالة ({classification.label}) يتجاوز درجة التصريح الأمني"
            f" {who_ar} ({clearance.label})."
        ),
    )


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment: its file name and declared MIME type (either may be empty)."""

    name: str = ""
    mime_type: str = ""

    @property
    def extension(self) -> str:
        """Lower-case extension without the dot ("" when the name has none)."""
        base = self.name.rsplit("/", 1)[-1]
        return base.rsplit(".", 1)[1].lower() if "." in base else ""


@dataclass(frozen=True, slots=True)
class MessageFacts:
    """What the caller knows about the message. None means "not known yet".

    At RCPT time only `sender_messages_last_hour` (and perhaps `size` from the
    SIZE parameter) are known; at end of data every field should be given.
    `classification` at end of data is the parsed one (docs/CONTRACT.md §4: default
    internal). `recipient_count` counts every recipient of the message.
    """

    classification: Clearance | None = None
    attachments: tuple[Attachment, ...] | None = None
    size: int | None = None
    recipient_count: int | None = None
    sender_messages_last_hour: int | None = None

    @property
    def complete(self) -> bool:
        return None not in (
            self.classification,
            self.attachments,
            self.size,
            self.recipient_count,
            self.sender_messages_last_hour,
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "classification": None if self.classification is None else self.classification.label,
            "attachments": None
            if self.attachments is None
            else [{"name": a.name, "mime_type": a.mime_type} for a in self.attachments],
            "size": self.size,
            "recipient_count": self.recipient_count,
            "sender_messages_last_hour": self.sender_messages_last_hour,
        }


RCPT_TIME = MessageFacts()


@dataclass(frozen=True, slots=True)
class AuditHit:
    """An audit-mode rule that matched and would have denied."""

    rule_id: str
    reason: Reason


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one (sender, recipient) pair.

    `final` is False when facts that were not given could still change
    `allowed` (the caller must decide again with full facts at end of data).
    `mode` is the deciding rule's mode (always enforce: audit rules never decide).
    """

    allowed: bool
    effect: Effect
    rule_id: str
    reason: Reason
    mode: Mode = Mode.ENFORCE
    final: bool = True
    audit_hits: tuple[AuditHit, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "allowed": self.allowed,
            "effect": self.effect.value,
            "rule": self.rule_id,
            "reason": self.reason.to_dict(),
            "mode": self.mode.value,
            "final": self.final,
            "audit_hits": [
                {"rule": h.rule_id, "reason": h.reason.to_dict()} for h in self.audit_hits
            ],
        }


class StepOutcome(enum.StrEnum):
    """What happened to one rule (or built-in check) while deciding."""

    DECIDED = "decided"  # this rule made the decision
    AUDIT_HIT = "audit-hit"  # audit rule matched: would have denied, logged only
    NO_MATCH = "no-match"  # selectors or conditions do not match
    UNDETERMINED = "undetermined"  # matched on parties, conditions need absent facts
    PASSED = "passed"  # a built-in check that did not object
    NOT_REACHED = "not-reached"  # an earlier rule decided


@dataclass(frozen=True, slots=True)
class TraceStep:
    rule_id: str
    outcome: StepOutcome
    detail: str
    line: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule_id,
            "outcome": self.outcome.value,
            "detail": self.detail,
            "line": self.line,
        }
