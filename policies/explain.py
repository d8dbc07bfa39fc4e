"""`explain`: a decision together with the trace of every rule considered.

Owns: the `Explanation` value. Must not: decide differently from
`Policy.decide` (it runs the same evaluation with tracing on) or print.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.decision import RCPT_TIME, Decision, MessageFacts, TraceStep
from policies.engine import Policy


@dataclass(frozen=True, slots=True)
class Explanation:
    sender: str
    recipient: str
    sender_party: str  # how the sender was resolved, e.g. "a@x (MOH, clerk, internal)"
    recipient_party: str
    facts: MessageFacts
    decision: Decision
    trace: tuple[TraceStep, ...]
    policy_name: str
    policy_hash: str


def explain(
    policy: Policy, sender: str, recipient: str, facts: MessageFacts = RCPT_TIME
) -> Explanation:
    """Decide with a trace: one step per built-in check and per rule, in order."""
    decision, trace = policy.decide_traced(sender, recipient, facts)
    s, r = policy.resolve(sender), policy.resolve(recipient)
    return Explanation(
        sender=sender,
        recipient=recipient,
        sender_party=s.describe() if s is not None else f"{sender} (unknown)",
        recipient_party=r.describe() if r is not None else f"{recipient} (unknown)",
        facts=facts,
        decision=decision,
        trace=trace,
        policy_name=policy.source_name,
        policy_hash=policy.source_hash,
    )
