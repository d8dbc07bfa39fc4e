"""Audit-mode policy rules at submission: each match is one "policy.audit-hit" audit
event (with the acceptance, or with the refusal) and one increment of
barid_policy_audit_hits_total{rule}; `barid policy hits` lists them. Real SMTP
submission of gpg-signed messages to the live demo gateway."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from gateway import metrics
from gateway.store.audit import POLICY_AUDIT_HIT, recent
from testkit.messages import pgp_mime

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
MOH_REGISTRAR = "registrar@moh.gov.example"

WATCH_RULE = """rules:
  - id: watch-to-mof
    description: Observe mail to the finance minister (audit mode).
    mode: audit
    recipient: {address: minister@mof.gov.example}
    effect: deny
    reason: {en: Watched., ar: مراقب.}
"""


def code_of(live: Any, who: str) -> list[tuple[str, str]]:
    return [("Barid-Employee-Code", live.credentials[who]["code"])]


def hits_metric(rule: str) -> float:
    value = metrics.REGISTRY.get_sample_value("barid_policy_audit_hits_total", {"rule": rule})
    return value or 0.0


async def use_policy(live: Any, change: Any) -> None:
    policy = live.data / "policies.yaml"
    policy.write_text(change(policy.read_text(encoding="utf-8")), encoding="utf-8")
    result = await live.gateway.policy.reload("test")
    assert result.ok, result.problems


async def hit_events(live: Any) -> list[dict[str, Any]]:
    async with live.gateway.sessions() as s:
        return await recent(s, action=POLICY_AUDIT_HIT, limit=100)


async def test_audit_rule_match_is_one_event_and_one_increment(
    live: Any, gnupghome: Path, make_cli: Any
) -> None:
    await use_policy(live, lambda text: text.replace("rules:\n", WATCH_RULE, 1))
    before = hits_metric("watch-to-mof")
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF, MOH_REGISTRAR], extra=code_of(live, MOH))
    code, text = await live.send(MOH, [MOF, MOH_REGISTRAR], raw)
    assert code == 250, (code, text)  # audit mode never blocks
    registry = text.split()[-1]
    events = await hit_events(live)
    assert len(events) == 1  # one recipient matched: exactly one event
    (event,) = events
    assert event["target"] == registry and event["actor"] == f"smtp:{MOH}"
    assert event["details"]["rule"] == "watch-to-mof"
    assert event["details"]["sender"] == MOH and event["details"]["recipient"] == MOF
    assert event["details"]["registry"] == registry
    assert hits_metric("watch-to-mof") - before == 1
    # the event sits in the acceptance's transaction, right after its message.accept
    async with live.gateway.sessions() as s:
        accepts = await recent(s, action="message.accept", limit=1)
    assert accepts[-1]["target"] == registry and accepts[-1]["id"] == event["id"] - 1

    cli = make_cli({"BARID_CONFIG": str(live.data / "barid.toml")})
    result = await asyncio.to_thread(cli, "policy", "hits", "--rule", "watch-to-mof", "--json")
    assert result.code == 0, result.err
    listed = json.loads(result.out)
    assert [(h["rule"], h["recipient"], h["registry"], h["outcome"]) for h in listed] == [
        ("watch-to-mof", MOF, registry, "accepted")
    ]
    other = await asyncio.to_thread(cli, "policy", "hits", "--rule", "no-such-rule", "--json")
    assert other.code == 0 and json.loads(other.out) == []
    text_out = await asyncio.to_thread(cli, "policy", "hits", "--since", "1h")
    assert text_out.code == 0 and "watch-to-mof" in text_out.out and registry in text_out.out
    bad = await asyncio.to_thread(cli, "policy", "hits", "--since", "yesterday-ish")
    assert bad.code != 0 and "not a time" in bad.err


async def test_audit_rule_match_is_audited_with_a_refusal(live: Any, gnupghome: Path) -> None:
    # the audit rule comes first; a later enforce rule (size) refuses the message
    await use_policy(
        live,
        lambda text: text.replace("rules:\n", WATCH_RULE, 1).replace(
            "size: {at_least: 50MiB}", "size: {at_least: 1KiB}"
        ),
    )
    before = hits_metric("watch-to-mof")
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    code, text = await live.send(MOH, [MOF], raw)
    assert code == 550 and "message-size" in text, (code, text)
    events = await hit_events(live)
    assert len(events) == 1
    assert events[0]["target"] == MOH and events[0]["details"]["recipient"] == MOF
    assert "registry" not in events[0]["details"]
    assert hits_metric("watch-to-mof") - before == 1
    async with live.gateway.sessions() as s:
        rejects = await recent(s, action="message.reject", limit=1)
    assert rejects[-1]["details"]["rule"] == "message-size"
    assert rejects[-1]["id"] == events[0]["id"] - 1


async def test_enforce_rules_and_unmatched_audit_rules_record_no_hits(
    live: Any, gnupghome: Path
) -> None:
    before = hits_metric("audit-wide-distribution")
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    code, text = await live.send(MOH, [MOF], raw)
    assert code == 250, (code, text)
    assert await hit_events(live) == []
    assert hits_metric("audit-wide-distribution") == before
