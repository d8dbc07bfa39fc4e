"""Benchmark of Barid's IMAP service and local delivery, against Dovecot in the same run.

Targets (any of them, `--targets`):

  sqlite    `barid serve` on a fresh demo data directory (SQLite, its defaults);
  postgres  `barid serve` on a second demo data directory whose database is a
            throwaway PostgreSQL started by this script as the test suite
            starts it (testkit/postgres.py: fsync and synchronous_commit off);
  dovecot   Debian's Dovecot (dovecot-imapd, dovecot-lmtpd), started by this
            script as the tests start it (testkit/dovecot.py): an unprivileged
            process (the `dovecot` account when run as root), a generated
            minimal configuration in a temporary directory, passwd-file users
            whose password is an Argon2id hash with Barid's default cost (so
            LOGIN costs both servers the same), maildir storage, `ssl =
            required` with a P-256 certificate from a test CA (the key type of
            Barid's certificate), IMAP and LMTP listeners on free 127.0.0.1
            ports, no quota plugin, `log_path` in the temporary directory.
            Everything else is Dovecot's default.

Operations (one client for every target: Python's imaplib on a socket with
TCP_NODELAY, STARTTLS trusting the target's certificate, LOGIN; every socket
operation has a timeout):

  fill        not timed as an operation, but its rate is reported: APPEND of
              `--messages` distinct realistic messages (about 4 KB, 16 header
              fields, Arabic and English text) into INBOX over one connection;
              before it, 20 APPENDs on a stock imaplib socket (Nagle on), whose
              median is reported too (imaplib writes a literal and its closing
              CRLF separately, which Nagle's algorithm can hold back);
  headers     connect + STARTTLS + LOGIN + SELECT INBOX +
              `FETCH 1:N (UID FLAGS BODY.PEEK[HEADER])`, on a new connection
              each time; the returned header bytes are checked;
  big         APPEND of one `--big-mb` MiB message (a base64 attachment) to a
              folder of its own, then `FETCH n BODY[]` of it; each timed on a
              connection opened (untimed) before; the message is expunged after;
  deliveries  Barid: the gateway runs in this process (as testkit/gateway.py
              does) with its delivery worker stopped; `--copies / 5` distinct
              PGP/MIME messages (bench_submission's build_message: a `--document-kb`
              KiB document signed with gpg by minister@moh.gov.example) are
              submitted over SMTP (STARTTLS + AUTH) to five local recipients,
              then `while await worker.run_once(): pass` is timed; the time in
              deliveries and in receipts is taken apart by wrapping the worker's
              two steps, and the `delivery_queue` / `receipt_jobs` rows are
              counted. Dovecot: the same stamped copies, read back with
              `MessageStore.load_copy`, delivered over LMTP (one session, one
              transaction and one recipient per copy) to the Dovecot lmtp
              listener.

One warm-up of `headers` per target, then `--rounds` rounds; within each round
every target runs once, in an order that rotates from round to round. Each
figure is the median (min-max) over the rounds; ratios Barid/Dovecot are of
times (3.0 means three times slower) taken per round, then their median.
The issue's aim: Barid within 3x of Dovecot on `headers`.

With `--profile`, Barid-with-SQLite's `headers` runs are profiled: the gateway
runs in a child Python process (as in testkit/gateway.py, the client in a
thread) under `py-spy record --native` (the venv's py-spy), three runs after a
warm-up; the samples of server work (threads waiting on locks, the GIL or epoll
left out) are summed by area and by function into bench/results/imap-profile.txt.
Without py-spy, one run is profiled with cProfile (the event-loop thread only).

Run from the repository root (as root, or as a user who can run Dovecot and,
for `postgres`, PostgreSQL's initdb):

    .venv/bin/python -m bench.bench_imap [--rounds 5] [--messages 1000]
        [--big-mb 5] [--copies 500] [--document-kb 100]
        [--targets sqlite,postgres,dovecot] [--profile]

A JSON summary is written to bench/results/imap.json (git-ignored). Everything
started (servers, gpg agent, temporary directories) is stopped and removed at
the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import shlex
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench import bench_import
from bench import bench_submission as sub
from bench.imap_client import BigSample, FillResult, HeadersSample, big_once, fill, headers_once
from bench.imap_delivery import Copies, DeliverySample, barid_deliveries, lmtp_deliveries
from bench.imap_messages import big_message, header_block, header_messages, signed_messages
from bench.imap_profile import cprofile_headers, find_py_spy, py_spy_profile
from bench.imap_report import machine, print_summary, summarise
from bench.imap_servers import Dovecot, Target, barid_serve, dovecot_server
from bench.imap_setup import (
    IMAP_USER,
    PROFILE,
    RECIPIENTS,
    RESULTS,
    SENDER,
    TARGETS,
    BenchError,
    check_policy,
    make_demo,
    say,
)
from testkit.postgres import create_pg_database, postgres_cluster

# ---------------------------------------------------------------- main


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanups (servers, temp dirs)


@dataclass
class Run:
    targets: list[str]
    fills: dict[str, FillResult] = field(default_factory=dict)
    headers: list[HeadersSample] = field(default_factory=list)
    big: list[BigSample] = field(default_factory=list)
    deliveries: list[DeliverySample] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    lmtp_source: str = ""
    profile: str = ""


def _order(items: Sequence[str], rnd: int) -> list[str]:
    k = (rnd - 1) % len(items)
    return [*items[k:], *items[:k]]


def imap_phase(run: Run, targets: dict[str, Target], args: argparse.Namespace,
               messages: Sequence[bytes], big: bytes) -> None:  # fmt: skip
    expect = sum(len(header_block(m)) for m in messages)
    for name, t in targets.items():
        say(f"fill {name}: APPEND {len(messages)} messages ...")
        f = run.fills[name] = fill(t, messages)
        say(f"  {len(messages) / f.seconds:.1f} msg/s; APPEND median {f.append_ms_median:.1f} ms"
            f" ({f.append_ms_median_nagle:.1f} ms with Nagle on)")  # fmt: skip
    for name, t in targets.items():
        warm = headers_once(t, len(messages), 0)
        if warm.header_bytes != expect:
            say(f"  warning: {name} returned {warm.header_bytes} header bytes, sent {expect}")
        say(f"warm-up headers {name}: {warm.total_s * 1000:.0f} ms")
    for rnd in range(1, args.rounds + 1):
        for name in _order(list(targets), rnd):
            h = headers_once(targets[name], len(messages), rnd)
            run.headers.append(h)
            line = (f"round {rnd} {name:8} headers {h.total_s * 1000:6.0f} ms"
                    f" (FETCH {h.fetch_s * 1000:.0f} ms)")  # fmt: skip
            if big:
                b = big_once(targets[name], big, rnd)
                run.big.append(b)
                line += (f"; big APPEND {b.append_s * 1000:.0f} ms,"
                         f" FETCH {b.fetch_s * 1000:.0f} ms")  # fmt: skip
            say(line)


@dataclass(frozen=True)
class DemoDir:
    path: Path
    url: str | None  # PostgreSQL URL, None for SQLite
    creds: dict[str, dict[str, Any]]  # the demo's credentials.json by address


def delivery_phase(run: Run, dirs: dict[str, DemoDir], reference: DemoDir,
                   dovecot: Dovecot | None, args: argparse.Namespace) -> None:  # fmt: skip
    """Each demo has its own keys: its messages are signed with its own sender key."""
    count = args.copies // len(RECIPIENTS)
    signed: dict[str, list[bytes]] = {}
    for name, demo in [*dirs.items(), ("reference", reference)]:
        if name in dirs or not dirs:
            say(f"building {count} PGP/MIME messages ({args.document_kb} KiB document) for"
                f" {name} with gpg ...")  # fmt: skip
            key = demo.creds[SENDER]["key_files"]["openpgp secret key"]
            signed[name] = signed_messages(key, count, args.document_kb * 1024)
    copies: Copies = []
    names = [t for t in run.targets if t in dirs or (t == "dovecot" and dovecot)]
    for rnd in range(1, args.rounds + 1):
        for name in _order(names, rnd):
            if name == "dovecot":
                assert dovecot is not None
                if not copies:  # no Barid target in this run: the original messages
                    run.lmtp_source = "the original messages (no Barid target in this run)"
                    copies = [(r, m) for m in signed["reference"] for r in RECIPIENTS]
                s = lmtp_deliveries(dovecot.lmtp_port, copies, rnd)
                say(f"round {rnd} dovecot  {s.copies} copies over LMTP in {s.total_s:.2f} s"
                    f" ({s.copies / s.total_s:.0f}/s)")  # fmt: skip
            else:
                demo = dirs[name]
                password = demo.creds[SENDER]["password"]
                job = barid_deliveries(name, demo.path, demo.url, rnd, signed[name], password,
                                       want_copies=not copies)  # fmt: skip
                s, got = asyncio.run(job)
                if got:
                    copies = got
                    run.lmtp_source = f"Barid's stamped copies (load_copy; {name}, round {rnd})"
                say(f"round {rnd} {name:8} submitted {count} msgs in {s.submit_s:.1f} s; drained"
                    f" {s.copies} copies + {s.receipts} receipts in {s.total_s:.2f} s"
                    f" (deliveries {s.deliver_s:.2f} s = {s.copies / s.deliver_s:.0f}/s,"
                    f" receipts {s.receipts_s:.2f} s)")  # fmt: skip
            run.deliveries.append(s)


def parse_targets(text: str) -> list[str]:
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in chosen if t not in TARGETS]
    if bad or not chosen:
        raise argparse.ArgumentTypeError(f"targets are any of {','.join(TARGETS)}")
    return [t for t in TARGETS if t in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Rounds, targets alternated.")
    parser.add_argument("--messages", type=int, default=1000, help="Messages in INBOX.")
    parser.add_argument("--big-mb", type=int, default=5, help="Size of the big message (MiB).")
    parser.add_argument(
        "--copies",
        type=int,
        default=500,
        help=f"Copies per delivery round ({len(RECIPIENTS)} per message; 0: skip).",
    )
    parser.add_argument(
        "--document-kb",
        type=int,
        default=100,
        help="Signed document in each delivered message (KiB).",
    )
    parser.add_argument(
        "--targets",
        type=parse_targets,
        default=list(TARGETS),
        help="Comma-separated: any of sqlite,postgres,dovecot.",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help=f"Profile Barid-SQLite headers runs (py-spy, else cProfile) into {PROFILE.name}.",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON summary file.")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50 or not 1 <= args.messages <= 20000:
        parser.error("--rounds must be 1..50 and --messages 1..20000")
    if not 0 <= args.big_mb <= 45 or not 1 <= args.document_kb <= 10240:
        parser.error("--big-mb must be 0..45 (0: skip) and --document-kb 1..10240")
    if not 0 <= args.copies <= 20000 or args.copies % len(RECIPIENTS):
        parser.error(f"--copies must be 0..20000 and a multiple of {len(RECIPIENTS)}")
    if shutil.which("gpg") is None:
        raise BenchError("gpg is not installed")
    signal.signal(signal.SIGTERM, _stop_on_signal)

    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    print(f"command: {command}", flush=True)
    run = Run(args.targets)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="barid-bench-imap-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        dirs: dict[str, DemoDir] = {}
        say("barid demo (SQLite) ...")
        # Made in every run: Dovecot's user and a dovecot-only run's messages come from it.
        reference = DemoDir(work / "sqlite", None, make_demo(work / "sqlite", None))
        check_policy(reference.path)
        if "sqlite" in args.targets:
            dirs["sqlite"] = reference
        if "postgres" in args.targets:
            cluster = stack.enter_context(postgres_cluster(bench_import.no_postgres))
            pg, run.versions["postgres"] = cluster.server, cluster.version()
            pg_url = pg.url(create_pg_database(pg, "baridimap"))
            say(f"barid demo (PostgreSQL, {run.versions['postgres']}) ...")
            dirs["postgres"] = DemoDir(work / "postgres", pg_url,
                                       make_demo(work / "postgres", pg_url))  # fmt: skip
        dovecot: Dovecot | None = None
        if "dovecot" in args.targets:
            password = reference.creds[IMAP_USER]["password"]
            dovecot = stack.enter_context(dovecot_server(IMAP_USER, password, RECIPIENTS))
            run.versions["dovecot"] = dovecot.version
        messages = header_messages(args.messages, args.seed)
        big = big_message(args.big_mb) if args.big_mb else b""
        say(
            f"set-up {time.perf_counter() - started:.0f} s; {len(messages)} messages, median"
            f" {statistics.median(len(m) for m in messages)} bytes; big {len(big)} bytes"
        )

        with ExitStack() as servers:
            targets: dict[str, Target] = {}
            for name in args.targets:
                if name == "dovecot":
                    assert dovecot is not None
                    targets[name] = dovecot.target
                else:
                    demo = dirs[name]
                    targets[name] = servers.enter_context(
                        barid_serve(name, demo.path, work, demo.url)
                    )
            imap_phase(run, targets, args, messages, big)
            logs = {n: t.server.log.read_text(errors="replace")
                    for n, t in targets.items() if t.server}  # fmt: skip
        problems = {n: [ln for ln in text.splitlines() if '"level": "error"' in ln.lower()]
                    for n, text in logs.items()}  # fmt: skip
        if args.copies:
            delivery_phase(run, dirs, reference, dovecot, args)
        if args.profile and "sqlite" in dirs:
            py_spy = find_py_spy()
            say(f"profiling Barid-SQLite headers runs in process with {py_spy or 'cProfile'} ...")
            if py_spy:
                cpus = [h.server_cpu_s for h in run.headers if h.target == "sqlite"]
                cpu_ms = statistics.median(c for c in cpus if c) * 1000 if any(cpus) else None
                run.profile = py_spy_profile(py_spy, dirs["sqlite"].path, len(messages), work,
                                             cpu_ms)  # fmt: skip
            else:
                run.profile = asyncio.run(cprofile_headers(dirs["sqlite"].path, len(messages)))
            PROFILE.parent.mkdir(parents=True, exist_ok=True)
            PROFILE.write_text(run.profile)
            say(f"  written to {PROFILE}")
        if dovecot is not None:
            dovecot_errors = [ln for ln in dovecot.log.read_text(errors="replace").splitlines()
                              if "Error:" in ln or "Fatal:" in ln]  # fmt: skip
            problems["dovecot"] = dovecot_errors

    summary = summarise(args.targets, run.fills, len(messages), run.headers, run.big,
                        run.deliveries)  # fmt: skip
    print_summary(summary, args.targets, command)
    if run.lmtp_source:
        print(f"  Dovecot LMTP delivered: {run.lmtp_source}")
    for name, lines in problems.items():
        if lines:
            print(f"  {name} logged {len(lines)} error line(s); first: {lines[0][:300]}")
    report = {
        "benchmark": "IMAP and local delivery, Barid vs Dovecot",
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine() | {"servers": run.versions},
        "params": {
            "rounds": args.rounds,
            "messages": args.messages,
            "message_bytes_median": statistics.median(len(m) for m in messages),
            "big_bytes": len(big),
            "copies": args.copies,
            "document_kib": args.document_kb,
            "targets": args.targets,
            "imap_user": IMAP_USER,
            "sender": SENDER,
            "recipients": list(RECIPIENTS),
            "client": f"imaplib (Python {platform.python_version()}), STARTTLS, LOGIN",
            "dovecot_delivery": "LMTP, one session, one transaction and one recipient per copy",
            "lmtp_source": run.lmtp_source,
        },
        "summary": summary,
        "samples": {
            "headers": [asdict(s) for s in run.headers],
            "big": [asdict(s) for s in run.big],
            "deliveries": [asdict(s) for s in run.deliveries],
        },
        "error_lines": {n: len(v) for n, v in problems.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"summary written to {args.output} ({report['seconds']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, sub.BenchError, bench_import.BenchError, RuntimeError, KeyError) as exc:
        print(f"bench_imap: {exc}", file=sys.stderr)
        sys.exit(1)
