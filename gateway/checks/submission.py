"""End-of-data checks of one submitted message: a verdict, never a side effect.

Owns: the checks of docs/CONTRACT.md §4-5, one class each, and their order in
`SUBMISSION_CHECKS` (run by gateway.checks.runner: the worst verdict wins, the
first permanent refusal ends the run) — MIME limits and structure
(gateway.mime), From/Sender, signed documents (gateway.checks.signatures),
the employee code, classification against every clearance, and the policy with
full facts. Must not: do I/O (the pipeline fetches what is needed first and runs
this in a worker thread or a check process, gateway.checks.pool) or word
replies outside gateway.model.replies conventions.

The order, and so which refusal a message gets: structure (550 5.6.0 / 552
5.3.4) -> headers (550 5.7.1) -> signatures (554 5.7.5 for a failed signature,
550 5.7.1 for a signer who is not the sender) -> documents (550 5.7.1) ->
employee code (550 5.7.1) -> classification (550 5.7.1 naming the recipients)
-> policy (550 5.7.1 naming the rule, or 450 4.7.1 for a rate rule).
A new check is one class here, placed in `SUBMISSION_CHECKS`.
"""

from __future__ import annotations

from gateway.checks.facts import Inputs, SubmissionFacts
from gateway.checks.runner import Check, check_order, run_checks
from gateway.checks.signatures import signed_documents
from gateway.mime.analysis import Analysis, analyze
from gateway.mime.coverage import content_parts
from gateway.mime.verdicts import PASS, Rejection, Verdict
from gateway.model.message import Document, PolicyAuditHit, Recipient, Submission
from gateway.model.refusals import is_rate_rule
from gateway.model.replies import RATE_LIMITED, reply
from policies.codes import CodeError, EmployeeCode
from policies.decision import Attachment, MessageFacts
from policies.directory import Clearance, EmployeeRecord


class StructureCheck(Check[SubmissionFacts]):
    """MIME limits and structure; provides the analysis every later check reads."""

    name = "structure"
    provides = ("analysis",)

    def run(self, facts: SubmissionFacts) -> Verdict:
        analysis = analyze(facts.inputs.raw, facts.inputs.limits)
        if isinstance(analysis, Rejection):
            return Verdict(analysis.reply, "mime")
        facts.analysis = analysis
        return PASS


class HeadersCheck(Check[SubmissionFacts]):
    """From and Sender are the authenticated sender, the display name is theirs."""

    name = "headers"
    needs = ("analysis",)

    def run(self, facts: SubmissionFacts) -> Verdict:
        assert facts.analysis is not None
        return _headers(facts.analysis, facts.inputs.sender) or PASS


class SignedDocumentsCheck(Check[SubmissionFacts]):
    """Every document signed by one of the sender's identities (and at least one)."""

    name = "signatures"
    needs = ("analysis",)
    provides = ("documents", "codes")

    def run(self, facts: SubmissionFacts) -> Verdict:
        assert facts.analysis is not None
        found = signed_documents(facts.analysis, facts.inputs)
        if isinstance(found, Verdict):
            return found
        facts.documents, facts.codes = found
        return PASS


class EmployeeCodeCheck(Check[SubmissionFacts]):
    """Barid-Employee-Code, or the code a good signature names, is the sender's."""

    name = "employee-code"
    needs = ("analysis", "codes")

    def run(self, facts: SubmissionFacts) -> Verdict:
        assert facts.analysis is not None and facts.codes is not None
        header = facts.analysis.employee_code
        return _employee_code(header, facts.codes, facts.inputs.sender) or PASS


class ClassificationCheck(Check[SubmissionFacts]):
    """The classification is within the sender's and every recipient's clearance."""

    name = "classification"
    needs = ("analysis",)

    def run(self, facts: SubmissionFacts) -> Verdict:
        assert facts.analysis is not None
        return _classification(facts.analysis.classification, facts.inputs) or PASS


class PolicyCheck(Check[SubmissionFacts]):
    """The routing policy for each recipient, with every fact of the message."""

    name = "policy"
    needs = ("analysis", "documents")

    def run(self, facts: SubmissionFacts) -> Verdict:
        assert facts.analysis is not None and facts.documents is not None
        inputs = facts.inputs
        message = MessageFacts(
            classification=facts.analysis.classification,
            attachments=tuple(Attachment(d.name, d.content_type) for d in facts.documents),
            size=len(inputs.raw),
            recipient_count=len(inputs.recipients),
            sender_messages_last_hour=inputs.sent_last_hour,
        )
        for recipient in inputs.recipients:
            decision = inputs.policy.decide(inputs.sender.address, recipient, message)
            facts.audit_hits.extend(
                PolicyAuditHit(hit.rule_id, recipient.lower()) for hit in decision.audit_hits
            )
            if not decision.allowed:
                if is_rate_rule(inputs.policy, decision.rule_id):
                    return Verdict(RATE_LIMITED, "rate", decision.rule_id)
                text = f"{recipient}: {decision.reason.en} (policy {decision.rule_id})"
                return Verdict(reply(550, "5.7.1", text), "policy", decision.rule_id)
        return PASS


SUBMISSION_CHECKS: tuple[Check[SubmissionFacts], ...] = (
    StructureCheck(),
    HeadersCheck(),
    SignedDocumentsCheck(),
    EmployeeCodeCheck(),
    ClassificationCheck(),
    PolicyCheck(),
)
check_order(SUBMISSION_CHECKS, given=("inputs",))


def check_message(inputs: Inputs) -> Submission | Verdict:
    """The accepted submission, or the verdict that refuses it."""
    return check_submission(inputs)[0]


def check_submission(
    inputs: Inputs,
) -> tuple[Submission | Verdict, tuple[PolicyAuditHit, ...]]:
    """The accepted submission (carrying its audit-mode hits), or the refusing verdict
    with the audit-mode hits found before the refusal."""
    facts = SubmissionFacts(inputs)
    verdict = run_checks(SUBMISSION_CHECKS, facts)
    hits = tuple(facts.audit_hits)
    if not verdict.passed:
        return verdict, hits
    assert facts.analysis is not None and facts.documents is not None
    return _submission(inputs, facts.analysis, facts.documents, hits), hits


def _submission(
    inputs: Inputs,
    analysis: Analysis,
    documents: list[Document],
    hits: tuple[PolicyAuditHit, ...],
) -> Submission:
    return Submission(
        sender_address=inputs.sender.address,
        sender_code=inputs.sender.code,
        sender_agency=inputs.agency.code,
        sender_name_en=inputs.sender.name_en,
        sender_name_ar=inputs.sender.name_ar,
        agency_name_en=inputs.agency.name_en,
        agency_name_ar=inputs.agency.name_ar,
        classification=analysis.classification,
        subject=analysis.subject,
        raw=inputs.raw,
        documents=tuple(documents),
        recipients=tuple(_recipient(r, inputs) for r in inputs.recipients),
        received_at=inputs.now,
        client_address=inputs.client_address,
        message_id=analysis.message_id or "",
        parts=content_parts(analysis.signed_units, analysis.documents, analysis.inline_texts),
        audit_hits=hits,
    )


def _headers(analysis: Analysis, sender: EmployeeRecord) -> Verdict | None:
    if analysis.from_address != sender.address:
        return Verdict(
            reply(550, "5.7.1", "From header is not the authenticated sender's address"), "from"
        )
    if analysis.sender_address is not None and analysis.sender_address != sender.address:
        return Verdict(reply(550, "5.7.1", "Sender header names another address"), "sender")
    if not _display_name_ok(analysis.from_display_name, sender):
        return Verdict(
            reply(550, "5.7.1", "From display name is not the sender's registered name"), "from"
        )
    return None


def _fold(text: str) -> str:
    return " ".join(text.casefold().split())


def _display_name_ok(display: str, sender: EmployeeRecord) -> bool:
    """No mismatched display name (docs/CONTRACT.md §4): empty, or one that contains the
    sender's registered English or Arabic name ("Dr. Karim Abbas" is fine,
    "Minister of Health" is not)."""
    shown = _fold(display.strip().strip('"'))
    if not shown:
        return True
    return any(name and name in shown for name in (_fold(sender.name_en), _fold(sender.name_ar)))


def _employee_code(header: str | None, codes: set[str], sender: EmployeeRecord) -> Verdict | None:
    own = sender.code.upper()
    if header is not None:
        try:
            given = str(EmployeeCode.parse(header))
        except CodeError:
            return Verdict(
                reply(550, "5.7.1", "Barid-Employee-Code is not a valid employee code"), "code"
            )
        if given != own:
            return Verdict(
                reply(550, "5.7.1", "Barid-Employee-Code is not the sender's employee code"), "code"
            )
        return None
    if own in codes:
        return None
    if codes:
        return Verdict(reply(550, "5.7.1", "The signature names another employee code"), "code")
    return Verdict(reply(550, "5.7.1", "Employee code missing (Barid-Employee-Code)"), "code")


def _classification(level: Clearance, inputs: Inputs) -> Verdict | None:
    if level > inputs.sender.clearance:
        return Verdict(
            reply(550, "5.7.1", f"Classification {level.label} exceeds your clearance"),
            "classification",
            "clearance",
        )
    over = []
    for address in inputs.recipients:
        person = inputs.snapshot.employee(address)
        if person is not None and level > person.clearance:
            over.append(address)
    if over:
        names = ", ".join(over[:10]) + (" ..." if len(over) > 10 else "")
        return Verdict(
            reply(550, "5.7.1", f"Classification {level.label} exceeds the clearance of: {names}"),
            "classification",
            "clearance",
        )
    return None


def _recipient(address: str, inputs: Inputs) -> Recipient:
    person = inputs.snapshot.employee(address)
    if person is not None:
        return Recipient(
            address, True, person.code, mailserver=inputs.mailservers.get(person.agency)
        )
    domain = address.rsplit("@", 1)[-1]
    peer = next((name for name, ds in inputs.federation.items() if domain in ds), None)
    return Recipient(address, False, None, peer)
