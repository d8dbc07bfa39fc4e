"""Benchmark of the public verification API (GET /api/v1/verify/<token>), against a
bare Starlette app in the same run.

Makes a fresh demo data directory (bench_submission's `make_demo`), starts
`barid serve` on it in its own process (log level warning; the radar's
per-address limits raised through BARID_HTTP__VERIFY_LOOKUPS_PER_MINUTE and
BARID_HTTP__VERIFY_FAILURES_PER_10_MINUTES, since every request comes from
127.0.0.1; the radar still counts every lookup), submits `--messages` real
PGP/MIME messages signed by gpg (bench_imap's `signed_messages`, bench_submission's
shape with a 10 KiB document) over SMTP with STARTTLS + AUTH, and reads their
tokens back from the database. Baseline: bench/verify_baseline_server.py, a bare
Starlette app under uvicorn (configured as `barid serve` configures it) in its
own process, answering a constant JSON verdict. Measuring starts once the
delivery worker has delivered the copies and stored the receipts.

The request mix: half valid tokens (signature check, then the database lookup
of the registry number), half forged ones (a valid token with one character
changed: refused offline, no database work). The client is httpx.AsyncClient in
this process, keep-alive, `--connections` concurrent connections.

  paced  open loop: request k is scheduled at start + k/rate (`--rate` 200/s for
         `--duration` 15 s), each sent by its own task when due; latency is from
         the scheduled time to the full response (waiting for a free
         connection included); the achieved rate is answers / elapsed time;
  peak   closed loop: every connection sends its next request as soon as the
         previous one is answered, for `--peak-duration` seconds.

One warm-up of each server, then `--rounds` rounds alternating which server goes
first; each figure is the median (min-max) over the rounds. Every answer must
be 200 with the expected status (valid / forged; anything else is counted and
reported). Aim: p99 under 20 ms at 200 requests/s.

Run from the repository root:

    .venv/bin/python -m bench.bench_verify [--rounds 3] [--rate 200] [--duration 15]
        [--peak-duration 10] [--connections 20] [--messages 5]

A JSON summary is written to bench/results/verify.json (git-ignored). Progress
goes to stderr. Everything started (servers, gpg agent, temporary directories)
is stopped and removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shlex
import signal
import sqlite3
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx

from bench import bench_submission as sub
from bench.imap_messages import signed_messages
from bench.imap_report import machine
from testkit.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "verify.json"
BENCH_CEILING = 10_000_000  # radar limits per address, raised (all requests from 127.0.0.1)
LATENCY_AIM_MS = 20.0
WARMUP_SECONDS = 3.0
DOCUMENT_BYTES = 10 * 1024
HTTP_TIMEOUT = 30.0


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- servers


@dataclass
class Target:
    name: str
    proc: subprocess.Popen[bytes]
    http_port: int
    smtp_port: int = 0

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def barid_server(data: Path, work: Path) -> Iterator[Target]:
    submission, http = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env.update(
        {
            "BARID_SMTP__SUBMISSION_PORT": str(submission),
            "BARID_SMTP__SMTPS_PORT": str(free_port()),
            "BARID_SMTP__TRANSFER_PORT": str(free_port()),
            "BARID_HTTP__PORT": str(http), "BARID_HTTP__ADMIN_PORT": "0",
            "BARID_IMAP__PORT": str(free_port()),
            "BARID_IMAP__IMAPS_PORT": str(free_port()),
            "BARID_SERVER__LOG_LEVEL": "warning",
            "BARID_ALLOW_ROOT": "1",  # benchmark machines run as root
            "BARID_HTTP__VERIFY_LOOKUPS_PER_MINUTE": str(BENCH_CEILING),
            "BARID_HTTP__VERIFY_FAILURES_PER_10_MINUTES": str(BENCH_CEILING),
        }
    )
    log = work / "barid-serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(sub.BARID), "serve", "--config", str(data / "barid.toml")],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    try:
        sub.wait_for_health(proc, http, log)
        sub.wait_for_port(proc, submission, log, "barid serve")
        yield Target("barid", proc, http, submission)
    finally:
        sub.stop_process(proc)


@contextmanager
def baseline_server(work: Path) -> Iterator[Target]:
    port = free_port()
    log = work / "baseline.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.verify_baseline_server", "--port", str(port)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        sub.wait_for_health(proc, port, log)
        yield Target("baseline", proc, port)
    finally:
        sub.stop_process(proc)


# ---------------------------------------------------------------- set-up


async def submit(
    port: int, tls: ssl.SSLContext, password: str, messages: Sequence[bytes]
) -> list[str]:
    """Registry numbers of the accepted messages (every one must be accepted)."""
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, start_tls=True, tls_context=tls, timeout=60
    )
    await client.connect()
    registries = []
    try:
        await client.login(sub.SENDER, password)
        for n, raw in enumerate(messages):
            message = f"Message-ID: <verify-{n}-{time.time_ns()}@bench.example>\r\n".encode() + raw
            response = await client.sendmail(sub.SENDER, list(sub.RECIPIENTS), message)
            registries.append(response[1].split()[-1])
    finally:
        client.close()
    return registries


def tokens_of(data: Path, registries: Sequence[str]) -> list[str]:
    with sqlite3.connect(f"file:{data / 'barid.db'}?mode=ro", uri=True) as db:
        rows = [
            db.execute("SELECT token FROM messages WHERE registry = ?", (r,)).fetchone()
            for r in registries
        ]
    if any(row is None or not row[0] for row in rows):
        raise sub.BenchError(f"not every accepted message has a token: {registries}")
    return [str(row[0]) for row in rows]


def settle(data: Path, timeout: float = 600.0) -> None:
    """Until the delivery worker has delivered the copies and stored the receipts
    (that work would otherwise share the CPU with the first phases)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(f"file:{data / 'barid.db'}?mode=ro", uri=True) as db:
            queued = db.execute(
                "SELECT count(*) FROM delivery_queue WHERE state IN ('queued', 'delivering')"
            ).fetchone()[0]
            pending = db.execute(
                "SELECT count(*) FROM receipt_jobs WHERE state = 'pending'"
            ).fetchone()[0]
        if not queued and not pending:
            return
        time.sleep(0.2)
    raise sub.BenchError(f"the delivery worker did not finish within {timeout:.0f} s")


def forge(token: str, position: int) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    ch = token[position]
    if ch.upper() not in alphabet:
        return token[:position] + "A" + token[position + 1 :]
    swapped = alphabet[(alphabet.index(ch.upper()) + 1) % len(alphabet)]
    return token[:position] + swapped + token[position + 1 :]


# ---------------------------------------------------------------- the client


@dataclass
class Mix:
    requests: list[tuple[str, str]]  # (path, expected status); barid checks it
    counter: Iterator[int] = field(default_factory=itertools.count)

    def next(self) -> tuple[str, str]:
        return self.requests[next(self.counter) % len(self.requests)]


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)  # seconds, scheduled/sent -> answer
    service: list[float] = field(default_factory=list)  # seconds, sent -> answer
    wrong: Counter[str] = field(default_factory=Counter)
    ok: int = 0


async def one(http: httpx.AsyncClient, mix: Mix, check: bool, samples: Samples, due: float) -> None:
    path, expected = mix.next()
    sent = time.perf_counter()
    try:
        response = await http.get(path)
        body = response.content
    except httpx.HTTPError as exc:
        samples.wrong[type(exc).__name__] += 1
        return
    done = time.perf_counter()
    if response.status_code != 200:
        samples.wrong[f"HTTP {response.status_code}"] += 1
        return
    if check:
        status = json.loads(body).get("status")
        if status != expected:
            samples.wrong[f"status {status} for {expected}"] += 1
            return
    samples.ok += 1
    samples.latencies.append(done - due)
    samples.service.append(done - sent)


def client(target: Target, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{target.http_port}", limits=limits, timeout=HTTP_TIMEOUT
    )


async def paced(
    target: Target, mix: Mix, rate: float, duration: float, connections: int
) -> tuple[Samples, float]:
    samples = Samples()
    check = target.name == "barid"
    async with client(target, connections) as http:
        await asyncio.gather(*(http.get("/healthz") for _ in range(connections)))  # open them
        start = time.perf_counter()
        tasks = []
        for k in range(int(rate * duration)):
            due = start + k / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(http, mix, check, samples, due)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return samples, elapsed


async def peak(
    target: Target, mix: Mix, duration: float, connections: int
) -> tuple[Samples, float]:
    samples = Samples()
    check = target.name == "barid"
    async with client(target, connections) as http:
        await asyncio.gather(*(http.get("/healthz") for _ in range(connections)))
        start = time.perf_counter()
        end = start + duration

        async def loop() -> None:
            while time.perf_counter() < end:
                await one(http, mix, check, samples, time.perf_counter())

        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    return samples, elapsed


# ---------------------------------------------------------------- measuring


@dataclass
class Phase:
    server: str
    kind: str  # paced | peak | warmup
    round: int
    seconds: float
    answered: int
    rate: float  # answers per second
    offered_rate: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    service_p99_ms: float
    wrong: dict[str, int]
    server_cpu_ms_per_request: float


def run_phase(target: Target, mix: Mix, kind: str, rnd: int, args: argparse.Namespace) -> Phase:
    cpu0 = target.cpu_seconds()
    if kind == "peak":
        samples, elapsed = asyncio.run(peak(target, mix, args.peak_duration, args.connections))
        offered = 0.0
    else:
        seconds = WARMUP_SECONDS if kind == "warmup" else args.duration
        samples, elapsed = asyncio.run(paced(target, mix, args.rate, seconds, args.connections))
        offered = args.rate
    cpu = target.cpu_seconds() - cpu0
    lat = [x * 1000 for x in samples.latencies]
    phase = Phase(
        server=target.name,
        kind=kind,
        round=rnd,
        seconds=elapsed,
        answered=samples.ok,
        rate=samples.ok / elapsed if elapsed else 0.0,
        offered_rate=offered,
        p50_ms=sub.percentile(lat, 50),
        p99_ms=sub.percentile(lat, 99),
        max_ms=max(lat) if lat else float("nan"),
        service_p99_ms=sub.percentile([x * 1000 for x in samples.service], 99),
        wrong=dict(samples.wrong),
        server_cpu_ms_per_request=cpu * 1000 / samples.ok if samples.ok else float("nan"),
    )
    say(
        f"  {target.name:8} {kind:6} r{rnd}  {phase.rate:7.1f} req/s  p50 {phase.p50_ms:6.2f} ms"
        f"  p99 {phase.p99_ms:6.2f} ms  max {phase.max_ms:7.2f} ms  server CPU"
        f" {phase.server_cpu_ms_per_request:.2f} ms/req  wrong {sum(phase.wrong.values())}"
    )
    for what, count in sorted(samples.wrong.items()):
        say(f"        wrong x{count}: {what}")
    return phase


def summarise(phases: Sequence[Phase]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in ("barid", "baseline"):
        for kind in ("paced", "peak"):
            mine = [p for p in phases if p.server == name and p.kind == kind]
            if not mine:
                continue
            keys = [
                "rate",
                "p50_ms",
                "p99_ms",
                "max_ms",
                "service_p99_ms",
                "server_cpu_ms_per_request",
            ]
            out[f"{name}_{kind}"] = {k: sub.spread([getattr(p, k) for p in mine]) for k in keys}
            out[f"{name}_{kind}"]["wrong"] = sum(sum(p.wrong.values()) for p in mine)
    return out


def print_summary(summary: dict[str, Any], rate: float) -> None:
    print("median (min-max) over the rounds:")
    for name in ("barid", "baseline"):
        p, k = summary[f"{name}_paced"], summary[f"{name}_peak"]
        print(
            f"  {name:8} paced {rate:.0f}/s: achieved {sub.fmt(p['rate'])} req/s,"
            f" p50 {sub.fmt(p['p50_ms'], 2)} ms, p99 {sub.fmt(p['p99_ms'], 2)} ms,"
            f" max {sub.fmt(p['max_ms'], 1)} ms; server CPU"
            f" {sub.fmt(p['server_cpu_ms_per_request'], 2)} ms/req"
        )
        print(
            f"  {name:8} peak (closed loop): {sub.fmt(k['rate'])} req/s,"
            f" p50 {sub.fmt(k['p50_ms'], 2)} ms, p99 {sub.fmt(k['p99_ms'], 2)} ms"
        )
    met = summary["barid_paced"]["p99_ms"]["median"] < LATENCY_AIM_MS
    print(f"aim p99 < {LATENCY_AIM_MS:.0f} ms at {rate:.0f} req/s: {'met' if met else 'NOT met'}")


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0, help="Offered requests/s (paced).")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per paced phase.")
    parser.add_argument("--peak-duration", type=float, default=10.0, help="Seconds per peak.")
    parser.add_argument("--connections", type=int, default=20, help="Keep-alive connections.")
    parser.add_argument("--messages", type=int, default=5, help="Signed messages submitted.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1 <= args.connections <= 500:
        parser.error("--rounds must be 1..20 and --connections 1..500")
    if not 1.0 <= args.duration <= 300 or not 1.0 <= args.peak_duration <= 300:
        parser.error("--duration and --peak-duration must be 1..300")
    if not 1 <= args.messages <= 100 or not 1.0 <= args.rate <= 20_000:
        parser.error("--messages must be 1..100 and --rate 1..20000")
    signal.signal(signal.SIGTERM, sub._stop_on_signal)
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    say(f"command: {command}")
    phases: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="barid-bench-verify-") as tmp:
        work = Path(tmp)
        data = work / "d"
        started = time.perf_counter()
        creds = sub.make_demo(data)
        messages = signed_messages(
            creds["key_files"]["openpgp secret key"], args.messages, DOCUMENT_BYTES
        )
        with barid_server(data, work) as barid, baseline_server(work) as baseline:
            tls = sub.client_tls(data / "tls" / "cert.pem")
            registries = asyncio.run(submit(barid.smtp_port, tls, creds["password"], messages))
            tokens = tokens_of(data, registries)
            settle(data)
            forged = [forge(t, 12 + 7 * i) for i, t in enumerate(tokens)]
            requests = [
                r
                for pair in zip(tokens, forged, strict=True)
                for r in (
                    (f"/api/v1/verify/{pair[0]}", "valid"),
                    (f"/api/v1/verify/{pair[1]}", "forged"),
                )
            ]
            mix = Mix(requests)
            say(
                f"set-up {time.perf_counter() - started:.1f} s: {len(tokens)} accepted messages,"
                f" {len(requests)} distinct requests (half valid, half forged);"
                f" {args.connections} connections; {args.rounds} round(s)"
            )
            for target in (barid, baseline):
                run_phase(target, mix, "warmup", 0, args)
            for rnd in range(1, args.rounds + 1):
                order = (barid, baseline) if rnd % 2 else (baseline, barid)
                for kind in ("paced", "peak"):
                    for target in order:
                        phases.append(run_phase(target, mix, kind, rnd, args))
            barid_log = (work / "barid-serve.log").read_text(errors="replace")
        problems = [ln for ln in barid_log.splitlines() if '"level": "error"' in ln.lower()]

    summary = summarise(phases)
    print(f"command: {command}")
    print_summary(summary, args.rate)
    if problems:
        print(f"barid logged {len(problems)} error line(s); first: {problems[0][:300]}")
    report = {
        "benchmark": "public verification API, GET /api/v1/verify/<token>",
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "params": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "aim": {
            "p99_ms": LATENCY_AIM_MS,
            "rate": args.rate,
            "met": summary["barid_paced"]["p99_ms"]["median"] < LATENCY_AIM_MS,
        },
        "summary": summary,
        "phases": [asdict(p) for p in phases],
        "barid_error_lines": len(problems),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"summary written to {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except sub.BenchError as exc:
        print(f"bench_verify: {exc}", file=sys.stderr)
        sys.exit(1)
