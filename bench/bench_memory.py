"""Benchmark: the gateway's resident memory against concurrent large SMTP transfers.

`barid serve` runs as its own process on a fresh data directory (`barid init`,
one agency, two employees, a policy letting them write to each other) on free
loopback ports. For each N in `--sessions`, N clients log in (STARTTLS + AUTH
PLAIN), send MAIL / RCPT / DATA and then `--message-mb` MiB of 78-octet lines
each, all at once, without ever ending the message. VmRSS of the server
(/proc/<pid>/status) is sampled every 50 ms: before the transfers, at its
peak, and one second after the clients hang up. Two configurations in the
same run, alternated over `--rounds` rounds (medians reported):

  spool     the defaults: a message past smtp.spool_threshold_bytes (1 MiB) goes
            to an encrypted temporary file; smtp.max_inflight_bytes (4 x 25 MiB)
  memory    baseline: smtp.spool_threshold_bytes = 1 GiB and
            smtp.max_inflight_bytes = 1 TiB, i.e. every message held in memory
            while it arrives, as the gateway did before spooling
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from testkit.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
BARID = Path(sys.executable).parent / "barid"
PASSWORD = "correct horse battery"
POLICY = """version: 1
rules:
  - id: moh-internal
    description: MOH staff write to each other.
    sender: {agency: MOH}
    recipient: {agency: MOH}
    effect: allow
"""
LINE = b"x" * 76 + b"\r\n"
CHUNK = LINE * (1024 * 1024 // len(LINE))
CONFIGS = {
    "spool": {},
    "memory": {
        "BARID_SMTP__SPOOL_THRESHOLD_BYTES": str(1024**3),
        "BARID_SMTP__MAX_INFLIGHT_BYTES": str(1024**4),
    },
}


def barid(env: dict[str, str], *args: str, stdin: str = "") -> None:
    subprocess.run([str(BARID), *args], env=env, input=stdin.encode(), check=True,
                   capture_output=True, timeout=300)  # fmt: skip


def make_data(data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env["BARID_CONFIG"] = str(data / "barid.toml")
    barid(env, "init", "--data-dir", str(data))
    barid(env, "agency", "add", "MOH", "--name-en", "Health", "--kind", "ministry",
          "--domain", "moh.gov.example")  # fmt: skip
    for who in ("a", "b"):
        barid(env, "employee", "add", f"{who}@moh.gov.example", "--agency", "MOH",
              "--name-en", who.upper(), "--password-stdin", stdin=PASSWORD)  # fmt: skip
    (data / "policies.yaml").write_text(POLICY)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start(data: Path, extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env |= {"BARID_CONFIG": str(data / "barid.toml"), "BARID_SMTP__SUBMISSION_PORT": str(port),
            "BARID_SMTP__SMTPS_PORT": "0", "BARID_SMTP__TRANSFER_PORT": "0",
            "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0", "BARID_HTTP__PORT": "0",
            "BARID_HTTP__ADMIN_PORT": "0",
            "BARID_SMTP__MIN_FREE_DISK_MB": "0", "BARID_SERVER__LOG_LEVEL": "warning",
            "BARID_ALLOW_ROOT": "1"}  # fmt: skip
    env |= extra
    proc = subprocess.Popen([str(BARID), "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.2):
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("barid serve did not start")


async def reply(reader: asyncio.StreamReader) -> bytes:
    out = b""
    while True:
        line = await asyncio.wait_for(reader.readline(), 60)
        out += line
        if len(line) < 4 or line[3:4] != b"-":
            return out


async def cmd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> bytes:
    writer.write(line + b"\r\n")
    await writer.drain()
    return await reply(reader)


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def session(port: int, tls: ssl.SSLContext) -> Stream:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reply(reader)
    await cmd(reader, writer, b"EHLO bench")
    await cmd(reader, writer, b"STARTTLS")
    await writer.start_tls(tls)
    await cmd(reader, writer, b"EHLO bench")
    token = base64.b64encode(f"\0a@moh.gov.example\0{PASSWORD}".encode())
    assert (await cmd(reader, writer, b"AUTH PLAIN " + token)).startswith(b"235")
    for line in (b"MAIL FROM:<a@moh.gov.example>", b"RCPT TO:<b@moh.gov.example>"):
        assert (await cmd(reader, writer, line)).startswith(b"250")
    answer = await cmd(reader, writer, b"DATA")
    if not answer.startswith(b"354"):
        raise RuntimeError(f"DATA refused: {answer!r}")
    return reader, writer


async def push(writer: asyncio.StreamWriter, mib: int) -> None:
    writer.write(b"From: a@moh.gov.example\r\nTo: b@moh.gov.example\r\nSubject: big\r\n\r\n")
    for _ in range(mib):
        writer.write(CHUNK)
        await writer.drain()


async def measure(data: Path, extra: dict[str, str], n: int, mib: int) -> tuple[int, int, int]:
    """(before, peak, after) VmRSS in KiB for n concurrent unfinished transfers."""
    proc, port = start(data, extra)
    try:
        tls = ssl.create_default_context(cafile=str(data / "tls" / "cert.pem"))
        tls.check_hostname = False
        sessions = [await session(port, tls) for _ in range(n)]
        before = peak = rss_kib(proc.pid)

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_kib(proc.pid))
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(push(w, mib) for _, w in sessions))
        await asyncio.sleep(1.0)
        for _, writer in sessions:
            writer.transport.abort()
        await asyncio.sleep(1.0)
        sampler.cancel()
        return before, peak, rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,4,12")
    parser.add_argument("--message-mb", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="barid-bench-mem-"))
    try:
        data = work / "data"
        make_data(data)
        results: dict[tuple[str, int], list[tuple[int, int, int]]] = {}
        for _ in range(args.rounds):
            for n in (int(x) for x in args.sessions.split(",")):
                for name, extra in CONFIGS.items():
                    got = asyncio.run(measure(data, extra, n, args.message_mb))
                    results.setdefault((name, n), []).append(got)
                    print(name, n, got, flush=True)
        print(f"\n| N x {args.message_mb} MiB | config | VmRSS before | peak | growth | after |")
        print("|---|---|---|---|---|---|")
        for (name, n), rows in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            before = statistics.median(r[0] for r in rows) / 1024
            peak = statistics.median(r[1] for r in rows) / 1024
            growth = statistics.median(r[1] - r[0] for r in rows) / 1024
            after = statistics.median(r[2] for r in rows) / 1024
            print(f"| {n} | {name} | {before:.0f} MiB | {peak:.0f} MiB | {growth:.0f} MiB"
                  f" | {after:.0f} MiB |")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
