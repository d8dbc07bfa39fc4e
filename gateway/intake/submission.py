"""The aiosmtpd handler of the submission listeners: AUTH, MAIL, RCPT, DATA.

Owns: the AUTH replies (the check itself is gateway.intake.login's), that MAIL FROM
is the authenticated employee, and the per-recipient policy decision at RCPT
time (each refused recipient gets its own reply with the rule id). DATA goes
to the `Pipeline`. Must not: parse messages or touch the store directly;
every reply comes from gateway.model.replies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway import metrics
from gateway.intake.login import Authenticator, Outcome
from gateway.model import replies
from gateway.model.refusals import is_rate_rule, rcpt_refusal
from gateway.store.directory import Directory
from policies.decision import MessageFacts
from policies.holder import PolicyHolder

log = logging.getLogger("barid.submission")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who authenticated on this session."""

    address: str


class Pipeline(Protocol):
    async def process(
        self,
        identity: Identity,
        peer: str,
        mail_from: str,
        recipients: list[str],
        raw: bytes,
        sent_last_hour: int,
    ) -> str:
        """Check, stamp and store one message; return the SMTP reply line."""
        ...


class SubmissionHandler:
    def __init__(
        self,
        directory: Directory,
        policy: Callable[[], PolicyHolder],
        pipeline: Pipeline,
        *,
        max_recipients: int,
        sent_last_hour: Callable[[str], Awaitable[int]],
        record_refusal: Callable[..., Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        authenticator: Authenticator | None = None,
    ) -> None:
        self._directory = directory
        self._policy = policy
        self._pipeline = pipeline
        self._max_recipients = max_recipients
        self._sent_last_hour = sent_last_hour
        self._record_refusal = record_refusal
        self._clock = clock
        self.authenticator = authenticator or Authenticator(directory, clock=clock)

    # ---- AUTH ----------------------------------------------------------------

    async def authenticate(self, peer: str, login: str, password: str) -> tuple[bool, str, Any]:
        """Check one AUTH attempt (gateway.intake.login: throttled, serialized per account)."""
        result = await self.authenticator.check(peer, login, password, protocol="smtp")
        if result.ok:
            return True, replies.AUTH_OK, Identity(result.account)
        reply = {
            Outcome.THROTTLED: replies.AUTH_THROTTLED,
            Outcome.UNAVAILABLE: replies.AUTH_UNAVAILABLE,
        }.get(result.outcome, replies.AUTH_FAILED)
        return False, reply, None

    # ---- envelope -------------------------------------------------------------

    @staticmethod
    def _identity(session: Any) -> Identity | None:
        data = getattr(session, "auth_data", None)
        return data if isinstance(data, Identity) else None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        identity = self._identity(session)
        if identity is None:
            return replies.AUTH_REQUIRED
        if not address:
            return replies.NULL_SENDER
        if address.strip().lower() != identity.address:
            metrics.SUBMISSIONS.labels("rejected", "sender-not-yours").inc()
            await self._audit(identity, session, "sender-not-yours", None, [])
            return replies.SENDER_NOT_YOURS
        # The sender's count for the policy's rate conditions, once per transaction.
        try:
            envelope.barid_sent_last_hour = await self._sent_last_hour(identity.address)
        except Exception:
            log.warning("rate count unavailable", exc_info=True)
            return replies.STORAGE_UNAVAILABLE
        envelope.mail_from = identity.address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        identity = self._identity(session)
        if identity is None or envelope.mail_from is None:
            return "503 5.5.1 Error: need MAIL command"
        if len(envelope.rcpt_tos) >= self._max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        recipient = address.strip().lower()
        sent = int(getattr(envelope, "barid_sent_last_hour", 0))
        decision = self._policy().decide(
            identity.address, recipient, MessageFacts(sender_messages_last_hour=sent)
        )
        if not decision.allowed:
            metrics.RECIPIENTS.labels("refused", _bounded(decision.rule_id)).inc()
            await self._audit(identity, session, "recipient", decision.rule_id, [recipient])
            if is_rate_rule(self._policy().policy, decision.rule_id):
                return replies.RATE_LIMITED
            return rcpt_refusal(decision.rule_id, decision.reason.en)
        if recipient not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(recipient)
            envelope.rcpt_options.extend(rcpt_options)
        metrics.RECIPIENTS.labels("accepted", "allowed").inc()
        return replies.RECIPIENT_OK

    async def _audit(
        self, identity: Identity, session: Any, reason: str, rule: str | None, rcpts: list[str]
    ) -> None:
        """Record an envelope-time refusal in the audit trail (best effort: never blocks mail)."""
        if self._record_refusal is None:
            return
        peer = str(session.peer[0]) if getattr(session, "peer", None) else ""
        try:
            await self._record_refusal(
                actor=f"smtp:{identity.address}",
                sender=identity.address,
                reason=reason,
                rule=rule,
                recipients=rcpts,
                client_address=peer,
            )
        except Exception:
            log.warning("refusal not audited: database unavailable", exc_info=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        identity = self._identity(session)
        if identity is None:
            return replies.AUTH_REQUIRED
        peer = str(session.peer[0]) if session.peer else ""
        raw = envelope.original_content or b""
        sent = int(getattr(envelope, "barid_sent_last_hour", 0))
        return await self._pipeline.process(
            identity, peer, envelope.mail_from, list(envelope.rcpt_tos), raw, sent
        )


BUILTIN_RULES = {"unknown-recipient", "inactive-recipient", "clearance", "unknown-sender",
                 "inactive-sender", "default"}  # fmt: skip


def _bounded(rule_id: str) -> str:
    """Metric label: built-in ids as they are, policy rules as one value (bounded)."""
    return rule_id if rule_id in BUILTIN_RULES else "policy-rule"
