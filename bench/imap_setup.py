"""Set-up shared by the IMAP benchmark's parts: its constants and error, the demo
data directories it makes (`barid demo`) and the policy check. No timing here.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import bench_submission as sub

if TYPE_CHECKING:
    pass

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "imap.json"
PROFILE = ROOT / "bench" / "results" / "imap-profile.txt"
BARID = sub.BARID
SENDER = sub.SENDER  # minister@moh.gov.example, the demo key that signs
IMAP_USER = "clerk@cab.gov.example"  # its INBOX is filled; it receives no delivery
RECIPIENTS = (
    "minister@mof.gov.example",
    "director@cab.gov.example",
    "registrar@moh.gov.example",
    "clerk@moh.gov.example",
    "planning.director@moh.gov.example",
)
TARGETS = ("sqlite", "postgres", "dovecot")
BIG_FOLDER = "Bench-big"
DOVECOT = "/usr/sbin/dovecot"
IMAP_TIMEOUT = 120.0  # seconds per socket operation of the IMAP client
SMTP_TIMEOUT = 60.0
LMTP_TIMEOUT = 60.0
DRAIN_TIMEOUT = 900.0  # seconds for the worker to empty the queue
STEP_TIMEOUT = 300  # seconds for `barid demo` and `barid policy explain`
SUBMIT_SESSIONS = 8
NAGLE_PROBE = 20  # APPENDs timed on a stock imaplib socket (Nagle on), see fill()
HEADERS_AIM = 3.0  # Barid within 3x of Dovecot on header fetches


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def spread(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float], scale: float = 1.0, digits: int = 1) -> str:
    return (f"{s['median'] * scale:.{digits}f} ({s['min'] * scale:.{digits}f}"
            f"-{s['max'] * scale:.{digits}f})")  # fmt: skip


# ---------------------------------------------------------------- set-up


def clean_env(database_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    if database_url:
        env["BARID_DATABASE__URL"] = database_url
        env["BARID_DATABASE__ALLOW_UNSAFE_DURABILITY"] = "1"  # its PostgreSQL: fsync off
    return env


def make_demo(data: Path, database_url: str | None) -> dict[str, dict[str, Any]]:
    """`barid demo --no-serve` (on `database_url` if given); the sender-rate rule raised."""
    done = subprocess.run([str(BARID), "demo", "--data-dir", str(data), "--no-serve"],
                          capture_output=True, timeout=STEP_TIMEOUT,
                          env=clean_env(database_url), stdin=subprocess.DEVNULL)  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"barid demo failed: {done.stderr.decode(errors='replace')[-2000:]}")
    rows = json.loads((data / "demo" / "credentials.json").read_text())
    creds = {row["address"]: row for row in rows}
    for address in (SENDER, IMAP_USER, *RECIPIENTS):
        if address not in creds:
            raise BenchError(f"{address} is not in the demo directory")
    policy = data / "policies.yaml"
    text, count = re.subn(r"(rate_per_hour:\s*\{\s*at_least:\s*)\d+",
                          rf"\g<1>{sub.BENCH_RATE_LIMIT}", policy.read_text())  # fmt: skip
    if count != 1:
        raise BenchError(f"expected one rate_per_hour condition in {policy}, found {count}")
    policy.write_text(text)
    return creds


def check_policy(data: Path) -> None:
    """`barid policy explain`: the shipped policy allows every delivery recipient."""
    for rcpt in RECIPIENTS:
        done = subprocess.run([str(BARID), "policy", "explain", "--config",
                               str(data / "barid.toml"), "--json", "--recipients",
                               str(len(RECIPIENTS)), SENDER, rcpt],
                              capture_output=True, timeout=STEP_TIMEOUT, env=clean_env(),
                              stdin=subprocess.DEVNULL)  # fmt: skip
        text = done.stdout.decode(errors="replace")
        try:
            allowed = json.loads(text)["decision"]["allowed"] is True
        except (ValueError, KeyError, TypeError):
            allowed = False
        if done.returncode != 0 or not allowed:
            raise BenchError(f"policy does not allow {SENDER} -> {rcpt}: {text[-1000:]}")


