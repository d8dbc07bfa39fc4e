"""The checks of what a peer transfers, one class each, in the order they run.

Owns: `AUTHENTICITY_CHECKS` (the peer's DKIM signature, the Barid fields, the
envelope sender) and `ACCEPTANCE_CHECKS` (the classification mapping, this
side's policy at the boundary), run by gateway.checks.runner (the worst verdict
wins; the first permanent refusal ends a run), and the refusals they give.
Must not: do I/O: the listener (gateway.intake.transfer) runs them, looks up
a repeated transfer between the two lists, audits and files.

Two lists, because a repeated transfer is recognised in between: a copy filed
before a policy change is acknowledged again, never refused (its sender already
has its receipt), so acceptance is only checked for a copy not filed yet.
A new check is one class here, placed in one of the two lists.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.checks.runner import Check, check_order
from gateway.federation.dkim_check import DkimVerdict, verify_transfer
from gateway.federation.inbound import (
    COPY_FIELDS,
    RECEIPT_FIELDS,
    NotATransfer,
    TransferFacts,
    read_transfer,
)
from gateway.federation.peers import Peer
from gateway.mime.verdicts import PASS, Verdict
from gateway.model import replies
from gateway.model.refusals import rcpt_refusal
from policies.decision import Attachment, MessageFacts
from policies.directory import Clearance
from policies.holder import PolicyHolder

NO_DKIM = "550 5.7.20 No passing DKIM signature of the peer's domain over the Barid fields"


@dataclass
class InboundTransfer:
    """One transfer under check: the session's facts, and what each check provides
    (None until the check that provides it has passed)."""

    raw: bytes
    peer: Peer
    mail_from: str
    recipient: str
    notification: bool  # null reverse-path: a delivery receipt, not a copy
    policy: PolicyHolder
    dkim: DkimVerdict | None = None
    facts: TransferFacts | None = None
    local_classification: str | None = None


class PeerDkimCheck(Check[InboundTransfer]):
    """A passing DKIM signature of the peer's domain over From and the Barid fields."""

    name = "dkim"
    provides = ("dkim",)

    def run(self, transfer: InboundTransfer) -> Verdict:
        verdict = verify_transfer(
            transfer.raw,
            domains=transfer.peer.settings.dkim_domains,
            records=transfer.peer.dkim_records,
            required_headers=RECEIPT_FIELDS if transfer.notification else COPY_FIELDS,
        )
        if not verdict.ok:
            return Verdict(NO_DKIM, "dkim", detail=verdict.reason)
        transfer.dkim = verdict
        return PASS


class TransferFieldsCheck(Check[InboundTransfer]):
    """The Barid fields (and a copy's certificate.json) are present and well formed."""

    name = "malformed"
    provides = ("facts",)

    def run(self, transfer: InboundTransfer) -> Verdict:
        try:
            transfer.facts = read_transfer(transfer.raw, notification=transfer.notification)
        except NotATransfer as exc:
            text = f"Not a Barid transfer: {exc}"
            return Verdict(replies.reply(550, "5.6.0", text), "malformed", detail=str(exc))
        return PASS


class EnvelopeSenderCheck(Check[InboundTransfer]):
    """A copy's From is its envelope sender (a notification has the null path)."""

    name = "from-mismatch"
    needs = ("facts",)

    def run(self, transfer: InboundTransfer) -> Verdict:
        assert transfer.facts is not None
        if not transfer.notification and transfer.facts.sender != transfer.mail_from:
            text = "From does not match the envelope sender"
            return Verdict(replies.reply(550, "5.7.1", text), "from-mismatch")
        return PASS


class ClassificationMappingCheck(Check[InboundTransfer]):
    """The peer's classification has a label on this side."""

    name = "classification"
    needs = ("facts",)
    provides = ("local_classification",)

    def run(self, transfer: InboundTransfer) -> Verdict:
        assert transfer.facts is not None
        theirs = transfer.facts.classification
        local = transfer.peer.settings.local_classification(theirs)
        if local is None:
            text = f"Classification {theirs} has no mapping here"
            return Verdict(replies.reply(550, "5.7.1", text), "classification")
        transfer.local_classification = local
        return PASS


class BoundaryPolicyCheck(Check[InboundTransfer]):
    """This side's policy, with every fact, as for its own senders."""

    name = "policy"
    needs = ("facts", "local_classification")

    def run(self, transfer: InboundTransfer) -> Verdict:
        facts, local = transfer.facts, transfer.local_classification
        assert facts is not None and local is not None
        decision = transfer.policy.decide(
            facts.sender,
            transfer.recipient,
            MessageFacts(
                classification=Clearance.parse(local),
                attachments=tuple(Attachment(name, ctype) for name, ctype, _, _ in facts.documents),
                size=len(transfer.raw),
                recipient_count=1,
                sender_messages_last_hour=0,
            ),
        )
        if not decision.allowed:
            reply = rcpt_refusal(decision.rule_id, decision.reason.en)
            return Verdict(reply, "policy", decision.rule_id)
        return PASS


BASE_FACTS = ("raw", "peer", "mail_from", "recipient", "notification", "policy")
AUTHENTICITY_CHECKS: tuple[Check[InboundTransfer], ...] = (
    PeerDkimCheck(),
    TransferFieldsCheck(),
    EnvelopeSenderCheck(),
)
ACCEPTANCE_CHECKS: tuple[Check[InboundTransfer], ...] = (
    ClassificationMappingCheck(),
    BoundaryPolicyCheck(),
)
check_order(AUTHENTICITY_CHECKS + ACCEPTANCE_CHECKS, given=BASE_FACTS)
