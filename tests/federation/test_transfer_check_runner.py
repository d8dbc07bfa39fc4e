"""Peer transfer runs its end-of-data checks through the shared runner
(gateway.checks.runner): a new check is one class placed in one of the two lists of
gateway.checks.transfer, and a real transfer session (mutual TLS,
DKIM) gets its verdict, audited with its reason, with nothing filed.

Also pins why there are two lists: acceptance is checked only for a copy not
filed yet (a repeat is acknowledged as before), authenticity for every transfer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from test_federation_faults import REGISTRAR, REGISTRY, scalar, submit

from gateway.checks import transfer as transfer_checks
from gateway.checks.runner import Check
from gateway.checks.transfer import InboundTransfer
from gateway.federation.client import Transfer, send_batch
from gateway.mime.verdicts import Verdict
from gateway.store.models import AuditEvent, InboundCopy, MessageCopy

ADDED_REPLY = "550 5.7.1 Refused by the added transfer check"


class RefusingCheck(Check[InboundTransfer]):
    """A new check: refuses every transfer, records the trace codes it saw."""

    def __init__(self, name: str, needs: tuple[str, ...] = ()) -> None:
        self.name, self.needs = name, needs
        self.seen: list[str] = []

    def run(self, transfer: InboundTransfer) -> Verdict:
        self.seen.append(transfer.facts.trace_code if transfer.facts else "")
        return Verdict(ADDED_REPLY, "added-check", detail="seen")


async def test_added_checks_decide_transfers(
    pair: Any, gnupghome: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    region = await pair.start("region")
    central = await pair.start("central")
    await central.gateway.relay.stop()  # we hand the copy over ourselves
    registry = await submit(central, gnupghome)
    async with central.gateway.sessions() as s:
        copy = (await s.execute(select(MessageCopy))).scalar_one()
    signed = central.gateway.relay._signer_for("moh.gov.example").signed(
        await central.gateway.store.load_copy(copy.id)
    )
    peer = central.gateway.federation["region"]
    tls = central.gateway.settings

    async def hand_over() -> str:
        [outcome] = await send_batch(peer, [Transfer(REGISTRAR, REGISTRY, signed)],
                                     cert=tls.tls_cert, key=tls.tls_key,
                                     hostname="central.example", seconds=10)  # fmt: skip
        return str(outcome.reply)

    async def refusals() -> int:
        return int(await scalar(region, select(func.count()).select_from(AuditEvent)
                                .where(AuditEvent.action == "transfer.refused")))  # fmt: skip

    # An acceptance check added: the genuine copy is refused with its reply, audited.
    acceptance = RefusingCheck("added-acceptance", needs=("facts", "local_classification"))
    monkeypatch.setattr(transfer_checks, "ACCEPTANCE_CHECKS",
                        (*transfer_checks.ACCEPTANCE_CHECKS, acceptance))  # fmt: skip
    assert (await hand_over()).startswith(ADDED_REPLY)
    assert acceptance.seen == [copy.trace_code]
    assert await refusals() == 1
    assert await scalar(region, select(func.count()).select_from(InboundCopy)) == 0

    # Without it the copy is filed; with it back, a repeat is still acknowledged:
    # acceptance is not checked again for a copy already filed.
    without = tuple(c for c in transfer_checks.ACCEPTANCE_CHECKS if c is not acceptance)
    monkeypatch.setattr(transfer_checks, "ACCEPTANCE_CHECKS", without)
    assert (await hand_over()).startswith(f"250 2.0.0 Delivered {registry}")
    monkeypatch.setattr(transfer_checks, "ACCEPTANCE_CHECKS", (*without, acceptance))
    assert (await hand_over()).startswith(f"250 2.0.0 Already delivered {registry}")
    assert acceptance.seen == [copy.trace_code]

    # An authenticity check is run for every transfer, a repeat included.
    authenticity = RefusingCheck("added-authenticity", needs=("facts",))
    monkeypatch.setattr(transfer_checks, "AUTHENTICITY_CHECKS",
                        (*transfer_checks.AUTHENTICITY_CHECKS, authenticity))  # fmt: skip
    assert (await hand_over()).startswith(ADDED_REPLY)
    assert authenticity.seen == [copy.trace_code]
    assert await refusals() == 2
    assert await scalar(region, select(func.count()).select_from(InboundCopy)) == 1
