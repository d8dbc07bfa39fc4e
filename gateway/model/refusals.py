"""How a routing-policy denial is answered over SMTP, at RCPT and at end of data.

Owns: whether a denial is temporary (a rate rule: 450, the client retries later)
and the 550 reply naming the rule. Must not: decide anything (`policies/` does)
nor do I/O; the wording itself stays in gateway.model.replies.
"""

from __future__ import annotations

from gateway.model import replies
from policies.engine import Policy


def is_rate_rule(policy: Policy, rule_id: str) -> bool:
    """A denial by a rate rule is temporary: 450 4.7.1, the client retries later."""
    for spec in policy.document.rules:
        if spec.id == rule_id:
            return spec.conditions.rate_per_hour is not None
    return False


def rcpt_refusal(rule_id: str, reason: str) -> str:
    """The permanent reply to a recipient the policy refuses."""
    if rule_id == "unknown-recipient":
        return replies.RECIPIENT_UNKNOWN
    if rule_id == "inactive-recipient":
        return replies.RECIPIENT_INACTIVE
    if rule_id in {"unknown-sender", "inactive-sender"}:
        return replies.reply(550, "5.7.1", f"Sender may not submit (policy {rule_id})")
    return replies.reply(550, "5.7.1", f"{reason} (policy {rule_id})")
