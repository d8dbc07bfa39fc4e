"""Benchmark of signed-message submission over STARTTLS + AUTH, against a stock sink.

Makes a fresh demo data directory (`barid demo --no-serve`), pre-builds
distinct PGP/MIME messages (Thunderbird's shape: multipart/signed over
multipart/mixed with a text part and a 100 KB document, signed with the demo
secret key of minister@moh.gov.example by gpg) to three recipients the shipped
policy allows at the default classification (internal), then starts two
servers on free loopback ports, each in its own process:

  barid  `barid serve` on the demo data directory (log level warning);
  sink   bench/sink_server.py: stock aiosmtpd, STARTTLS with the same
         certificate, AUTH accepting anything, `250 OK` to every message.

The client (aiosmtplib, in this process) opens N concurrent sessions
(STARTTLS trusting the data directory's certificate, EHLO, AUTH PLAIN once per
session) and sends MAIL / RCPT x3 / DATA in a loop for a fixed time. Latency is
from MAIL to the final DATA reply; every reply must be 250 (others are counted
and reported). Peak phases alternate barid/sink for several rounds so that both
see the same machine state; the barid/sink throughput ratio is taken per
round. A paced phase then offers half of Barid's median peak rate (open loop:
messages are scheduled at fixed intervals and wait for a free session) and
reports latency from MAIL and from the scheduled time.

The demo policy's sender-rate rule (300 messages per hour) is raised in the
benchmark's own copy of the policy file, so that the rate query still runs on
every RCPT and DATA but never refuses; nothing else is changed.

Run from the repository root:

    .venv/bin/python -m bench.bench_submission [--rounds 3] [--duration 15]
        [--sessions 20] [--messages 200] [--document-kb 100] [--half-duration 15]
        [--check-workers N]

A JSON summary is written to bench/results/submission.json (git-ignored).
Everything started (servers, gpg agent, temporary directories) is stopped and
removed at the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.utils
import itertools
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import aiosmtplib

from testkit.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "submission.json"
BARID = ROOT / ".venv" / "bin" / "barid"
SENDER = "minister@moh.gov.example"
RECIPIENTS = ("minister@mof.gov.example", "director@cab.gov.example", "registrar@moh.gov.example")
BENCH_RATE_LIMIT = 100_000_000  # the demo policy's sender-rate threshold, raised
START_TIMEOUT = 90.0  # seconds for a server to answer
STOP_TIMEOUT = 20.0  # seconds for a server to exit after SIGTERM
STEP_TIMEOUT = 300  # seconds for `barid demo`
WARMUP_SECONDS = 3.0
SMTP_TIMEOUT = 60.0
LATENCY_AIM_MS = 50.0
CpuClock = Callable[[], float]


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


# ---------------------------------------------------------------- processes


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process and its child processes (the check
        and parse processes of `barid serve`) so far (Linux /proc)."""
        pids = [self.proc.pid]
        for task in Path(f"/proc/{self.proc.pid}/task").glob("*/children"):
            pids += [int(pid) for pid in task.read_text().split()]
        ticks = 0
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def wait_for_port(proc: subprocess.Popen[bytes], port: int, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise BenchError(f"{what} exited with {proc.returncode} at start-up:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            time.sleep(0.1)
    raise BenchError(f"{what} did not listen on 127.0.0.1:{port} within {START_TIMEOUT:.0f} s")


def wait_for_health(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    url = f"http://127.0.0.1:{port}/healthz"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise BenchError(f"barid serve exited with {proc.returncode} at start-up:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise BenchError(f"barid serve: {url} did not answer 200 within {START_TIMEOUT:.0f} s")


@contextmanager
def barid_server(data: Path, work: Path, check_workers: int | None = None) -> Iterator[Server]:
    submission, smtps, http = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env.update({
        "BARID_SMTP__SUBMISSION_PORT": str(submission),
        "BARID_SMTP__SMTPS_PORT": str(smtps),
        "BARID_SMTP__TRANSFER_PORT": str(free_port()),
        "BARID_HTTP__PORT": str(http), "BARID_HTTP__ADMIN_PORT": "0",
        "BARID_IMAP__PORT": str(free_port()),
        "BARID_IMAP__IMAPS_PORT": str(free_port()),
        "BARID_SERVER__LOG_LEVEL": "warning",
        "BARID_ALLOW_ROOT": "1",  # benchmark machines run as root
    })  # fmt: skip
    if check_workers is not None:  # else the server's default ([server] check_workers)
        env["BARID_SERVER__CHECK_WORKERS"] = str(check_workers)
    log = work / "barid-serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BARID), "serve", "--config", str(data / "barid.toml")],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_health(proc, http, log)
        wait_for_port(proc, submission, log, "barid serve")
        yield Server("barid", proc, submission, log)
    finally:
        stop_process(proc)


@contextmanager
def sink_server(data: Path, work: Path) -> Iterator[Server]:
    port = free_port()
    log = work / "sink.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.sink_server", "--port", str(port),
                                 "--cert", str(data / "tls" / "cert.pem"),
                                 "--key", str(data / "tls" / "key.pem")],
                                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        wait_for_port(proc, port, log, "sink server")
        yield Server("sink", proc, port, log)
    finally:
        stop_process(proc)


# ---------------------------------------------------------------- set-up


def make_demo(data: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    done = subprocess.run([str(BARID), "demo", "--data-dir", str(data), "--no-serve"],
                          capture_output=True, timeout=STEP_TIMEOUT, env=env,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"barid demo failed: {done.stderr.decode(errors='replace')[-2000:]}")
    rows = json.loads((data / "demo" / "credentials.json").read_text())
    sender = next((row for row in rows if row["address"] == SENDER), None)
    if sender is None:
        raise BenchError(f"{SENDER} is not in the demo directory")
    policy = data / "policies.yaml"
    text, count = re.subn(r"(rate_per_hour:\s*\{\s*at_least:\s*)\d+", rf"\g<1>{BENCH_RATE_LIMIT}",
                          policy.read_text())  # fmt: skip
    if count != 1:
        raise BenchError(f"expected one rate_per_hour condition in {policy}, found {count}")
    policy.write_text(text)
    return dict(sender)


def check_policy(data: Path) -> None:
    """`barid policy explain`: the shipped policy allows every benchmark recipient."""
    for rcpt in RECIPIENTS:
        config = str(data / "barid.toml")
        done = subprocess.run([str(BARID), "policy", "explain", "--config", config, "--json",
                               "--recipients", str(len(RECIPIENTS)), SENDER, rcpt],
                              capture_output=True, timeout=STEP_TIMEOUT,
                              stdin=subprocess.DEVNULL)  # fmt: skip
        text = done.stdout.decode(errors="replace")
        try:
            allowed = json.loads(text)["decision"]["allowed"] is True
        except (ValueError, KeyError, TypeError):
            allowed = False
        if done.returncode != 0 or not allowed:
            raise BenchError(f"policy does not allow {SENDER} -> {rcpt}: {text[-1000:]}")


def _b64_lines(data: bytes) -> bytes:
    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))


def _entity(headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers) + b"\r\n" + body


def _multipart(parts: Sequence[bytes], boundary: str) -> bytes:
    b = boundary.encode()
    return (b"--" + b + b"\r\n" + (b"\r\n--" + b + b"\r\n").join(parts) + b"\r\n--" + b
            + b"--\r\n")  # fmt: skip


def build_message(home: Path, n: int, document_bytes: int) -> bytes:
    """One PGP/MIME message without its Message-ID (added per send)."""
    head = b"%PDF-1.4\n"
    tail = b"\n%%EOF\n"
    document = head + os.urandom(max(0, document_bytes - len(head) - len(tail))) + tail
    text = _entity([("Content-Type", "text/plain; charset=utf-8"),
                    ("Content-Transfer-Encoding", "8bit")],
                   f"نص الرسالة / letter text {n}\r\n".encode())  # fmt: skip
    name = f"letter-{n:04d}.pdf"
    doc = _entity([("Content-Type", f'application/pdf; name="{name}"'),
                   ("Content-Disposition", f'attachment; filename="{name}"'),
                   ("Content-Transfer-Encoding", "base64")], _b64_lines(document))  # fmt: skip
    inner = _entity([("Content-Type", f'multipart/mixed; boundary="in-{n}"')],
                    _multipart([text, doc], f"in-{n}"))  # fmt: skip
    done = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--yes", "--local-user",
                           SENDER, "--detach-sign", "--armor"],
                          input=inner, capture_output=True, timeout=60)  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"gpg --detach-sign failed: {done.stderr.decode(errors='replace')}")
    signature = done.stdout.rstrip(b"\r\n").replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    sig_part = _entity([("Content-Type", 'application/pgp-signature; name="signature.asc"')],
                       signature)  # fmt: skip
    signed = _entity([("Content-Type", 'multipart/signed; micalg=pgp-sha256; '
                                       'protocol="application/pgp-signature"; '
                                       f'boundary="sig-{n}"')],
                     _multipart([inner, sig_part], f"sig-{n}"))  # fmt: skip
    top = [("From", SENDER), ("To", ", ".join(RECIPIENTS)), ("Subject", f"Official letter {n}"),
           ("Date", email.utils.formatdate(localtime=False)), ("MIME-Version", "1.0")]  # fmt: skip
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in top) + signed


def build_messages(secret_key: str, count: int, document_bytes: int) -> list[bytes]:
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))  # short: gpg-agent socket path
    try:
        imported = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import",
                                   secret_key], capture_output=True, timeout=60)  # fmt: skip
        if imported.returncode != 0:
            raise BenchError(f"gpg --import failed: {imported.stderr.decode(errors='replace')}")
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            return list(pool.map(lambda n: build_message(home, n, document_bytes), range(count)))
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


# ---------------------------------------------------------------- the client


@dataclass
class Workload:
    port: int
    tls: ssl.SSLContext
    login: str
    password: str
    messages: list[bytes]
    sessions: int
    counter: Iterator[int] = field(default_factory=itertools.count)

    def next_message(self) -> bytes:
        raw = self.messages[next(self.counter) % len(self.messages)]
        return f"Message-ID: <{uuid.uuid4().hex}@bench.example>\r\n".encode() + raw


@dataclass
class Samples:
    latencies: list[float] = field(default_factory=list)  # seconds, MAIL -> final reply, 250 only
    sojourn: list[float] = field(default_factory=list)  # seconds, scheduled -> final reply
    replies: Counter[str] = field(default_factory=Counter)  # non-250 replies and errors
    ok: int = 0
    last_done: float = 0.0
    server_cpu: float = 0.0  # seconds of server CPU while the phase ran (sessions open)
    client_cpu: float = 0.0  # seconds of this process's CPU over the same span


async def open_session(load: Workload) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=load.port, start_tls=True,
                             tls_context=load.tls, timeout=SMTP_TIMEOUT)  # fmt: skip
    await client.connect()  # EHLO, STARTTLS, EHLO
    await client.login(load.login, load.password)
    return client


async def send_one(client: aiosmtplib.SMTP, load: Workload, samples: Samples) -> bool:
    """MAIL, RCPT x3, DATA; False when the session must be reopened."""
    raw = load.next_message()
    started = time.perf_counter()
    try:
        await client.mail(load.login)
        for rcpt in RECIPIENTS:
            await client.rcpt(rcpt)
        await client.data(raw)
    except aiosmtplib.SMTPServerDisconnected:
        samples.replies["disconnected"] += 1
        return False
    except aiosmtplib.SMTPResponseException as exc:
        samples.replies[f"{exc.code} {exc.message[:60]}"] += 1
        try:
            await client.rset()
        except aiosmtplib.SMTPException:
            return False
        return True
    except (aiosmtplib.SMTPException, OSError) as exc:
        samples.replies[f"error {type(exc).__name__}"] += 1
        return False
    done = time.perf_counter()
    samples.latencies.append(done - started)
    samples.ok += 1
    samples.last_done = max(samples.last_done, done)
    return True


async def close_all(clients: Sequence[aiosmtplib.SMTP]) -> None:
    async def quit_one(client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            client.close()

    await asyncio.gather(*(quit_one(c) for c in clients))


async def peak_phase(load: Workload, duration: float, cpu: CpuClock) -> tuple[Samples, float]:
    """Every session sends back to back until `duration` has passed; (samples, elapsed)."""
    clients = list(await asyncio.gather(*(open_session(load) for _ in range(load.sessions))))
    samples = Samples()
    cpu0, client0 = cpu(), time.process_time()
    start = time.perf_counter()
    deadline = start + duration

    async def worker(i: int) -> None:
        while time.perf_counter() < deadline:
            if not await send_one(clients[i], load, samples):
                clients[i].close()
                clients[i] = await open_session(load)

    try:
        await asyncio.gather(*(worker(i) for i in range(load.sessions)))
        samples.server_cpu, samples.client_cpu = cpu() - cpu0, time.process_time() - client0
    finally:
        await close_all(clients)
    return samples, max(samples.last_done, deadline) - start


async def paced_phase(load: Workload, rate: float, duration: float,
                      cpu: CpuClock) -> tuple[Samples, float]:  # fmt: skip
    """Open loop: message k is due at start + k/rate; a free session takes it."""
    clients = list(await asyncio.gather(*(open_session(load) for _ in range(load.sessions))))
    samples = Samples()
    cpu0, client0 = cpu(), time.process_time()
    due: asyncio.Queue[float | None] = asyncio.Queue()
    start = time.perf_counter()
    total = int(rate * duration)

    async def producer() -> None:
        for k in range(total):
            at = start + k / rate
            delay = at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait(at)
        for _ in clients:
            due.put_nowait(None)

    async def worker(i: int) -> None:
        while (at := await due.get()) is not None:
            ok_before = samples.ok
            if not await send_one(clients[i], load, samples):
                clients[i].close()
                clients[i] = await open_session(load)
            if samples.ok > ok_before:
                samples.sojourn.append(samples.last_done - at)

    try:
        await asyncio.gather(producer(), *(worker(i) for i in range(load.sessions)))
        samples.server_cpu, samples.client_cpu = cpu() - cpu0, time.process_time() - client0
    finally:
        await close_all(clients)
    return samples, max(samples.last_done, start + duration) - start


# ---------------------------------------------------------------- measuring


@dataclass
class Phase:
    server: str
    kind: str  # peak | half | warmup
    round: int
    sessions: int
    seconds: float
    accepted: int
    rate: float  # accepted messages per second
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    not_250: dict[str, int]
    server_cpu_ms_per_msg: float
    client_cpu_ms_per_msg: float
    offered_rate: float = 0.0
    sojourn_p50_ms: float = 0.0
    sojourn_p99_ms: float = 0.0


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]  # nearest rank


def run_phase(server: Server, load: Workload, kind: str, rnd: int, duration: float,
              rate: float = 0.0) -> Phase:  # fmt: skip
    load.port = server.port
    if kind == "half":
        samples, elapsed = asyncio.run(paced_phase(load, rate, duration, server.cpu_seconds))
    else:
        samples, elapsed = asyncio.run(peak_phase(load, duration, server.cpu_seconds))
    if server.proc.poll() is not None:
        raise BenchError(f"{server.name} exited during the {kind} phase (see {server.log})")
    n = max(1, samples.ok)
    ms = [x * 1000 for x in samples.latencies]
    soj = [x * 1000 for x in samples.sojourn]
    phase = Phase(
        server=server.name,
        kind=kind,
        round=rnd,
        sessions=load.sessions,
        seconds=round(elapsed, 3),
        accepted=samples.ok,
        rate=samples.ok / elapsed,
        p50_ms=percentile(ms, 50),
        p99_ms=percentile(ms, 99),
        mean_ms=statistics.fmean(ms) if ms else float("nan"),
        max_ms=max(ms, default=float("nan")),
        not_250=dict(samples.replies),
        server_cpu_ms_per_msg=samples.server_cpu * 1000 / n,
        client_cpu_ms_per_msg=samples.client_cpu * 1000 / n,
        offered_rate=rate,
        sojourn_p50_ms=percentile(soj, 50) if soj else 0.0,
        sojourn_p99_ms=percentile(soj, 99) if soj else 0.0,
    )
    label = f"{kind} r{rnd}" if kind == "peak" else kind
    extra = f" offered {rate:.1f}/s, sojourn p99 {phase.sojourn_p99_ms:.1f} ms," if rate else ""
    bad = sum(phase.not_250.values())
    print(f"  {server.name:5} {label:8} {phase.rate:7.1f} msg/s  p50 {phase.p50_ms:6.1f} ms"
          f"  p99 {phase.p99_ms:6.1f} ms,{extra} server CPU {phase.server_cpu_ms_per_msg:.1f}"
          f" ms/msg, client CPU {phase.client_cpu_ms_per_msg:.1f} ms/msg,"
          f" {phase.accepted} accepted, {bad} not 250", flush=True)  # fmt: skip
    for reply, count in sorted(phase.not_250.items()):
        print(f"        not 250 x{count}: {reply}", flush=True)
    return phase


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float], digits: int = 1) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def summarise(peaks: list[Phase], halves: list[Phase]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in ("barid", "sink"):
        mine = [p for p in peaks if p.server == name]
        summary[name] = {
            "rate": spread([p.rate for p in mine]),
            "p50_ms": spread([p.p50_ms for p in mine]),
            "p99_ms": spread([p.p99_ms for p in mine]),
            "server_cpu_ms_per_msg": spread([p.server_cpu_ms_per_msg for p in mine]),
            "client_cpu_ms_per_msg": spread([p.client_cpu_ms_per_msg for p in mine]),
            "not_250": sum(sum(p.not_250.values()) for p in mine),
        }
    rounds = sorted({p.round for p in peaks})
    ratios = []
    for r in rounds:
        b = next(p for p in peaks if p.round == r and p.server == "barid")
        s = next(p for p in peaks if p.round == r and p.server == "sink")
        ratios.append(b.rate / s.rate if s.rate else float("nan"))
    summary["ratio_per_round"] = ratios
    summary["ratio"] = spread(ratios)
    for half in halves:
        summary[f"half_{half.server}"] = asdict(half)
    return summary


def print_summary(summary: dict[str, Any], command: str) -> None:
    print(f"\ncommand: {command}")
    print("peak (medians, min-max over rounds):")
    for name in ("barid", "sink"):
        s = summary[name]
        print(f"  {name:5} {fmt(s['rate'])} msg/s, p50 {fmt(s['p50_ms'])} ms,"
              f" p99 {fmt(s['p99_ms'])} ms,"
              f" server CPU {fmt(s['server_cpu_ms_per_msg'])} ms/msg,"
              f" client CPU {fmt(s['client_cpu_ms_per_msg'])} ms/msg,"
              f" not 250: {s['not_250']}")  # fmt: skip
    ratios = ", ".join(f"{r:.2f}" for r in summary["ratio_per_round"])
    verdict = "meets" if summary["ratio"]["median"] >= 1.0 else "BELOW"
    print(f"  barid/sink throughput ratio: {fmt(summary['ratio'], 2)} (rounds: {ratios})"
          f" -> {verdict} the aim (>= 1.0)")  # fmt: skip
    for name in ("barid", "sink"):
        half = summary.get(f"half_{name}")
        if half is None:
            continue
        aim = ""
        if name == "barid":
            aim = " -> " + ("meets" if half["p99_ms"] < LATENCY_AIM_MS else "OVER")
            aim += f" the aim (p99 < {LATENCY_AIM_MS:.0f} ms)"
        print(f"  half of barid's peak, {name}: offered {half['offered_rate']:.1f} msg/s,"
              f" achieved {half['rate']:.1f}; MAIL->reply p50 {half['p50_ms']:.1f} ms,"
              f" p99 {half['p99_ms']:.1f} ms; scheduled->reply p99"
              f" {half['sojourn_p99_ms']:.1f} ms{aim}")  # fmt: skip


# ---------------------------------------------------------------- main


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through the cleanups (servers, temp dirs)


def client_tls(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the demo certificate names localhost; we dial 127.0.0.1
    return context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds of peak phases.")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per peak phase.")
    half_help = "Seconds of the paced phase at half of Barid's peak (0: skip)."
    parser.add_argument("--half-duration", type=float, default=15.0, help=half_help)
    parser.add_argument("--sessions", type=int, default=20, help="Concurrent SMTP sessions.")
    parser.add_argument("--messages", type=int, default=200, help="Distinct messages pre-built.")
    parser.add_argument("--document-kb", type=int, default=100, help="Signed document size (KiB).")
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON summary file.")
    workers_help = "barid's [server] check_workers (0: checks in a thread; default: its own)."
    parser.add_argument("--check-workers", type=int, default=None, help=workers_help)
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 20 or not 1.0 <= args.duration <= 120.0:
        parser.error("--rounds must be 1..20 and --duration 1..120")
    if not 0.0 <= args.half_duration <= 120.0 or not 1 <= args.sessions <= 150:
        parser.error("--half-duration must be 0..120 and --sessions 1..150")
    if not 1 <= args.messages <= 5000 or not 1 <= args.document_kb <= 10240:
        parser.error("--messages must be 1..5000 and --document-kb 1..10240")
    if shutil.which("gpg") is None:
        raise BenchError("gpg is not installed")
    signal.signal(signal.SIGTERM, _stop_on_signal)

    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    print(f"command: {command}")
    peaks: list[Phase] = []
    halves: list[Phase] = []
    with tempfile.TemporaryDirectory(prefix="barid-bench-sub-") as tmp:
        work = Path(tmp)
        data = work / "d"
        started = time.perf_counter()
        creds = make_demo(data)
        check_policy(data)
        messages = build_messages(creds["key_files"]["openpgp secret key"], args.messages,
                                  args.document_kb * 1024)  # fmt: skip
        size = statistics.median(len(m) for m in messages)
        print(f"set-up {time.perf_counter() - started:.1f} s: {len(messages)} PGP/MIME messages,"
              f" median {size / 1024:.1f} KiB on the wire, document {args.document_kb} KiB,"
              f" {len(RECIPIENTS)} recipients; {args.sessions} sessions; {args.rounds}"
              f" round(s) of {args.duration:.0f} s per server", flush=True)  # fmt: skip
        load = Workload(0, client_tls(data / "tls" / "cert.pem"), SENDER, creds["password"],
                        messages, args.sessions)  # fmt: skip
        with barid_server(data, work, args.check_workers) as barid, sink_server(data, work) as sink:
            for server in (barid, sink):
                run_phase(server, load, "warmup", 0, WARMUP_SECONDS)
            for rnd in range(1, args.rounds + 1):
                order = (barid, sink) if rnd % 2 else (sink, barid)
                for server in order:
                    peaks.append(run_phase(server, load, "peak", rnd, args.duration))
            if args.half_duration > 0:
                peak = statistics.median(p.rate for p in peaks if p.server == "barid")
                for server in (barid, sink):
                    halves.append(run_phase(server, load, "half", 0, args.half_duration,
                                            rate=peak / 2))  # fmt: skip
            barid_log = barid.log.read_text(errors="replace")
        problems = [ln for ln in barid_log.splitlines() if '"level": "error"' in ln.lower()]

    summary = summarise(peaks, halves)
    print_summary(summary, command)
    if problems:
        print(f"barid logged {len(problems)} error line(s); first: {problems[0][:300]}")
    report = {
        "benchmark": "signed submission over STARTTLS + AUTH",
        "command": command,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "openssl": ssl.OPENSSL_VERSION,
        },
        "params": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "half_duration_s": args.half_duration,
            "sessions": args.sessions,
            "messages": args.messages,
            "document_kib": args.document_kb,
            "check_workers": args.check_workers,
            "message_bytes_median": size,
            "sender": SENDER,
            "recipients": list(RECIPIENTS),
            "sender_rate_threshold": BENCH_RATE_LIMIT,
        },
        "summary": summary,
        "phases": [asdict(p) for p in peaks + halves],
        "barid_error_lines": len(problems),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    print(f"summary written to {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"bench_submission: {exc}", file=sys.stderr)
        sys.exit(1)
