"""Benchmark of Barid's relay: copies per second from the queue to a peer, against smtp-sink.

Three cases per round, in an order that rotates from round to round:

  smtp-source  baseline: Postfix's `smtp-source -d -s CONCURRENCY -l 102400 -m COPIES`
               into Postfix's `smtp-sink` on loopback (no TLS: neither has it);
               rate = messages / wall time of the smtp-source process;
  sink         Barid's relay (the "central" gateway, in this process) sends every
               queued copy to a bare mutual-TLS sink (bench/relay_sink.py: stock
               aiosmtpd in its own process with the TLS context of Barid's
               transfer port, a client certificate required and pinned; 250 to
               everything). Isolates the sending side: claiming the queue, reading
               and decrypting the blobs, DKIM signing, SMTP over TLS, recording
               outcomes and audit events;
  region       the same relay to a real peer Barid gateway ("region", `barid serve`
               in its own process) that verifies TLS and DKIM, applies its policy
               and files every copy into an INBOX (and queues its signed delivery
               receipts back to central, which files them).

Set-up (not timed), with the tests' two-gateway code (testkit/federation.py):
central is a `barid demo` data directory; region is `barid init` + one
agency (REG, region.gov.example) + `--recipients` employees (`barid directory
import`); each names the other in `[peers.*]` of its barid.toml with the other's
certificate pinned and its DKIM records in a file. Central's policy lets
registrars write to the peer region; region's lets central write to agency REG.
With central's relay stopped, `--copies / --recipients` PGP/MIME letters (a
random `--document-kb` KiB attachment, signed with gpg by registrar@moh.gov.example,
testkit.messages.pgp_mime) are submitted over SMTP (STARTTLS + AUTH) to
`--recipients` region addresses each; once local work (Sent copies, acceptance
receipts) is done the data directory is kept as a template. Each round and case
starts from a fresh copy of it (and of region's), so every timed run has the
same `--copies` queued copies.

Timed: from the first `await relay.run_once()` until every copy's queue entry is
"delivered" (`run_once` in a loop; the count is read after each round).
Copies/s = copies / seconds. The relay's concurrency is `[delivery] concurrency`
(`--concurrency`, default 8: eight connections, one per lane, each carrying its
share of the copies); smtp-source uses as many sessions, each sending all its
messages over one connection (`-d`). CPU seconds of central (this process) and
of the receiving process are reported per copy.

Run from the repository root:

    .venv/bin/python -m bench.bench_relay [--copies 400] [--rounds 3]
        [--recipients 50] [--document-kb 60] [--concurrency 8]

A JSON summary is written to bench/results/relay.json (git-ignored). Everything
started (servers, gpg agent, temporary directories) is stopped and removed at the
end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import shutil
import signal
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import aiosmtplib

from bench.bench_submission import BenchError, stop_process, wait_for_port
from gateway.config import load_settings
from gateway.serve import Gateway
from gateway.store.models import DeliveryQueueEntry, ReceiptJob
from testkit import federation
from testkit.federation import (
    REGION_AGENCY_POLICY,
    REGION_DOMAIN,
    configure_central,
    configure_region,
    import_region_staff,
    make_region,
)
from testkit.gateway import drop_gnupghome, new_gnupghome
from testkit.messages import pgp_mime
from testkit.ports import free_port

ROOT = Path(__file__).resolve().parents[1]

RESULTS = ROOT / "bench" / "results" / "relay.json"
PY = sys.executable
SMTP_SINK, SMTP_SOURCE = "/usr/sbin/smtp-sink", "/usr/sbin/smtp-source"
BASELINE_BYTES = 102400
RUN_TIMEOUT = 300.0

SENDER = "registrar@moh.gov.example"
# The tests' two-gateway settings, with a quieter log and a longer delivery timeout.
GATEWAY_ENV = {
    **federation.GATEWAY_ENV, "BARID_SERVER__LOG_LEVEL": "warning",
    "BARID_DELIVERY__TIMEOUT_SECONDS": "30",
}  # fmt: skip
CASES = ("smtp-source", "sink", "region")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env.update(extra)
    return env


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- set-up (testkit.federation)


def letters(demo: Path, code: str, to: Sequence[str], count: int, document: int) -> list[bytes]:
    rows = json.loads((demo / "demo" / "credentials.json").read_text())
    key = next(r for r in rows if r["address"] == SENDER)["key_files"]["openpgp secret key"]
    folded = [to[0], *(f"\r\n {a}" for a in to[1:])]  # To: one address per line
    home = new_gnupghome()
    try:
        subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import", key],
                       check=True, capture_output=True, timeout=60)  # fmt: skip
        return [
            pgp_mime(home, SENDER, SENDER, folded, extra=[("Barid-Employee-Code", code)],
                     document=b"%PDF-1.4\n" + os.urandom(document), name=f"letter-{n}.pdf")
            for n in range(count)
        ]  # fmt: skip
    finally:
        drop_gnupghome(home)


def client_tls(cert: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    return ctx


async def start_central(data: Path, transfer_port: int, concurrency: int) -> Gateway:
    settings = load_settings(data / "barid.toml", environ={
        **GATEWAY_ENV, "BARID_SMTP__SUBMISSION_PORT": "0",
        "BARID_SMTP__TRANSFER_PORT": str(transfer_port),
        "BARID_DELIVERY__CONCURRENCY": str(concurrency),
    })  # fmt: skip
    gateway = Gateway(settings)
    try:
        await gateway.start()
    except BaseException:
        await gateway.stop()
        raise
    assert gateway.relay is not None
    await gateway.relay.stop()
    return gateway


async def count(gateway: Gateway, statement: Any) -> int:
    async with gateway.sessions() as s:
        return int(await s.scalar(statement) or 0)


def peer_state(state: str) -> Any:
    from sqlalchemy import func, select

    return (
        select(func.count())
        .select_from(DeliveryQueueEntry)
        .where(DeliveryQueueEntry.target == "peer:region", DeliveryQueueEntry.state == state)
    )


async def settle_local(gateway: Gateway, seconds: float = 120.0) -> None:
    """Until no local delivery or receipt is left (the local worker runs)."""
    from sqlalchemy import func, select

    local = (
        select(func.count())
        .select_from(DeliveryQueueEntry)
        .where(DeliveryQueueEntry.state == "queued", DeliveryQueueEntry.target == "local")
    )
    pending = select(func.count()).select_from(ReceiptJob).where(ReceiptJob.state == "pending")
    deadline = time.monotonic() + seconds
    while await count(gateway, local) or await count(gateway, pending):
        if time.monotonic() > deadline:
            raise BenchError("central's local delivery did not finish")
        await asyncio.sleep(0.1)


async def fill(template: Path, demo: Path, to: list[str], copies: int, document: int) -> int:
    """Submit the letters with the relay stopped; the queue's peer entries."""
    rows = json.loads((demo / "demo" / "credentials.json").read_text())
    me = next(r for r in rows if r["address"] == SENDER)
    count_letters = max(1, copies // len(to))
    raws = await asyncio.to_thread(letters, demo, me["code"], to, count_letters, document)
    say(f"  {count_letters} letters of {len(raws[0]) / 1024:.0f} KiB to {len(to)} recipients")
    gateway = await start_central(template, free_port(), 8)
    try:
        tls = client_tls(gateway.settings.tls_cert)
        port = gateway.smtp_ports["submission"]
        for raw in raws:
            client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True,
                                     tls_context=tls, timeout=120)  # fmt: skip
            await client.connect()
            try:
                await client.login(SENDER, me["password"])
                await client.sendmail(SENDER, to, raw)
            finally:
                client.close()
        await settle_local(gateway)
        return await count(gateway, peer_state("queued"))
    finally:
        await gateway.stop()


# ---------------------------------------------------------------- the cases


@dataclass
class Sample:
    case: str
    round: int
    copies: int
    seconds: float
    rate: float
    sender_cpu_ms_per_copy: float
    receiver_cpu_ms_per_copy: float
    bytes_per_copy: float
    check: str


@contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None
            ) -> Iterator[subprocess.Popen[bytes]]:  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL, cwd=ROOT)  # fmt: skip
    try:
        yield proc
    finally:
        stop_process(proc)


def run_smtp_source(work: Path, copies: int, concurrency: int, rnd: int) -> Sample:
    port = free_port()
    log = work / f"smtp-sink-{rnd}.log"
    user = ["-u", "nobody"] if os.geteuid() == 0 else []  # smtp-sink refuses root otherwise
    with process([SMTP_SINK, *user, f"127.0.0.1:{port}", "256"], log) as sink:
        wait_for_port(sink, port, log, "smtp-sink")
        cpu0 = cpu_of(sink.pid)
        start = time.perf_counter()
        done = subprocess.run(
            [SMTP_SOURCE, "-d", "-s", str(concurrency), "-l", str(BASELINE_BYTES), "-m",
             str(copies), "-f", "bench@source.test", "-t", "sink@sink.test",
             f"127.0.0.1:{port}"],
            capture_output=True, timeout=RUN_TIMEOUT,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        cpu = cpu_of(sink.pid) - cpu0
    if done.returncode != 0:
        raise BenchError(f"smtp-source: exit {done.returncode}: {done.stderr.decode()[-2000:]}")
    return Sample("smtp-source", rnd, copies, seconds, copies / seconds, float("nan"),
                  cpu * 1000 / copies, float(BASELINE_BYTES), "exit 0")  # fmt: skip


async def drain(gateway: Gateway, copies: int) -> float:
    """Seconds from the first relay round until every copy is delivered."""
    relay = gateway.relay
    assert relay is not None
    start = time.perf_counter()
    while True:
        done = await relay.run_once()
        delivered = await count(gateway, peer_state("delivered"))
        if delivered >= copies:
            return time.perf_counter() - start
        failed = await count(gateway, peer_state("failed"))
        if failed:
            raise BenchError(f"{failed} copies failed at central")
        if time.perf_counter() - start > RUN_TIMEOUT:
            raise BenchError(f"only {delivered} of {copies} copies delivered in {RUN_TIMEOUT} s")
        if not done:
            await asyncio.sleep(0.05)


async def relay_case(case: str, central: Path, region: Path, work: Path, copies: int,
                     concurrency: int, rnd: int) -> Sample:  # fmt: skip
    central_port, peer_port = free_port(), free_port()
    configure_central(central, region, peer_port, work)
    log = work / f"{case}-{rnd}.log"
    if case == "sink":
        tls = region / "tls"
        args = [PY, "-m", "bench.relay_sink", "--port", str(peer_port),
                "--cert", str(tls / "cert.pem"), "--key", str(tls / "key.pem"),
                "--trust", str(central / "tls" / "cert.pem")]  # fmt: skip
        env = None
    else:
        configure_region(region, central, central_port, work, REGION_AGENCY_POLICY)
        args = [PY, "-m", "admin", "serve", "--config", str(region / "barid.toml")]
        env = clean_env(**{
            **GATEWAY_ENV, "BARID_SMTP__SUBMISSION_PORT": str(free_port()),
            "BARID_SMTP__TRANSFER_PORT": str(peer_port),
            "BARID_ALLOW_ROOT": "1",  # benchmark machines run as root
        })  # fmt: skip
    with process(args, log, env) as peer:
        wait_for_port(peer, peer_port, log, case)
        gateway = await start_central(central, central_port, concurrency)
        try:
            cpu0, peer_cpu0 = time.process_time(), cpu_of(peer.pid)
            seconds = await drain(gateway, copies)
            cpu, peer_cpu = time.process_time() - cpu0, cpu_of(peer.pid) - peer_cpu0
        finally:
            await gateway.stop()
    size, check = float("nan"), ""
    if case == "sink":
        words = log.read_text(errors="replace").split()
        if "received" in words:
            i = words.index("received")
            received, size = int(words[i + 1]), int(words[i + 2]) / max(1, int(words[i + 1]))
            check = f"sink received {received}"
            if received != copies:
                raise BenchError(f"sink received {received} messages, expected {copies}")
    else:
        with sqlite3.connect(f"file:{region / 'barid.db'}?mode=ro", uri=True) as db:
            filed = db.execute("SELECT count(*) FROM inbound_copies").fetchone()[0]
        check = f"region filed {filed}"
        if filed != copies:
            raise BenchError(f"region filed {filed} copies, expected {copies}")
    return Sample(case, rnd, copies, seconds, copies / seconds, cpu * 1000 / copies,
                  peer_cpu * 1000 / copies, size, check)  # fmt: skip


# ---------------------------------------------------------------- summary


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(samples: list[Sample], rounds: int) -> dict[str, Any]:
    out: dict[str, Any] = {"cases": {}, "ratios": {}}
    for case in CASES:
        mine = [s for s in samples if s.case == case]
        out["cases"][case] = {
            "rates": [s.rate for s in mine],
            "rate": spread([s.rate for s in mine]),
            "seconds": spread([s.seconds for s in mine]),
            "sender_cpu_ms_per_copy": statistics.median([s.sender_cpu_ms_per_copy for s in mine]),
            "receiver_cpu_ms_per_copy": statistics.median(
                [s.receiver_cpu_ms_per_copy for s in mine]
            ),
            "bytes_per_copy": statistics.median([s.bytes_per_copy for s in mine]),
        }
    for case in ("sink", "region"):
        per_round = [
            next(s for s in samples if s.case == case and s.round == r).rate
            / next(s for s in samples if s.case == "smtp-source" and s.round == r).rate
            for r in range(1, rounds + 1)
        ]
        out["ratios"][case] = {"per_round": per_round, **spread(per_round)}
    return out


def print_summary(samples: list[Sample], summary: dict[str, Any], rounds: int) -> None:
    heads = [f"round {r}" for r in range(1, rounds + 1)]
    print()
    print(f"| copies/s | {' | '.join(heads)} | median | ratio to smtp-source (median) |")
    print(f"|---|{'---|' * len(heads)}---|---|")
    for case in CASES:
        rates = summary["cases"][case]["rates"]
        ratio = summary["ratios"].get(case)
        print(f"| {case} | {' | '.join(f'{r:.1f}' for r in rates)} | "
              f"**{summary['cases'][case]['rate']['median']:.1f}** | "
              f"{'1' if ratio is None else format(ratio['median'], '.2f')} |")  # fmt: skip
    print()
    print("| median | sender CPU ms/copy | receiver CPU ms/copy | bytes/copy |")
    print("|---|---|---|---|")
    for case in CASES:
        c = summary["cases"][case]
        print(f"| {case} | {c['sender_cpu_ms_per_copy']:.2f} | "
              f"{c['receiver_cpu_ms_per_copy']:.2f} | {c['bytes_per_copy']:.0f} |")  # fmt: skip
    print()
    for case in ("sink", "region"):
        r = summary["ratios"][case]
        print(f"{case}/smtp-source per round: {', '.join(f'{x:.2f}' for x in r['per_round'])}")
    print(f"aim (sink >= 0.5 x smtp-source): "
          f"{'met' if summary['ratios']['sink']['median'] >= 0.5 else 'NOT met'}")  # fmt: skip
    for s in samples:
        if s.check:
            say(f"  round {s.round} {s.case}: {s.check}")


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def prepare(work: Path, people: Sequence[str]) -> None:
    """The demo (central) and region data directories; not timed."""
    for tool in (SMTP_SINK, SMTP_SOURCE):
        if not Path(tool).exists():
            raise BenchError(f"{tool} not found (apt-get install postfix)")
    say("set-up: barid demo, region (barid init + staff), queue fill")
    done = subprocess.run([PY, "-m", "admin", "demo", "--data-dir", str(work / "demo"),
                           "--no-serve"], capture_output=True, timeout=300, env=clean_env(),
                          cwd=ROOT)  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"barid demo: {done.stderr.decode(errors='replace')[-2000:]}")
    try:
        make_region(work / "region")
        import_region_staff(work / "region", people)
    except RuntimeError as exc:
        raise BenchError(str(exc)) from None
    shutil.copytree(work / "demo", work / "central")


async def run(args: argparse.Namespace, work: Path) -> int:
    demo, region_t, central_t = work / "demo", work / "region", work / "central"
    people = [f"staff{n:03d}@{REGION_DOMAIN}" for n in range(args.recipients)]
    await asyncio.to_thread(prepare, work, people)
    configure_central(central_t, region_t, free_port(), work)
    queued = await fill(central_t, demo, people, args.copies, args.document_kb * 1024)
    copies = queued
    say(f"  {copies} copies queued for peer region")
    if copies < 1:
        raise BenchError("nothing queued for the peer")
    samples: list[Sample] = []
    for rnd in range(1, args.rounds + 1):
        order = list(CASES[rnd - 1 :] + CASES[: rnd - 1])
        for case in order:
            if case == "smtp-source":
                s = await asyncio.to_thread(run_smtp_source, work, copies, args.concurrency, rnd)
            else:
                central, region = work / f"c-{case}-{rnd}", work / f"r-{case}-{rnd}"
                shutil.copytree(central_t, central)
                shutil.copytree(region_t, region)
                try:
                    s = await relay_case(case, central, region, work, copies,
                                         args.concurrency, rnd)  # fmt: skip
                finally:
                    shutil.rmtree(central, ignore_errors=True)
                    shutil.rmtree(region, ignore_errors=True)
            samples.append(s)
            say(f"round {rnd} {case:12s} {s.rate:7.1f} copies/s  ({s.seconds:.2f} s; sender CPU"
                f" {s.sender_cpu_ms_per_copy:.2f} ms/copy, receiver"
                f" {s.receiver_cpu_ms_per_copy:.2f} ms/copy)")  # fmt: skip
    summary = summarise(samples, args.rounds)
    print_summary(samples, summary, args.rounds)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": " ".join(sys.argv), "machine": {"cpus": os.cpu_count(),
        "python": platform.python_version()}, "copies": copies, "summary": summary,
        "samples": [asdict(s) for s in samples]}, indent=2, default=str))  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--copies", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=50, help="per letter (max 100)")
    parser.add_argument("--document-kb", type=int, default=60,
                        help="the letter's attachment, KiB (base64: about 4/3)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    if not 1 <= args.recipients <= 100:
        parser.error("--recipients must be 1..100")
    signal.signal(signal.SIGTERM, _stop_on_signal)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # aiosmtpd: a line per session
    work = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    try:
        return asyncio.run(run(args, work))
    except BenchError as exc:
        say(f"error: {exc}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
