"""Benchmark of a circular: one signed message to every entity of a large directory.

Set-up (not timed): `barid demo --no-serve` in a temporary data directory; a
generated directory of `--agencies` agencies (the import benchmark's tree,
bench/import_data.py, with codes and domains of their own) and `--employees`
employees (clearance "confidential", so the built-in clearance rule lets the
letter reach everyone) imported with `barid directory import`; the shipped
policy gets a first rule letting the demo minister (minister@moh.gov.example)
write to anyone, and `[smtp] max_recipients` is raised to 10,000.

Each round (the gateway runs in this process, as testkit/gateway.py starts it,
on SQLite, with its delivery worker running): the demo's signed letter
(`demo/letters/welcome.eml`, a fresh Message-ID each round) is submitted over
STARTTLS + AUTH from the minister to `--recipients` imported employees (one
MAIL, one RCPT per recipient, then DATA). Measured:

  accept_s    from sending DATA to the 250 reply;
  deliver_s   from the 250 to the last copy delivered (the newest
              `delivery_queue.delivered_at` of the message's copies; the
              queue is polled every 50 ms until every copy is settled);
  settle_s    from the 250 until no receipt job of the message is pending;
  bytes/copy  growth of the database file (after a WAL checkpoint) divided
              by the copies, and the same by table and index (SQLite's dbstat),
              and the blob bytes (plaintext and ciphertext) created in the
              round by purpose, per copy;
  receipts    messages in the sender's Receipts folder filed in the round.

Every figure is the median (min-max) of `--rounds` rounds. Run from the
repository root:

    .venv/bin/python -m bench.bench_circular [--rounds 3] [--recipients 859]
        [--agencies 859] [--employees 860]

A JSON summary goes to bench/results/circular.json (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import io
import json
import random
import re
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiosmtplib

from bench import bench_submission as sub
from bench.imap_delivery import in_process_gateway
from bench.imap_setup import BenchError, clean_env, say, spread
from bench.import_data import COLUMNS, build_agencies

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "circular.json"
SENDER = "minister@moh.gov.example"
STEP_TIMEOUT = 600
ROUND_TIMEOUT = 600.0
POLL_SECONDS = 0.05
ALLOW_RULE = (
    "rules:\n"
    "  - id: bench-circular\n"
    "    description: The benchmark's minister writes to every entity.\n"
    f"    sender: {{address: {SENDER}}}\n"
    "    effect: allow\n\n"
)


def directory_csv(agencies: int, employees: int) -> tuple[bytes, list[str]]:
    """The directory CSV and the employees' addresses (codes and domains prefixed
    so they never meet the demo's own agencies)."""
    rng = random.Random(19)
    rows = build_agencies(agencies, rng)
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for a in rows:
        parent = f"C{a.parent}" if a.parent else ""
        writer.writerow(["agency", f"C{a.code}", a.name_en, a.name_ar, a.kind,
                         f"c{a.domain}", parent, "", "", "", ""])  # fmt: skip
    addresses = []
    for n in range(employees):
        agency = rows[n % len(rows)]
        address = f"staff{n:05d}@c{agency.domain}"
        addresses.append(address)
        writer.writerow(["employee", "", f"Staff {n}", f"موظف {n}", "", "", "", address,
                         f"C{agency.code}", "registrar", "confidential"])  # fmt: skip
    return out.getvalue().encode("utf-8"), addresses


def prepare(data: Path, agencies: int, employees: int) -> tuple[str, list[str], bytes]:
    """The data directory ready; (the sender's password, recipients, the letter)."""

    def run(*args: str) -> None:
        done = subprocess.run([sys.executable, "-m", "admin", *args], capture_output=True,
                              timeout=STEP_TIMEOUT, env=clean_env(), cwd=ROOT,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace")[-2000:]
            raise BenchError(f"barid {args[0]} failed: {tail}")

    run("demo", "--data-dir", str(data), "--no-serve")
    table, addresses = directory_csv(agencies, employees)
    (data / "circular.csv").write_bytes(table)
    run("directory", "import", "--config", str(data / "barid.toml"), str(data / "circular.csv"))
    policy = data / "policies.yaml"
    text, count = re.subn(r"^rules:\n", ALLOW_RULE, policy.read_text(), flags=re.M)
    if count != 1:
        raise BenchError(f"expected one 'rules:' line in {policy}")
    policy.write_text(text)
    rows = json.loads((data / "demo" / "credentials.json").read_text())
    creds = {row["address"]: row for row in rows}
    letter = (data / "demo" / "letters" / "welcome.eml").read_bytes()
    return str(creds[SENDER]["password"]), addresses, letter


def table_bytes(db: Path) -> dict[str, int]:
    with contextlib.closing(sqlite3.connect(db)) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        rows = c.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").fetchall()
    return {str(name): int(size) for name, size in rows}


def blob_bytes(db: Path, since: str) -> dict[str, tuple[int, int]]:
    with contextlib.closing(sqlite3.connect(db)) as c:
        rows = c.execute("SELECT purpose, SUM(size), SUM(length(ciphertext) + length(nonce)"
                         " + length(wrapped_key) + 150) FROM blobs WHERE created_at > ?"
                         " GROUP BY purpose", (since,)).fetchall()  # fmt: skip
    return {str(p): (int(s), int(c)) for p, s, c in rows}


async def one_round(gateway: Any, password: str, recipients: list[str], letter: bytes,
                    rnd: int) -> dict[str, Any]:  # fmt: skip
    from sqlalchemy import func, select

    from gateway.store.db import utcnow
    from gateway.store.mailbox.folders import RECEIPTS
    from gateway.store.models import DeliveryQueueEntry as Entry
    from gateway.store.models import (
        Employee,
        Mailbox,
        MailboxMessage,
        Message,
        MessageCopy,
        ReceiptJob,
    )

    db = Path(gateway.settings.data_dir) / "barid.db"
    since = utcnow()
    before = table_bytes(db)
    async with gateway.sessions() as s:
        receipts_box = (
            select(Mailbox.id)
            .join(Employee, Employee.id == Mailbox.employee_id)
            .where(Employee.address == SENDER, Mailbox.name == RECEIPTS)
        )
        count_receipts = select(func.count()).select_from(MailboxMessage).where(
            MailboxMessage.mailbox_id.in_(receipts_box))  # fmt: skip
        receipts_before = int(await s.scalar(count_receipts) or 0)
    mid = f"<circular-{rnd}-{time.time_ns()}@moh.gov.example>"
    raw = re.sub(rb"(?m)^Message-ID: .*\r\n", f"Message-ID: {mid}\r\n".encode(), letter, count=1)
    tls = sub.client_tls(gateway.settings.tls_cert)
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=gateway.smtp_ports["submission"],
                             start_tls=True, tls_context=tls, timeout=120)  # fmt: skip
    await client.connect()
    try:
        await client.login(SENDER, password)
        await client.mail(SENDER)
        for rcpt in recipients:
            await client.rcpt(rcpt)
        t0 = time.perf_counter()
        reply = await client.data(raw)
        t250 = time.perf_counter()
        wall250 = time.time()
    finally:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
    if reply.code != 250:
        raise BenchError(f"DATA answered {reply.code} {reply.message[:200]}")
    want = len(recipients)
    async with gateway.sessions() as s:
        message_id = await s.scalar(select(Message.id).where(Message.accepted_at >= since))
    copies = select(MessageCopy.id).where(MessageCopy.message_id == message_id)
    states = (
        select(Entry.state, func.count()).where(Entry.copy_id.in_(copies)).group_by(Entry.state)
    )
    pending = select(func.count()).select_from(ReceiptJob).where(
        ReceiptJob.message_id == message_id, ReceiptJob.state == "pending")  # fmt: skip
    deliver_s = settle_s = None
    deadline = time.perf_counter() + ROUND_TIMEOUT
    while time.perf_counter() < deadline:
        async with gateway.sessions() as s:
            counts = dict((await s.execute(states)).all())
            settled = counts.get("delivered", 0) + counts.get("failed", 0)
            if deliver_s is None and settled == want:
                last = await s.scalar(select(func.max(Entry.delivered_at)).where(
                    Entry.copy_id.in_(copies)))  # fmt: skip
                deliver_s = _epoch(last) - wall250 if last else time.perf_counter() - t250
            if deliver_s is not None and not int(await s.scalar(pending) or 0):
                settle_s = time.perf_counter() - t250
                break
        await asyncio.sleep(POLL_SECONDS)
    if deliver_s is None or settle_s is None:
        raise BenchError(f"round {rnd}: not settled in {ROUND_TIMEOUT:.0f} s: {counts}")
    async with gateway.sessions() as s:
        receipts = int(await s.scalar(count_receipts) or 0) - receipts_before
        failed = counts.get("failed", 0)
    after = table_bytes(db)
    tables = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    blobs = blob_bytes(db, since)
    return {"round": rnd, "copies": want, "failed": failed, "accept_s": t250 - t0,
            "deliver_s": deliver_s, "settle_s": settle_s, "receipts": receipts,
            "db_bytes_per_copy": sum(tables.values()) / want,
            "tables_per_copy": {k: v / want for k, v in tables.items() if v},
            "blobs_per_copy": {k: [p / want, c / want] for k, (p, c) in blobs.items()}}  # fmt: skip


def _epoch(stamp: str) -> float:
    import datetime as dt

    when = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return when.timestamp()


async def run_rounds(data: Path, password: str, recipients: list[str], letter: bytes,
                     rounds: int) -> list[dict[str, Any]]:  # fmt: skip
    samples = []
    async with in_process_gateway(data, None) as gateway:
        for rnd in range(1, rounds + 1):
            sample = await one_round(gateway, password, recipients, letter, rnd)
            say(f"  round {rnd}: 250 after {sample['accept_s']:.2f} s, last copy "
                f"{sample['deliver_s']:.1f} s after it, settled {sample['settle_s']:.1f} s, "
                f"{sample['db_bytes_per_copy'] / 1024:.1f} KiB/copy, "
                f"{sample['receipts']} in Receipts")  # fmt: skip
            samples.append(sample)
    return samples


def summarise(samples: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("accept_s", "deliver_s", "settle_s", "db_bytes_per_copy", "receipts")
    out: dict[str, Any] = {k: spread([float(s[k]) for s in samples]) for k in keys}
    tables = {name for s in samples for name in s["tables_per_copy"]}
    out["tables_per_copy"] = {
        t: statistics.median(s["tables_per_copy"].get(t, 0) for s in samples) for t in tables
    }
    purposes = {p for s in samples for p in s["blobs_per_copy"]}
    out["blobs_per_copy"] = {
        p: statistics.median(s["blobs_per_copy"].get(p, [0, 0])[1] for s in samples)
        for p in purposes}  # fmt: skip
    return out


def print_summary(summary: dict[str, Any], copies: int, command: str) -> None:
    def f(key: str, scale: float = 1.0, digits: int = 2) -> str:
        s = summary[key]
        return (f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}"
                f"-{s['max'] * scale:.{digits}f})")  # fmt: skip

    print(f"\ncircular to {copies} recipients: {command}")
    print(f"  DATA -> 250:             {f('accept_s')} s")
    print(f"  250 -> last delivered:   {f('deliver_s')} s")
    print(f"  250 -> receipts settled: {f('settle_s')} s")
    print(f"  database growth / copy:  {f('db_bytes_per_copy', 1 / 1024, 1)} KiB")
    print(f"  in the sender's Receipts:{f('receipts', 1, 0)}")
    print("  by table or index (KiB per copy, median):")
    for name, size in sorted(summary["tables_per_copy"].items(), key=lambda kv: -kv[1]):
        if abs(size) >= 10:
            print(f"    {name:48s} {size / 1024:6.2f}")
    print("  blob rows created, by purpose (KiB per copy, median):")
    for name, size in sorted(summary["blobs_per_copy"].items(), key=lambda kv: -kv[1]):
        print(f"    {name:48s} {size / 1024:6.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_circular",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=859)
    parser.add_argument("--agencies", type=int, default=859)
    parser.add_argument("--employees", type=int, default=860)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.recipients <= args.employees:
        parser.error("--recipients must be between 1 and --employees")
    command = "python -m bench.bench_circular " + shlex.join(argv or sys.argv[1:])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="barid-bench-circular-") as tmp:
        data = Path(tmp) / "data"
        say(f"setting up: demo + {args.agencies} agencies, {args.employees} employees ...")
        password, addresses, letter = prepare(data, args.agencies, args.employees)
        toml = data / "barid.toml"
        toml.write_text(re.sub(r"(?m)^max_recipients = \d+", "max_recipients = 10000",
                               toml.read_text()))  # fmt: skip
        samples = asyncio.run(run_rounds(data, password, addresses[: args.recipients], letter,
                                         args.rounds))  # fmt: skip
    summary = summarise(samples)
    print_summary(summary, args.recipients, command)
    report = {"benchmark": "circular", "command": command, "recipients": args.recipients,
              "summary": summary, "samples": samples,
              "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"summary written to {args.output} ({report['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, sub.BenchError) as exc:
        print(f"bench_circular: {exc}", file=sys.stderr)
        sys.exit(1)
