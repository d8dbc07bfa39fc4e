"""Benchmark of the routing-policy engine over a synthetic national directory.

Builds 1,000 agencies, 10,000 employees and a 200-rule policy, then measures
snapshot build + policy compile time and per-decision latency (median, p99)
over several runs, for RCPT-time facts and full end-of-data facts.

Run from the repository root:

    .venv/bin/python -m bench.bench_policy [--runs 5] [--decisions 20000] [--seed 7]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time

import yaml

from policies.codes import EmployeeCode
from policies.decision import Attachment, MessageFacts
from policies.directory import (
    AgencyKind,
    AgencyRecord,
    Clearance,
    DirectorySnapshot,
    EmployeeRecord,
    EmployeeStatus,
)
from policies.engine import Policy
from policies.loader import check_policy

MINISTRIES = 30
DIRECTORATES_PER_MINISTRY = 10
ENTITIES = 10
GOVERNORATES = 20
TARGET_AGENCIES = 1000
EMPLOYEES_PER_AGENCY = 10
ROLES = ("minister", "director", "clerk", "clerk", "clerk", "registrar", "clerk", "director")
FEDERATION = {"region": frozenset({"region.gov.example", "krg.gov.example"})}


def build_records(rng: random.Random) -> tuple[list[AgencyRecord], list[EmployeeRecord]]:
    agencies: list[AgencyRecord] = []

    def add(code: str, kind: AgencyKind, parent: str | None, domain: str) -> None:
        agencies.append(AgencyRecord(code, code, code, kind, domain, parent))

    for e in range(ENTITIES):
        add(f"ENT{e:02d}", AgencyKind.ENTITY, None, f"ent{e:02d}.gov.example")
    for g in range(GOVERNORATES):
        add(f"GOV{g:02d}", AgencyKind.GOVERNORATE, None, f"gov{g:02d}.gov.example")
    directorates: list[tuple[str, str]] = []
    for m in range(MINISTRIES):
        code, domain = f"MIN{m:02d}", f"min{m:02d}.gov.example"
        add(code, AgencyKind.MINISTRY, None, domain)
        for d in range(DIRECTORATES_PER_MINISTRY):
            add(f"{code}-D{d:02d}", AgencyKind.DIRECTORATE, code, domain)
            directorates.append((f"{code}-D{d:02d}", domain))
    b = 0
    while len(agencies) < TARGET_AGENCIES:
        parent, domain = directorates[b % len(directorates)]
        add(f"{parent}-B{b // len(directorates):02d}", AgencyKind.BRANCH, parent, domain)
        b += 1
    employees = []
    for agency in agencies:
        for n in range(1, EMPLOYEES_PER_AGENCY + 1):
            local = f"{agency.code.lower()}.e{n:02d}"
            employees.append(
                EmployeeRecord(
                    address=f"{local}@{agency.domain}",
                    agency=agency.code,
                    name_en=local,
                    name_ar=local,
                    role=ROLES[n % len(ROLES)],
                    clearance=Clearance(rng.randrange(4)),
                    status=EmployeeStatus.ACTIVE,
                    code=str(EmployeeCode(agency.code, n)),
                )
            )
    return agencies, employees


Rule = dict[str, object]


def rule(rid: str, effect: str = "allow", mode: str = "enforce", **keys: object) -> Rule:
    out: Rule = {"id": rid, "description": f"synthetic rule {rid}", **keys, "effect": effect}
    if mode != "enforce":
        out["mode"] = mode
    if effect == "deny":
        out["reason"] = {"en": f"Refused by rule {rid}.", "ar": f"مرفوض بموجب القاعدة {rid}."}
    return out


def build_policy_text() -> str:
    """200 rules: message limits and audit rules first, then per-agency routes."""
    rules: list[Rule] = [
        rule("no-exe", "deny", conditions={"attachments": {"any_of": ["exe", "js"]}}),
        rule("rate", "deny", conditions={"rate_per_hour": {"at_least": 500}}),
        rule("size", "deny", conditions={"size": {"at_least": "50MiB"}}),
    ]
    for i in range(5):
        rules.append(
            rule(
                f"audit-{i}",
                "deny",
                "audit",
                sender={"agency": f"MIN{i:02d}/**"},
                conditions={"recipients": {"at_least": 20 + i}},
            )
        )
    for m in range(MINISTRIES):
        code, nxt = f"MIN{m:02d}", f"MIN{(m + 1) % MINISTRIES:02d}"
        rules += [
            rule(
                f"{code}-secret-out",
                "deny",
                sender={"agency": f"{code}/**", "clearance": {"at_most": "internal"}},
                recipient={"agency": f"{nxt}/**"},
                conditions={"classification": {"at_least": "confidential"}},
            ),
            rule(
                f"{code}-tree",
                sender={"agency": f"{code}/**"},
                recipient={"relation": ["same-agency", "ancestor", "same-subtree"]},
            ),
            rule(
                f"{code}-directors",
                sender={"agency": f"{code}/**", "role": "director"},
                recipient={"agency": f"{nxt}/**", "role": ["director", "minister"]},
            ),
            rule(
                f"{code}-registry",
                sender={"address_pattern": f"registrar*@min{m:02d}.gov.example"},
                recipient={"address_pattern": f"*@{nxt.lower()}.gov.example"},
            ),
            rule(
                f"{code}-gov",
                sender={"agency": code},
                recipient={"kind": "governorate", "clearance": {"at_least": "internal"}},
            ),
        ]
    for g in range(0, GOVERNORATES, 2):
        rules += [
            rule(
                f"GOV{g:02d}-min",
                sender={"agency": f"GOV{g:02d}"},
                recipient={"kind": "ministry", "role": ["minister", "registrar"]},
            ),
            rule(
                f"GOV{g:02d}-pdf",
                sender={"agency": f"GOV{g:02d}", "role": "clerk"},
                recipient={"kind": "entity"},
                conditions={"attachments": {"only": ["pdf", "application/pdf"]}},
            ),
        ]
    for e in range(ENTITIES):
        rules.append(
            rule(
                f"ENT{e:02d}-min",
                sender={"agency": f"ENT{e:02d}"},
                recipient={"kind": ["ministry", "entity"]},
            )
        )
    rules += [
        rule(
            "region-out",
            sender={"role": "registrar"},
            recipient={"peer": "region", "address_pattern": "registry@*"},
        ),
        rule("region-in", sender={"peer": "region"}, recipient={"role": "registrar"}),
    ]
    for i in range(200 - len(rules)):
        rules.append(
            rule(
                f"entity-to-governorate-{i}",
                sender={"agency": f"ENT{i % ENTITIES:02d}", "role": "clerk"},
                recipient={"agency": f"GOV{i % GOVERNORATES:02d}"},
                conditions={"size": {"at_most": f"{1000 + i}KB"}},
            )
        )
    assert len(rules) == 200, len(rules)
    return yaml.safe_dump({"version": 1, "rules": rules}, allow_unicode=True, sort_keys=False)


def build(
    agencies: list[AgencyRecord], employees: list[EmployeeRecord], text: str
) -> tuple[Policy, float, float]:
    t0 = time.perf_counter()
    snapshot = DirectorySnapshot.build(agencies, employees)
    t1 = time.perf_counter()
    result = check_policy(text, snapshot, FEDERATION, name="bench-policy.yaml")
    t2 = time.perf_counter()
    if result.policy is None:
        raise SystemExit("\n".join(str(p) for p in result.problems))
    return result.policy, t1 - t0, t2 - t1


def workload(
    rng: random.Random, employees: list[EmployeeRecord], n: int, full: bool
) -> list[tuple[str, str, MessageFacts]]:
    out = []
    addresses = [e.address for e in employees]
    by_domain: dict[str, list[str]] = {}
    for address in addresses:
        by_domain.setdefault(address.rpartition("@")[2], []).append(address)
    for _ in range(n):
        sender = rng.choice(addresses)
        roll = rng.random()
        if roll < 0.05:
            recipient = "registry@region.gov.example"
        elif roll < 0.08:
            recipient = "nobody@min01.gov.example"
        elif roll < 0.5:  # same ministry tree: exercises the relation rules
            recipient = rng.choice(by_domain[sender.rpartition("@")[2]])
        else:
            recipient = rng.choice(addresses)
        if full:
            facts = MessageFacts(
                classification=Clearance(rng.randrange(4)),
                attachments=(Attachment("letter.pdf", "application/pdf"),),
                size=rng.randrange(10_000, 5_000_000),
                recipient_count=rng.randrange(1, 40),
                sender_messages_last_hour=rng.randrange(0, 600),
            )
        else:
            facts = MessageFacts(sender_messages_last_hour=rng.randrange(0, 600))
        out.append((sender, recipient, facts))
    return out


def percentile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def measure(
    policy: Policy, work: list[tuple[str, str, MessageFacts]]
) -> tuple[float, float, float]:
    """(median us, p99 us, decisions per second) for one run."""
    decide = policy.decide
    clock = time.perf_counter_ns
    samples = []
    gc.disable()
    try:
        for sender, recipient, facts in work:
            start = clock()
            decide(sender, recipient, facts)
            samples.append(clock() - start)
        start = clock()
        for sender, recipient, facts in work:
            decide(sender, recipient, facts)
        bulk = clock() - start
    finally:
        gc.enable()
    samples.sort()
    return (
        percentile(samples, 0.5) / 1000,
        percentile(samples, 0.99) / 1000,
        len(work) / (bulk / 1e9),
    )


def baseline(snapshot: DirectorySnapshot, work: list[tuple[str, str, MessageFacts]]) -> float:
    """Per-pair cost of the least any decision does: look both parties up (ns, bulk)."""
    employee = snapshot.employee
    clock = time.perf_counter_ns
    gc.disable()
    try:
        start = clock()
        for sender, recipient, _facts in work:
            employee(sender)
            employee(recipient)
        return (clock() - start) / len(work)
    finally:
        gc.enable()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    agencies, employees = build_records(rng)
    text = build_policy_text()
    builds = [build(agencies, employees, text) for _ in range(3)]
    policy = builds[-1][0]
    print(
        f"directory: {len(agencies)} agencies, {len(employees)} employees;"
        f" policy: {len(policy.rules)} rules"
    )
    snapshot_ms = min(b[1] for b in builds) * 1000
    compile_ms = min(b[2] for b in builds) * 1000
    print(f"snapshot build: {snapshot_ms:.1f} ms (best of 3)")
    print(f"policy parse + validate + compile: {compile_ms:.0f} ms (best of 3)")
    for label, full in (("RCPT-time facts", False), ("full facts", True)):
        work = workload(rng, employees, args.decisions, full)
        results = []
        ratios = []
        for _ in range(args.runs):
            base_ns = baseline(policy.snapshot, work)
            result = measure(policy, work)
            results.append(result)
            ratios.append((1e9 / result[2]) / base_ns)  # bulk decision time / bulk lookup time
        medians = [r[0] for r in results]
        p99s = [r[1] for r in results]
        rates = [r[2] for r in results]
        print(
            f"{label}: median {statistics.median(medians):.2f} us,"
            f" p99 {statistics.median(p99s):.2f} us,"
            f" {statistics.median(rates):,.0f} decisions/s"
            f" (median of {args.runs} runs x {args.decisions} decisions;"
            f" run medians {min(medians):.2f}-{max(medians):.2f} us)"
        )
        print(
            f"  ratio to the baseline (two directory lookups per pair, same run):"
            f" median {statistics.median(ratios):.1f}x, min {min(ratios):.1f}x,"
            f" max {max(ratios):.1f}x"
        )


if __name__ == "__main__":
    main()
