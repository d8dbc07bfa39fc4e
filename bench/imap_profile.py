"""Profiling of Barid's IMAP header fetches for the benchmark: py-spy (native
frames) in a child process summed by area and function, or cProfile in this
process when py-spy is missing.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import bench_submission as sub
from bench.imap_client import HeadersSample, headers_once
from bench.imap_delivery import in_process_gateway
from bench.imap_servers import Target
from bench.imap_setup import IMAP_USER, ROOT, STEP_TIMEOUT, BenchError, clean_env

if TYPE_CHECKING:
    from gateway.serve import Gateway

# ---------------------------------------------------------------- profile

PROFILE_RUNS = 3  # headers runs sampled by py-spy (after one warm-up)
PY_SPY_RATE = 250  # samples per second
_SQLITE = "SQLite (sqlite3 and aiosqlite's thread)"
_TLS = "TLS (OpenSSL, asyncio's sslproto)"
_NATIVE_AREAS = (  # by the innermost frame, native frames included
    ("sqlite", _SQLITE),
    ("argon2", "Argon2id (LOGIN)"),
    ("_cffi_backend", "Argon2id (LOGIN)"),
    ("libssl", _TLS),
    ("libcrypto", _TLS),
    ("gc_collect", "Python's garbage collector"),
)
_PYTHON_AREAS = (  # otherwise by the innermost Python frame
    ("sqlite", _SQLITE),
    ("sqlalchemy", "SQLAlchemy (ORM, result rows, async adaption)"),
    ("pymap", "pymap (header parsing, FETCH response building)"),
    ("email/", "Python's email package (called by pymap's header parser)"),
    ("cryptography", "cryptography (blob decryption)"),
    ("argon2", "Argon2id (LOGIN)"),
    ("gateway/", "Barid's own code (gateway/)"),
    ("sslproto", _TLS),
    ("ssl.py", _TLS),
    ("asyncio", "asyncio (event loop, streams)"),
    ("typing.py", "typing (isinstance on Protocols)"),
)
# Threads waiting for a lock, the GIL, a queue or the selector are not working.
_WAITING = ("PyThread_acquire_lock_timed", "pthread_cond_timedwait", "pthread_cond_wait",
            "take_gil", "epoll_wait", "select_epoll_poll")  # fmt: skip


async def _in_process_target(gateway: Gateway, data: Path) -> Target:
    creds = json.loads((data / "demo" / "credentials.json").read_text())
    password = next(row["password"] for row in creds if row["address"] == IMAP_USER)
    return Target("sqlite", gateway.imap_ports["imap"], IMAP_USER, password,
                  sub.client_tls(gateway.settings.tls_cert))  # fmt: skip


def profile_driver(data: str, count: int, runs: int) -> None:
    """Run under py-spy: the gateway in this process, one warm-up, then `runs` headers runs
    (the client in a thread); prints the samples as JSON."""

    async def go() -> list[HeadersSample]:
        async with in_process_gateway(Path(data), None) as gateway:
            target = await _in_process_target(gateway, Path(data))
            await asyncio.to_thread(headers_once, target, count, 0)
            out = []
            for n in range(runs):
                out.append(await asyncio.to_thread(headers_once, target, count, n + 1))
            return out

    print(json.dumps([asdict(x) for x in asyncio.run(go())]))


def find_py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _frame_name(frame: str) -> str:
    """`fn (path:line)` -> `fn (shortened path)`."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


def _area(frames: Sequence[str]) -> str:
    inner = frames[-1]
    for key, label in _NATIVE_AREAS:
        if key in inner:
            return label
    for frame in reversed(frames):  # the innermost frame of a known area; stdlib helpers
        if ".py:" in frame:  # (strptime, base64, contextlib, ...) count as their caller's
            found = next((label for key, label in _PYTHON_AREAS if key in frame), None)
            if found:
                return found
    return "other"


def summarise_py_spy(raw: str, samples: list[dict[str, Any]], runs: int, count: int,
                     cpu_ms: float | None) -> str:  # fmt: skip
    """Where the server's CPU went: by area, by innermost function, by function inclusive."""
    areas: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = client = waiting = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        n = int(count_text)
        frames = stack.split(";")
        # The client thread, imports, and the gateway's start/stop are not the server's work;
        # threads blocked on a lock or in epoll_wait are waiting, not working.
        if any("headers_once" in f or "_find_and_load" in f or "gateway/serve/" in f
               for f in frames):  # fmt: skip
            client += n
            continue
        if any(w in f for f in frames for w in _WAITING):
            waiting += n
            continue
        total += n
        areas[_area(frames)] += n
        leaf[_frame_name(frames[-1])] += n
        for name in {_frame_name(f) for f in frames if ".py:" in f}:
            inclusive[name] += n

    def table(title: str, counts: Counter[str], top: int) -> list[str]:
        rows = [f"\n{title}", f"{'share':>6} {'~ms':>6}  what"]
        for name, k in counts.most_common(top):
            share = k / max(1, total)
            ms = f"{share * cpu_ms:6.0f}" if cpu_ms else f"{'':6}"
            rows.append(f"{share:6.1%} {ms}  {name}")
        return rows

    walls = ", ".join(f"{x['total_s'] * 1000:.0f}" for x in samples)
    fetches = ", ".join(f"{x['fetch_s'] * 1000:.0f}" for x in samples)
    lines = [
        f"py-spy --native ({PY_SPY_RATE} Hz) of the gateway (SQLite) running in one process,",
        f"during {runs} `headers` runs (FETCH 1:{count}) after one warm-up; the client in a"
        " thread.",
        f"Wall per run under the sampler: {walls} ms (of which FETCH {fetches} ms).",
        f"{total} samples of server work (all threads); left out: {waiting} samples of threads"
        f" waiting (locks, GIL, queues, epoll), {client} of the client thread, imports and"
        " start-up/shut-down. The sampler slows the process down: read the shares.",
        "~ms: the share of the server CPU that one `headers` run costs without the profiler"
        + (
            f" ({cpu_ms:.0f} ms, barid serve on SQLite, median of the rounds)."
            if cpu_ms
            else " (not measured in this run)."
        ),
        "A sample's area is that of its innermost frame (native frames of SQLite, OpenSSL,",
        "Argon2 and the garbage collector; otherwise the innermost Python frame of a known area).",
    ]
    lines += table("By area", areas, 20)
    lines += table("By innermost frame (self time)", leaf, 30)
    lines += table("By Python function, inclusive (time in it and what it calls)", inclusive, 70)
    return "\n".join(lines) + "\n"


def py_spy_profile(py_spy: str, data: Path, count: int, work: Path, cpu_ms: float | None) -> str:
    raw = work / "py-spy.txt"
    code = (f"from bench import imap_profile; "
            f"imap_profile.profile_driver({str(data)!r}, {count}, {PROFILE_RUNS})")
    env = clean_env()
    done = subprocess.run([py_spy, "record", "--native", "--rate", str(PY_SPY_RATE),
                           "--format", "raw", "--output", str(raw), "--", sys.executable, "-c",
                           code],
                          capture_output=True, text=True, timeout=STEP_TIMEOUT, env=env, cwd=ROOT,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    found = [ln for ln in done.stdout.splitlines() if ln.startswith("[")]
    if done.returncode != 0 or not found or not raw.exists():
        raise BenchError(f"py-spy profile failed: {(done.stderr + done.stdout)[-2000:]}")
    return summarise_py_spy(raw.read_text(), json.loads(found[-1]), PROFILE_RUNS, count, cpu_ms)


async def cprofile_headers(data: Path, count: int) -> str:
    """Without py-spy: one `headers` run under cProfile (the event-loop thread only)."""
    async with in_process_gateway(data, None) as gateway:
        target = await _in_process_target(gateway, data)
        await asyncio.to_thread(headers_once, target, count, 0)  # warm-up
        profiler = cProfile.Profile()
        profiler.enable()
        try:
            sample = await asyncio.to_thread(headers_once, target, count, 0)
        finally:
            profiler.disable()
    out = io.StringIO()
    out.write(f"cProfile of the gateway's event-loop thread during one `headers` run\n"
              f"(FETCH 1:{count}); wall {sample.total_s * 1000:.0f} ms under the profiler:"
              f" connect+TLS {sample.connect_tls_s * 1000:.0f}, LOGIN"
              f" {sample.login_s * 1000:.0f}, SELECT {sample.select_s * 1000:.0f}, FETCH"
              f" {sample.fetch_s * 1000:.0f} ms.\n"
              "aiosqlite's thread and Argon2id's are not in this profile.\n\n")  # fmt: skip
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(45)
    return out.getvalue()


