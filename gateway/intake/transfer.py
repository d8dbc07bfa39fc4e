"""The transfer listener (docs/CONTRACT.md §9; 2525 in development): mail from peer gateways.

Owns: the SMTP session rules of the transfer port, running the end-of-data
checks (gateway.checks.transfer, through gateway.checks.runner),
recognising a repeated transfer and filing. Must not: check a message itself
(a check is a class in transfer_checks), parse MIME beyond
gateway.federation.inbound or write to the database directly
(gateway.store.transfers).

A session, in order:
1. STARTTLS with a client certificate (mutual TLS). The handshake only
   succeeds with a certificate anchored in some peer's `tls_trust`; then
   `handle_STARTTLS` names the peer it belongs to (`Federation.identify`). A
   connection that is not a peer's gets nowhere: MAIL/RCPT/DATA before TLS are
   answered `530 5.7.0`, a failed handshake closes the connection, and a
   trusted certificate that identifies no single peer gets `554` to everything.
   There is no AUTH on this port.
2. MAIL FROM: an address in the peer's domains (a copy from one of its
   employees), or the null reverse-path (a notification: the delivery receipt
   for a copy we sent it, RFC 5321 §4.5.5).
3. RCPT TO: one recipient per transaction (a copy is per recipient; more get
   `452 4.5.3`), who must be one of our employees.
4. DATA: a passing DKIM signature of the peer's domain covering From and the
   Barid-* fields (`550 5.7.20` otherwise); the Barid fields and, for a copy,
   certificate.json; a repeated transfer (same trace code) is acknowledged
   as before; the classification mapped to ours (`550 5.7.1` when it has no
   mapping or exceeds the recipient's clearance); this side's policy at the
   boundary, with every fact, as for its own senders (`550 5.7.1 ... (policy
   <rule>)`; decided here rather than at RCPT so that a copy filed before a
   policy change is never refused when repeated). Then the copy is filed into
   the recipient's INBOX together with the signed delivery receipt owed to the
   origin (one transaction), or the
   receipt is filed into our sender's Receipts folder; `250` only after the
   commit, `451 4.3.0` when the store is unavailable. A repeated transfer is
   acknowledged without filing it twice.
Every refusal after TLS is audited ("transfer.refused", best effort).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import TLSSetupException

from gateway import metrics
from gateway.checks import transfer as transfer_checks
from gateway.checks.runner import run_checks
from gateway.checks.transfer import InboundTransfer
from gateway.delivery.receipts import ReceiptFacts, ReceiptKind, build_receipt
from gateway.federation.inbound import TransferFacts, trace_headers
from gateway.federation.peers import Federation, Peer
from gateway.intake.smtp.protocol import BaridSMTP
from gateway.mime.verdicts import Verdict
from gateway.model import replies
from gateway.stamping.dkim import DkimSigner
from gateway.store.mailbox.store import StoreUnavailable
from gateway.store.transfers import FederationStore, ReceivedCopy, ReturnedReceipt
from policies.directory import Clearance
from policies.holder import PolicyHolder

log = logging.getLogger("barid.transfer")

NULL_PATH = "<>"
ONE_RECIPIENT = "452 4.5.3 One recipient per transfer; send the others separately"
NOT_A_PEER_SENDER = "550 5.7.1 Sender address is not in your federation domains"
NOT_LOCAL = "550 5.1.1 Recipient is not in this gateway's directory"
NOT_OURS = "550 5.7.1 No copy of this message was transferred to you for this recipient"
DUPLICATE = "250 2.0.0 Already delivered {registry}"
DELIVERED = "250 2.0.0 Delivered {registry}"
RECEIPT_FILED = "250 2.0.0 Receipt filed {registry}"


class TransferSMTP(BaridSMTP):
    """BaridSMTP without AUTH: on the transfer port the client certificate is the identity."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._auth_required = False

    async def smtp_AUTH(self, arg: str) -> None:
        await self.push("502 5.5.1 AUTH is not offered on the transfer port")

    async def smtp_STARTTLS(self, arg: str) -> None:
        try:
            await super().smtp_STARTTLS(arg)
        except TLSSetupException as exc:
            # Not a peer (no certificate, or one no peer's trust anchors): not an error
            # of ours, so a warning; the connection ends here.
            peer = self.session.peer if self.session is not None else None
            log.warning(
                "transfer TLS handshake refused",
                extra={"client": str(peer[0]) if peer else "", "error": str(exc.__cause__)},
            )
            metrics.TRANSFERS.labels("refused", "tls").inc()
            # The TLS layer is dead and will not report the lost connection: close
            # the socket and end the session here, or it would keep its connection
            # slot until the gateway stops (a stranger could fill the table).
            original = self._original_transport
            if original is not None:
                original.close()
            self.connection_lost(exc)


class TransferHandler:
    def __init__(
        self,
        federation: Federation,
        policy: Callable[[], PolicyHolder],
        store: FederationStore,
        *,
        describe: Callable[[bytes], Awaitable[bytes]],
        signer_for: Callable[[str], DkimSigner | None],
        hostname: str,
        record_refusal: Callable[..., Awaitable[None]] | None = None,
    ) -> None:
        self._federation = federation
        self._policy = policy
        self._store = store
        self._describe = describe
        self._signer_for = signer_for
        self._hostname = hostname
        self._record_refusal = record_refusal

    # ---- session ----------------------------------------------------------------

    def handle_STARTTLS(self, server: Any, session: Any, envelope: Any) -> bool:
        ssl_object = (session.ssl or {}).get("ssl_object")
        der = (
            ssl_object.getpeercert(binary_form=True)
            if isinstance(ssl_object, ssl.SSLObject)
            else None
        )
        peer = self._federation.identify(der) if der else None
        session.barid_peer = peer
        if peer is None:
            log.warning("transfer client certificate belongs to no single peer")
            metrics.TRANSFERS.labels("refused", "tls").inc()
            return False
        log.info("transfer session", extra={"peer": peer.name})
        return True

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [line for line in responses if not line[4:].startswith("AUTH")]

    @staticmethod
    def _peer(session: Any) -> Peer | None:
        peer = getattr(session, "barid_peer", None)
        return peer if isinstance(peer, Peer) else None

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        peer = self._peer(session)
        if peer is None:
            return replies.TLS_REQUIRED
        address = address.strip().lower()
        # The null reverse-path stays "<>" in the envelope: aiosmtpd refuses RCPT
        # after an empty MAIL FROM.
        address = address or NULL_PATH
        if address != NULL_PATH and not peer.owns_address(address):
            await self._refused(peer, session, "sender-not-peer", address, "")
            return NOT_A_PEER_SENDER
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.SENDER_OK

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        peer = self._peer(session)
        if peer is None or envelope.mail_from is None:
            return "503 5.5.1 Error: need MAIL command"
        if envelope.rcpt_tos:
            return ONE_RECIPIENT
        recipient = address.strip().lower()
        holder = self._policy()
        if holder.snapshot.employee(recipient) is None:
            await self._refused(peer, session, "unknown-recipient", envelope.mail_from, recipient)
            return NOT_LOCAL
        # This side's policy decides at end of data, with every fact, and only once a
        # repeated transfer has been recognised: a copy filed before a policy change
        # is acknowledged again, never refused (its sender already has its receipt).
        envelope.rcpt_tos.append(recipient)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RECIPIENT_OK

    # ---- end of data --------------------------------------------------------------

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        peer = self._peer(session)
        if peer is None:
            return replies.TLS_REQUIRED
        transfer = InboundTransfer(
            raw=bytes(envelope.original_content or b""),
            peer=peer,
            mail_from=envelope.mail_from,
            recipient=envelope.rcpt_tos[0],
            notification=envelope.mail_from == NULL_PATH,
            policy=self._policy(),
        )
        verdict = await asyncio.to_thread(run_checks, transfer_checks.AUTHENTICITY_CHECKS, transfer)
        if not verdict.passed:
            return await self._refusal(session, transfer, verdict)
        client = str(session.peer[0]) if session.peer else ""
        try:
            if transfer.notification:
                return await self._receipt(transfer, client)
            return await self._copy(session, transfer, client)
        except StoreUnavailable:
            metrics.TRANSFERS.labels("deferred", "store").inc()
            return replies.STORAGE_UNAVAILABLE

    async def _copy(self, session: Any, transfer: InboundTransfer, client: str) -> str:
        peer, facts, recipient = transfer.peer, transfer.facts, transfer.recipient
        raw = transfer.raw
        assert facts is not None and transfer.dkim is not None
        dkim_domain = transfer.dkim.domain
        # Filed already (the peer lost our 250): acknowledged as it was, whatever
        # the policy says now, so the sender is not told it failed.
        if await self._store.has_copy(peer.name, facts.trace_code):
            metrics.TRANSFERS.labels("duplicate", "copy").inc()
            return DUPLICATE.format(registry=facts.registry)
        transfer.policy = self._policy()
        verdict = run_checks(transfer_checks.ACCEPTANCE_CHECKS, transfer)
        if not verdict.passed:
            return await self._refusal(session, transfer, verdict)
        local = transfer.local_classification
        assert local is not None
        employee_id = await self._store.recipient_id(recipient)
        if employee_id is None:
            return replies.RECIPIENT_INACTIVE
        now = dt.datetime.now(dt.UTC)
        filed = (
            trace_headers(
                hostname=self._hostname,
                peer=peer.name,
                client=client,
                dkim_domain=dkim_domain or "",
                local_classification=local,
                received_at=now,
            )
            + raw
        )
        receipt, receipt_from = self._delivery_receipt(facts, recipient, local, now)
        outcome = await self._store.file_copy(
            ReceivedCopy(
                peer=peer.name,
                registry=facts.registry,
                trace_code=facts.trace_code,
                sender=facts.sender,
                recipient=recipient,
                classification=local,
                remote_classification=facts.classification,
                dkim_domain=dkim_domain or "",
                client=client,
                raw=filed,
                meta=await self._describe(filed),
                receipt=receipt,
                receipt_from=receipt_from,
                receipt_to=facts.sender,
            ),
            employee_id,
        )
        metrics.TRANSFERS.labels(outcome if outcome == "duplicate" else "accepted", "copy").inc()
        log.info("transfer received", extra={"peer": peer.name, "registry": facts.registry})
        template = DUPLICATE if outcome == "duplicate" else DELIVERED
        return template.format(registry=facts.registry)

    def _delivery_receipt(
        self, facts: TransferFacts, recipient: str, local: str, now: dt.datetime
    ) -> tuple[bytes, str]:
        """The signed delivery receipt for the origin, and its envelope sender (null)."""
        holder = self._policy()
        person = holder.snapshot.employee(recipient)
        agency = holder.snapshot.agencies.get(person.agency) if person is not None else None
        issuer = agency.domain if agency is not None else recipient.rpartition("@")[2]
        try:
            label = Clearance.parse(facts.classification.lower()).label
        except ValueError:
            label = local
        assert facts.issued_at is not None
        receipt = build_receipt(
            ReceiptFacts(
                kind=ReceiptKind.DELIVERY,
                registry=facts.registry,
                token=facts.token,
                verify_url=facts.verify_url,
                sender_address=facts.sender,
                sender_domain=facts.sender.rpartition("@")[2],
                subject=facts.subject,
                classification=label,
                accepted_at=facts.issued_at,
                event_at=now,
                recipients=(recipient,),
                documents=tuple((name, sha) for name, _, _, sha in facts.documents),
                issuer_domain=issuer,
            ),
            hostname=self._hostname,
            signer=self._signer_for(issuer),
        )
        return receipt, ""

    async def _receipt(self, transfer: InboundTransfer, client: str) -> str:
        peer, facts, rcpt, raw = transfer.peer, transfer.facts, transfer.recipient, transfer.raw
        assert facts is not None and transfer.dkim is not None
        dkim_domain = transfer.dkim.domain
        filed = (
            trace_headers(
                hostname=self._hostname,
                peer=peer.name,
                client=client,
                dkim_domain=dkim_domain or "",
                local_classification=None,
                received_at=dt.datetime.now(dt.UTC),
            )
            + raw
        )
        outcome = await self._store.file_receipt(
            ReturnedReceipt(
                peer=peer.name,
                registry=facts.registry,
                recipient=facts.receipt_recipient,
                rcpt=rcpt,
                client=client,
                raw=filed,
                meta=await self._describe(filed),
            )
        )
        if outcome == "unknown":
            metrics.TRANSFERS.labels("refused", "receipt").inc()
            return NOT_OURS
        metrics.TRANSFERS.labels(
            "duplicate" if outcome == "duplicate" else "accepted", "receipt"
        ).inc()
        return RECEIPT_FILED.format(registry=facts.registry)

    async def _refusal(self, session: Any, transfer: InboundTransfer, verdict: Verdict) -> str:
        """Audit a check's refusal and give its reply."""
        await self._refused(
            transfer.peer,
            session,
            verdict.reason,
            transfer.mail_from,
            transfer.recipient,
            verdict.rule_id or None,
            detail=verdict.detail,
        )
        return verdict.reply

    async def _refused(
        self,
        peer: Peer,
        session: Any,
        reason: str,
        sender: str | None,
        recipient: str,
        rule: str | None = None,
        detail: str = "",
    ) -> None:
        metrics.TRANSFERS.labels("refused", reason).inc()
        log.info("transfer refused", extra={"peer": peer.name, "reason": reason})
        if self._record_refusal is None:
            return
        try:
            await self._record_refusal(
                peer=peer.name,
                reason=reason,
                sender=sender or "",
                recipient=recipient,
                rule=rule,
                detail=detail,
                client=str(session.peer[0]) if getattr(session, "peer", None) else "",
            )
        except Exception:
            log.warning("transfer refusal not audited: database unavailable", exc_info=True)
