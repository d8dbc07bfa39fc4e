"""Benchmark of Barid's IMAP service and local delivery, against Dovecot in the same run.

Targets (any of them, `--targets`):

  sqlite    `barid serve` on a fresh demo data directory (SQLite, its defaults);
  postgres  `barid serve` on a second demo data directory whose database is a
            throwaway PostgreSQL started by this script (bench_import's
            `postgres_server()`: fsync and synchronous_commit off);
  dovecot   Debian's Dovecot (dovecot-imapd, dovecot-lmtpd), started by this
            script as an unprivileged process (the `dovecot` account when run
            as root) with a generated minimal configuration in a temporary
            directory: a passwd-file user whose password is an Argon2id hash
            with Barid's default cost (so LOGIN costs both servers the same),
            maildir storage, `ssl = required` with a self-signed P-256
            certificate made by keys.tls (the key type of Barid's certificate),
            IMAP and LMTP listeners on free 127.0.0.1 ports, `log_path` in the
            temporary directory. Everything else is Dovecot's default.

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
  deliveries  Barid: the gateway runs in this process (as tests/live_gateway.py
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
runs in a child Python process (as in tests/live_gateway.py, the client in a
thread) under `py-spy record --native` (the venv's py-spy), three runs after a
warm-up; the samples of server work (threads waiting on locks, the GIL or epoll
left out) are summed by area and by function into bench/results/imap-profile.txt.
Without py-spy, one run is profiled with cProfile (the event-loop thread only).

Run from the repository root (as root, or as a user who can run Dovecot and,
for `postgres`, PostgreSQL's initdb):

    .venv/bin/python bench/bench_imap.py [--rounds 5] [--messages 1000]
        [--big-mb 5] [--copies 500] [--document-kb 100]
        [--targets sqlite,postgres,dovecot] [--profile]

A JSON summary is written to bench/results/imap.json (git-ignored). Everything
started (servers, gpg agent, temporary directories) is stopped and removed at
the end, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import cProfile
import email.utils
import imaplib
import io
import json
import os
import platform
import pstats
import pwd
import random
import re
import shlex
import shutil
import signal
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import aiosmtplib
import bench_import
import bench_submission as sub

if TYPE_CHECKING:
    from gateway.serve import Gateway

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


# ---------------------------------------------------------------- messages

_PEOPLE = (
    ("Layla Hassan", "director@cab.gov.example"), ("Omar Saleh", "registrar@cab.gov.example"),
    ("Huda Karim", "clerk@cab.gov.example"), ("Karim Abbas", "minister@moh.gov.example"),
    ("Maryam Taha", "registrar@moh.gov.example"),
    ("Sara Jamil", "planning.director@moh.gov.example"),
    ("Hadi Nouri", "minister@mof.gov.example"), ("Noor Kadhim", "budget.director@mof.gov.example"),
    ("Ali Jaber", "governor@gov-bsr.gov.example"), ("Zahra Amin", "registrar@gov-bsr.gov.example"),
)  # fmt: skip
_TOPICS = (
    "Quarterly budget review", "Procurement of medical supplies", "Staff training schedule",
    "Draft regulation on records retention", "Meeting of the planning committee",
    "Audit findings for the northern directorate", "Annual statistics report",
    "Maintenance of the data centre", "Request for personnel files", "Travel authorisation",
)  # fmt: skip
_ARABIC_SUBJECTS = (
    "مراجعة الميزانية الفصلية", "جدول التدريب", "محضر اجتماع لجنة التخطيط",
    "طلب معلومات إضافية", "تقرير الإحصاء السنوي",
)  # fmt: skip
_ARABIC = (
    "نود إعلامكم بأن اللجنة ستعقد اجتماعها القادم في مقر الوزارة",
    "يرجى التفضل بالاطلاع واتخاذ ما يلزم بشأن الموضوع المذكور أعلاه",
    "وذلك استنادًا إلى التعليمات النافذة والكتاب المرسل إليكم سابقًا",
    "مع التقدير والاحترام، ونأمل تزويدنا بالمعلومات المطلوبة في أقرب وقت",
    "تم تدقيق البيانات المرفقة ولم تُسجّل أي ملاحظات جوهرية عليها",
)  # fmt: skip
_ENGLISH = (
    "Please find below the points agreed at the last meeting of the committee.",
    "The directorate is asked to send the updated figures before the end of the month.",
    "We would be grateful for your comments on the attached draft at your earliest convenience.",
    "The figures for the third quarter have been reconciled with the ledger.",
    "The training sessions will take place in the main hall from 9:00 to 13:00.",
    "Any questions about the procedure may be addressed to the registry.",
)  # fmt: skip


def _wrap(text: str, width: int = 72) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def _subject(rng: random.Random, n: int) -> str:
    if rng.random() < 0.3:
        text = f"{rng.choice(_ARABIC_SUBJECTS)} ({n})"
        return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="
    return f"{rng.choice(('', 'Re: ', 'Fwd: '))}{rng.choice(_TOPICS)} ({n})"


def header_messages(count: int, seed: int) -> list[bytes]:
    """`count` distinct messages of about 4 KB with 16 header fields, like a ministry's INBOX."""
    rng = random.Random(seed)
    start = time.time() - count * 600
    out = []
    for n in range(count):
        (from_name, frm), (to_name, to), (cc_name, cc) = rng.sample(_PEOPLE, 3)
        domain = frm.split("@")[1]
        date = email.utils.formatdate(start + n * 600, localtime=False)
        parent = f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@{domain}>"
        ip = ".".join(str(rng.randrange(1, 255)) for _ in range(3))
        headers = [
            ("Return-Path", f"<{frm}>"),
            ("Received", f"from mail.{domain} (mail.{domain} [10.{ip}])\r\n\tby mx1.cab.gov.example"
                         f" with ESMTPS id {rng.getrandbits(64):016x}\r\n\tfor <{to}>; {date}"),
            ("Received", f"from [10.{ip}] (helo=ws-{n:04d}.{domain})\r\n\tby mail.{domain} with"
                         f" ESMTPSA id {rng.getrandbits(48):012x}; {date}"),
            ("Message-ID", f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@{domain}>"),
            ("Date", date),
            ("From", f'"{from_name}" <{frm}>'),
            ("To", f'"{to_name}" <{to}>'),
            ("Cc", f'"{cc_name}" <{cc}>'),
            ("Subject", _subject(rng, n)),
            ("In-Reply-To", parent),
            ("References", f"<{uuid.UUID(int=rng.getrandbits(128)).hex}@{domain}> {parent}"),
            ("MIME-Version", "1.0"),
            ("Content-Type", "text/plain; charset=UTF-8; format=flowed"),
            ("Content-Transfer-Encoding", "8bit"),
            ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:115.0) Gecko/20100101"
                           " Thunderbird/115.12.2"),
            ("Content-Language", "ar"),
        ]  # fmt: skip
        head = "".join(f"{k}: {v}\r\n" for k, v in headers).encode()
        want = 4096 + rng.randrange(-400, 400) - len(head) - 2
        body = bytearray()
        while len(body) < want:
            paragraph = " ".join(rng.choice(_ARABIC if rng.random() < 0.5 else _ENGLISH)
                                 for _ in range(rng.randrange(2, 5)))  # fmt: skip
            body += ("\r\n".join(_wrap(paragraph)) + "\r\n\r\n").encode()
        out.append(head + b"\r\n" + bytes(body).rstrip(b"\r\n") + b"\r\n")
    return out


def _header_block(raw: bytes) -> bytes:
    return raw[: raw.index(b"\r\n\r\n") + 4]


def big_message(mib: int) -> bytes:
    """One message of `mib` MiB: a short text and a base64 attachment of random bytes."""
    target = mib * 1024 * 1024
    payload = os.urandom(target * 3 // 4 - 2048)
    encoded = base64.b64encode(payload)
    lines = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
    head = (
        f"From: {SENDER}\r\nTo: {IMAP_USER}\r\nSubject: Scanned archive\r\n"
        f"Date: {email.utils.formatdate()}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@bench.example>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="big"\r\n\r\n'
        "--big\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nThe archive is attached.\r\n"
        '--big\r\nContent-Type: application/pdf; name="archive.pdf"\r\n'
        'Content-Disposition: attachment; filename="archive.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n"
    )
    return head.encode() + lines + b"\r\n--big--\r\n"


# ---------------------------------------------------------------- servers


@dataclass
class Target:
    name: str
    port: int  # IMAP with STARTTLS
    user: str
    password: str
    tls: ssl.SSLContext
    server: sub.Server | None = None  # Barid's process, for its CPU time


@contextmanager
def barid_serve(name: str, data: Path, work: Path, database_url: str | None) -> Iterator[Target]:
    """`barid serve` in its own process; the Target's port is its STARTTLS IMAP port."""
    imap, http = sub.free_port(), sub.free_port()
    env = clean_env(database_url)
    env.update({
        "BARID_SMTP__SUBMISSION_PORT": str(sub.free_port()),
        "BARID_SMTP__SMTPS_PORT": str(sub.free_port()),
        "BARID_SMTP__TRANSFER_PORT": str(sub.free_port()),
        "BARID_HTTP__PORT": str(http),
        "BARID_IMAP__PORT": str(imap),
        "BARID_IMAP__IMAPS_PORT": str(sub.free_port()),
        "BARID_SERVER__LOG_LEVEL": "warning",
        "BARID_ALLOW_ROOT": "1",  # benchmark machines run as root
    })  # fmt: skip
    log = work / f"barid-{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(BARID), "serve", "--config", str(data / "barid.toml")],
                                stdout=out, stderr=subprocess.STDOUT, env=env,
                                stdin=subprocess.DEVNULL)  # fmt: skip
    try:
        sub.wait_for_health(proc, http, log)
        sub.wait_for_port(proc, imap, log, f"barid serve ({name})")
        creds = json.loads((data / "demo" / "credentials.json").read_text())
        password = next(row["password"] for row in creds if row["address"] == IMAP_USER)
        yield Target(name, imap, IMAP_USER, password, sub.client_tls(data / "tls" / "cert.pem"),
                     sub.Server(name, proc, imap, log))  # fmt: skip
    finally:
        sub.stop_process(proc)


@dataclass
class Dovecot:
    target: Target
    lmtp_port: int
    version: str
    log: Path


def _dovecot_account() -> tuple[int, int, str]:
    """(uid, gid, name) to run Dovecot as: never root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name
    try:
        account = pwd.getpwnam("dovecot")
    except KeyError:
        raise BenchError("running as root and no 'dovecot' account to run Dovecot as") from None
    return account.pw_uid, account.pw_gid, account.pw_name


def _dovecot_config(base: Path, name: str, uid: int, gid: int, imap: int, lmtp: int) -> str:
    return f"""# Generated by bench/bench_imap.py: a minimal, unprivileged Dovecot on loopback.
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
instance_name = barid-bench-{base.name}
log_path = {base}/dovecot.log
info_log_path = {base}/dovecot.log
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
default_login_user = {name}
default_internal_user = {name}
default_internal_group = {name}
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:~/Maildir
postmaster_address = postmaster@bench.example
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
service anvil {{
  chroot =
}}
"""


@contextmanager
def dovecot_server(user: str, password: str, others: Sequence[str]) -> Iterator[Dovecot]:
    """Dovecot with `user` (Barid's Argon2id cost) and `others` (LMTP recipients)."""
    from cryptography.hazmat.primitives import serialization

    from keys.passwords import hash_password
    from keys.tls import make_dev_certificate

    if not Path(DOVECOT).exists():
        raise BenchError(f"{DOVECOT} not found: apt-get install -y dovecot-imapd dovecot-lmtpd")
    uid, gid, name = _dovecot_account()
    base = Path(tempfile.mkdtemp(prefix="bdovecot", dir="/tmp"))  # short: unix socket paths
    proc: subprocess.Popen[bytes] | None = None
    try:
        for sub_dir in ("run", "state", "home"):
            (base / sub_dir).mkdir()
        key, cert = make_dev_certificate("localhost")
        (base / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (base / "key.pem").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))  # fmt: skip
        hashed = "{ARGON2ID}" + hash_password(password)
        lines = [f"{a}:{hashed}:{uid}:{gid}::{base}/home/{a}::" for a in (user, *others)]
        (base / "passwd").write_text("\n".join(lines) + "\n")
        imap, lmtp = sub.free_port(), sub.free_port()
        conf = base / "dovecot.conf"
        conf.write_text(_dovecot_config(base, name, uid, gid, imap, lmtp))
        for path in (base, *base.rglob("*")):
            os.chown(path, uid, gid)
        version = subprocess.run([DOVECOT, "--version"], capture_output=True, text=True,
                                 timeout=30).stdout.strip()  # fmt: skip
        stderr = base / "stderr.log"
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            as_user = {"user": uid, "group": gid, "extra_groups": []}
        with stderr.open("wb") as out:
            proc = subprocess.Popen([DOVECOT, "-F", "-c", str(conf)], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                         "HOME": str(base)},
                                    **as_user)  # fmt: skip
        sub.wait_for_port(proc, imap, stderr, "dovecot")
        sub.wait_for_port(proc, lmtp, stderr, "dovecot lmtp")
        tls = ssl.create_default_context(cafile=str(base / "cert.pem"))
        tls.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
        yield Dovecot(Target("dovecot", imap, user, password, tls), lmtp, version,
                      base / "dovecot.log")  # fmt: skip
    finally:
        if proc is not None:
            sub.stop_process(proc)
        shutil.rmtree(base, ignore_errors=True)


# ---------------------------------------------------------------- the IMAP client


def _ok(what: str, typ: str, data: Any) -> Any:
    if typ != "OK":
        raise BenchError(f"{what}: {typ} {str(data)[:300]}")
    return data


def imap_connect(t: Target, *, nodelay: bool = True) -> imaplib.IMAP4:
    """A connection to `t`; TCP_NODELAY unless `nodelay` is False (see fill())."""
    conn = imaplib.IMAP4("127.0.0.1", t.port, timeout=IMAP_TIMEOUT)
    if nodelay:
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def imap_login(t: Target, *, nodelay: bool = True) -> imaplib.IMAP4:
    conn = imap_connect(t, nodelay=nodelay)
    try:
        _ok(f"{t.name} STARTTLS", *conn.starttls(t.tls))
        _ok(f"{t.name} LOGIN", *conn.login(t.user, t.password))
    except BaseException:
        conn.shutdown()
        raise
    return conn


def _close(conn: imaplib.IMAP4) -> None:
    try:
        conn.logout()
    except (imaplib.IMAP4.error, OSError):
        conn.shutdown()


@dataclass
class FillResult:
    target: str
    seconds: float  # the APPENDs of every message into INBOX, TCP_NODELAY
    append_ms_median: float  # per APPEND, TCP_NODELAY
    append_ms_median_nagle: float  # per APPEND, stock imaplib socket (Nagle on)


def fill(t: Target, messages: Sequence[bytes]) -> FillResult:
    """APPEND every message to INBOX over one connection.

    Before that, NAGLE_PROBE APPENDs (into BIG_FOLDER, expunged after) on a stock
    imaplib socket: imaplib sends a literal and its closing CRLF in two writes, so
    with Nagle's algorithm on the CRLF waits for the server to acknowledge the
    literal, which a server that delays its ACK makes a 40 ms stall.
    """
    conn = imap_login(t)
    try:
        status = _ok(f"{t.name} STATUS", *conn.status("INBOX", "(MESSAGES)"))
        if b"MESSAGES 0)" not in status[0]:
            raise BenchError(f"{t.name}: INBOX is not empty before the fill: {status}")
        _ok(f"{t.name} CREATE", *conn.create(BIG_FOLDER))
        nagle = imap_login(t, nodelay=False)
        try:
            probe = []
            for raw in messages[:NAGLE_PROBE]:
                start = time.perf_counter()
                _ok(f"{t.name} APPEND", *nagle.append(BIG_FOLDER, None, None, raw))
                probe.append(time.perf_counter() - start)
            _ok(f"{t.name} SELECT", *nagle.select(BIG_FOLDER))
            _ok(f"{t.name} STORE", *nagle.store("1:*", "+FLAGS", "(\\Deleted)"))
            _ok(f"{t.name} EXPUNGE", *nagle.expunge())
        finally:
            _close(nagle)
        each = []
        for raw in messages:
            start = time.perf_counter()
            _ok(f"{t.name} APPEND", *conn.append("INBOX", None, None, raw))
            each.append(time.perf_counter() - start)
    finally:
        _close(conn)
    return FillResult(t.name, sum(each), statistics.median(each) * 1000,
                      statistics.median(probe) * 1000)  # fmt: skip


@dataclass
class HeadersSample:
    target: str
    round: int
    total_s: float  # connect + STARTTLS + LOGIN + SELECT + FETCH
    connect_tls_s: float
    login_s: float
    select_s: float
    fetch_s: float
    header_bytes: int
    client_cpu_s: float
    server_cpu_s: float | None  # Barid's process only


def headers_once(t: Target, count: int, rnd: int) -> HeadersSample:
    cpu0 = t.server.cpu_seconds() if t.server else None
    client0 = time.process_time()
    start = time.perf_counter()
    conn = imap_connect(t)
    try:
        _ok(f"{t.name} STARTTLS", *conn.starttls(t.tls))
        tls_done = time.perf_counter()
        _ok(f"{t.name} LOGIN", *conn.login(t.user, t.password))
        login_done = time.perf_counter()
        exists = int(_ok(f"{t.name} SELECT", *conn.select("INBOX"))[0])
        select_done = time.perf_counter()
        if exists < count:
            raise BenchError(f"{t.name}: INBOX holds {exists} messages, fewer than {count}")
        data = _ok(f"{t.name} FETCH", *conn.fetch(f"1:{count}", "(UID FLAGS BODY.PEEK[HEADER])"))
        done = time.perf_counter()
        client_cpu = time.process_time() - client0
        server_cpu = t.server.cpu_seconds() - cpu0 if t.server and cpu0 is not None else None
    finally:
        _close(conn)
    literals = [item[1] for item in data if isinstance(item, tuple)]
    if len(literals) != count:
        raise BenchError(f"{t.name}: FETCH returned {len(literals)} headers, expected {count}")
    return HeadersSample(t.name, rnd, done - start, tls_done - start, login_done - tls_done,
                         select_done - login_done, done - select_done,
                         sum(len(x) for x in literals), client_cpu, server_cpu)  # fmt: skip


@dataclass
class BigSample:
    target: str
    round: int
    append_s: float
    fetch_s: float
    bytes: int


def big_once(t: Target, raw: bytes, rnd: int) -> BigSample:
    conn = imap_login(t)
    try:
        start = time.perf_counter()
        _ok(f"{t.name} APPEND big", *conn.append(BIG_FOLDER, None, None, raw))
        appended = time.perf_counter() - start
        n = int(_ok(f"{t.name} SELECT {BIG_FOLDER}", *conn.select(BIG_FOLDER))[0])
        start = time.perf_counter()
        data = _ok(f"{t.name} FETCH big", *conn.fetch(str(n), "(BODY[])"))
        fetched = time.perf_counter() - start
        body = next((item[1] for item in data if isinstance(item, tuple)), b"")
        if len(body) != len(raw):
            raise BenchError(f"{t.name}: FETCH BODY[] gave {len(body)} bytes, sent {len(raw)}")
        _ok(f"{t.name} STORE", *conn.store(str(n), "+FLAGS", "(\\Deleted)"))
        _ok(f"{t.name} EXPUNGE", *conn.expunge())
    finally:
        _close(conn)
    return BigSample(t.name, rnd, appended, fetched, len(raw))


# ---------------------------------------------------------------- deliveries


@dataclass
class DeliverySample:
    target: str
    round: int
    copies: int
    total_s: float  # Barid: the whole drain; Dovecot: the LMTP session
    deliver_s: float  # Barid: time in deliver_local(); Dovecot: = total_s
    receipts: int = 0
    receipts_s: float = 0.0
    cpu_s: float = 0.0  # this process (Barid in-process; for Dovecot: the LMTP client)
    submit_s: float = 0.0  # Barid: SMTP submission before the drain (not timed as such)


def gateway_env(database_url: str | None) -> dict[str, str]:
    env = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0",
           "BARID_SMTP__TRANSFER_PORT": "0",
           "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0",
           "BARID_HTTP__PORT": "0", "BARID_SMTP__MIN_FREE_DISK_MB": "0"}  # fmt: skip
    if database_url:
        env["BARID_DATABASE__URL"] = database_url
        env["BARID_DATABASE__ALLOW_UNSAFE_DURABILITY"] = "1"  # its PostgreSQL: fsync off
    return env


@contextlib.asynccontextmanager
async def in_process_gateway(data: Path, database_url: str | None) -> AsyncIterator[Gateway]:
    from gateway.config import load_settings
    from gateway.serve import Gateway

    settings = load_settings(data / "barid.toml", environ=gateway_env(database_url))
    gateway = Gateway(settings)
    try:
        await gateway.start()
        yield gateway
    finally:
        await gateway.stop()


async def _queue_counts(gateway: Gateway) -> dict[str, int]:
    from sqlalchemy import func, select

    from gateway.store.models import DeliveryQueueEntry, ReceiptJob

    out: dict[str, int] = {}
    async with gateway.sessions() as s:
        for state in ("queued", "delivered", "failed"):
            out[state] = int(await s.scalar(
                select(func.count()).select_from(DeliveryQueueEntry)
                .where(DeliveryQueueEntry.state == state, DeliveryQueueEntry.target == "local")
            ) or 0)  # fmt: skip
        for state in ("pending", "done"):
            out[f"receipts_{state}"] = int(await s.scalar(
                select(func.count()).select_from(ReceiptJob).where(ReceiptJob.state == state)
            ) or 0)  # fmt: skip
        out["max_entry"] = int(await s.scalar(select(func.max(DeliveryQueueEntry.id))) or 0)
    return out


async def _submit(port: int, tls: ssl.SSLContext, password: str, messages: Sequence[bytes]) -> None:
    """Every message to RECIPIENTS over SUBMIT_SESSIONS STARTTLS + AUTH sessions."""
    pending = list(messages)

    async def session() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=True,
                                 tls_context=tls, timeout=SMTP_TIMEOUT)  # fmt: skip
        await client.connect()
        try:
            await client.login(SENDER, password)
            while pending:
                raw = pending.pop()
                mid = f"Message-ID: <{uuid.uuid4().hex}@bench.example>\r\n".encode()
                refused, reply = await client.sendmail(SENDER, list(RECIPIENTS), mid + raw)
                if refused:
                    raise BenchError(f"submission refused recipients: {refused}")
                if not reply.startswith("2"):
                    raise BenchError(f"submission not accepted: {reply[:200]}")
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()

    await asyncio.gather(*(session() for _ in range(SUBMIT_SESSIONS)))


Copies = list[tuple[str, bytes]]  # (recipient, the stamped copy's bytes)


async def barid_deliveries(name: str, data: Path, database_url: str | None, rnd: int,
                           messages: Sequence[bytes], password: str,
                           want_copies: bool) -> tuple[DeliverySample, Copies]:  # fmt: skip
    """Submit with the worker stopped, then time the drain; (sample, copies if wanted)."""
    from sqlalchemy import select

    from gateway.store.models import DeliveryQueueEntry, MessageCopy

    async with in_process_gateway(data, database_url) as gateway:
        worker = gateway.worker
        assert worker is not None and gateway.store is not None
        await worker.stop()
        before = await _queue_counts(gateway)
        if before["queued"] or before["receipts_pending"]:
            raise BenchError(f"{name}: work left over before round {rnd}: {before}")
        tls = sub.client_tls(gateway.settings.tls_cert)
        start = time.perf_counter()
        await asyncio.wait_for(_submit(gateway.smtp_ports["submission"], tls, password, messages),
                               DRAIN_TIMEOUT)  # fmt: skip
        submit_s = time.perf_counter() - start
        queued = await _queue_counts(gateway)
        want = len(messages) * len(RECIPIENTS)
        if queued["queued"] != want:
            raise BenchError(f"{name}: {queued['queued']} copies queued, expected {want}")
        copies: Copies = []
        if want_copies:
            async with gateway.sessions() as s:
                rows = (await s.execute(
                    select(MessageCopy.id, MessageCopy.recipient)
                    .join(DeliveryQueueEntry, DeliveryQueueEntry.copy_id == MessageCopy.id)
                    .where(DeliveryQueueEntry.id > before["max_entry"],
                           DeliveryQueueEntry.target == "local")
                    .order_by(DeliveryQueueEntry.id)
                )).all()  # fmt: skip
            copies = [(rcpt, await gateway.store.load_copy(cid)) for cid, rcpt in rows]

        spent = {"deliver": 0.0, "receipts": 0.0}
        units = {"deliver": 0, "receipts": 0}

        def timed(
            key: str, step: Callable[[], Coroutine[Any, Any, int]]
        ) -> Callable[[], Coroutine[Any, Any, int]]:
            async def wrapper() -> int:
                t0 = time.perf_counter()
                try:
                    n = await step()
                finally:
                    spent[key] += time.perf_counter() - t0
                units[key] += n
                return n

            return wrapper

        worker.deliver_local = timed("deliver", worker.deliver_local)  # type: ignore[method-assign]
        worker.write_receipts = timed("receipts", worker.write_receipts)  # type: ignore[method-assign]

        async def drain() -> None:
            while await worker.run_once():
                pass

        cpu0 = time.process_time()
        start = time.perf_counter()
        await asyncio.wait_for(drain(), DRAIN_TIMEOUT)
        total = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        after = await _queue_counts(gateway)
    delivered = after["delivered"] - queued["delivered"]
    receipts = after["receipts_done"] - queued["receipts_done"]
    if delivered != want or after["queued"] or after["receipts_pending"]:
        raise BenchError(f"{name}: after the drain {delivered} delivered of {want}; {after}")
    if delivered != units["deliver"] or receipts != units["receipts"]:
        raise BenchError(f"{name}: worker reported {units}, rows say {delivered}/{receipts}")
    sample = DeliverySample(name, rnd, delivered, total, spent["deliver"], receipts,
                            spent["receipts"], cpu, submit_s)  # fmt: skip
    return sample, copies


def lmtp_deliveries(port: int, copies: Sequence[tuple[str, bytes]], rnd: int) -> DeliverySample:
    """Every copy over one LMTP session, one transaction and one recipient each."""
    cpu0 = time.process_time()
    start = time.perf_counter()
    with smtplib.LMTP("127.0.0.1", port, timeout=LMTP_TIMEOUT) as client:
        code, _ = client.ehlo("bench.example")  # LHLO
        if code != 250:
            raise BenchError(f"dovecot LHLO answered {code}")
        for rcpt, raw in copies:
            refused = client.sendmail(SENDER, [rcpt], raw)
            if refused:
                raise BenchError(f"dovecot refused {refused}")
    elapsed = time.perf_counter() - start
    return DeliverySample("dovecot", rnd, len(copies), elapsed, elapsed,
                          cpu_s=time.process_time() - cpu0)  # fmt: skip


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


def _py_spy() -> str | None:
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
    code = f"import bench_imap; bench_imap.profile_driver({str(data)!r}, {count}, {PROFILE_RUNS})"
    env = clean_env() | {"PYTHONPATH": str(ROOT / "bench")}
    done = subprocess.run([py_spy, "record", "--native", "--rate", str(PY_SPY_RATE),
                           "--format", "raw", "--output", str(raw), "--", sys.executable, "-c",
                           code],
                          capture_output=True, text=True, timeout=STEP_TIMEOUT, env=env,
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


# ---------------------------------------------------------------- report


def _median_of(samples: Sequence[Any], key: str) -> dict[str, float]:
    return spread([getattr(s, key) for s in samples])


def _ratios(samples: Sequence[Any], target: str, key: str) -> dict[str, Any] | None:
    per_round = []
    for rnd in sorted({s.round for s in samples}):
        mine = [s for s in samples if s.round == rnd and s.target == target]
        ref = [s for s in samples if s.round == rnd and s.target == "dovecot"]
        if mine and ref and getattr(ref[0], key) > 0:
            per_round.append(getattr(mine[0], key) / getattr(ref[0], key))
    if not per_round:
        return None
    return {**spread(per_round), "per_round": per_round}


def summarise(targets: Sequence[str], fills: dict[str, FillResult], messages: int,
              headers: list[HeadersSample], big: list[BigSample],
              deliveries: list[DeliverySample]) -> dict[str, Any]:  # fmt: skip
    summary: dict[str, Any] = {"fill": {t: {"msgs_per_s": messages / f.seconds,
                                            "append_ms_median": f.append_ms_median,
                                            "append_ms_median_nagle": f.append_ms_median_nagle}
                                        for t, f in fills.items()}}  # fmt: skip
    for t in targets:
        entry: dict[str, Any] = {}
        mine_h = [s for s in headers if s.target == t]
        if mine_h:
            keys = ("total_s", "connect_tls_s", "login_s", "select_s", "fetch_s", "client_cpu_s")
            entry["headers"] = {k: _median_of(mine_h, k) for k in keys}
            cpus = [s.server_cpu_s for s in mine_h if s.server_cpu_s is not None]
            if cpus:
                entry["headers"]["server_cpu_s"] = spread(cpus)
        mine_b = [s for s in big if s.target == t]
        if mine_b:
            entry["big"] = {k: _median_of(mine_b, k) for k in ("append_s", "fetch_s")}
        mine_d = [s for s in deliveries if s.target == t]
        if mine_d:
            entry["deliveries"] = {
                "copies_per_s": spread([s.copies / s.deliver_s for s in mine_d]),
                "deliver_s": _median_of(mine_d, "deliver_s"),
                "total_s": _median_of(mine_d, "total_s"),
                "cpu_ms_per_copy": spread([s.cpu_s * 1000 / s.copies for s in mine_d]),
            }
            if t != "dovecot":
                entry["deliveries"]["receipts_per_s"] = spread(
                    [s.receipts / s.receipts_s for s in mine_d if s.receipts_s > 0]
                )
                entry["deliveries"]["receipts_s"] = _median_of(mine_d, "receipts_s")
                entry["deliveries"]["units_per_s"] = spread(
                    [(s.copies + s.receipts) / s.total_s for s in mine_d])  # fmt: skip
        if t != "dovecot" and "dovecot" in targets:
            entry["ratio_to_dovecot"] = {
                "headers": _ratios(headers, t, "total_s"),
                "headers_fetch_only": _ratios(headers, t, "fetch_s"),
                "big_append": _ratios(big, t, "append_s"),
                "big_fetch": _ratios(big, t, "fetch_s"),
                "deliveries": _ratios(deliveries, t, "deliver_s"),
                "deliveries_with_receipts": _ratios(deliveries, t, "total_s"),
            }
        summary[t] = entry
    return summary


def print_summary(summary: dict[str, Any], targets: Sequence[str], command: str) -> None:
    print(f"\ncommand: {command}")
    print("medians (min-max) over the rounds; ratios are Barid time / Dovecot time")
    for t, f in summary["fill"].items():
        print(f"  fill     {t:8} {f['msgs_per_s']:7.1f} msg/s (APPEND, one connection), median"
              f" {f['append_ms_median']:.1f} ms; stock imaplib socket (Nagle on):"
              f" {f['append_ms_median_nagle']:.1f} ms")  # fmt: skip
    for t in targets:
        e = summary[t]
        if "headers" in e:
            h = e["headers"]
            cpu = ""
            if "server_cpu_s" in h:
                cpu = f", server CPU {fmt(h['server_cpu_s'], 1000, 0)} ms"
            print(f"  headers  {t:8} {fmt(h['total_s'], 1000, 0)} ms  [TLS"
                  f" {fmt(h['connect_tls_s'], 1000, 0)}, LOGIN {fmt(h['login_s'], 1000, 0)},"
                  f" SELECT {fmt(h['select_s'], 1000, 0)}, FETCH {fmt(h['fetch_s'], 1000, 0)};"
                  f" client CPU {fmt(h['client_cpu_s'], 1000, 0)} ms{cpu}]")  # fmt: skip
    for t in targets:
        if "big" in summary[t]:
            b = summary[t]["big"]
            print(f"  big      {t:8} APPEND {fmt(b['append_s'], 1000, 0)} ms,"
                  f" FETCH BODY[] {fmt(b['fetch_s'], 1000, 0)} ms")  # fmt: skip
    for t in targets:
        if "deliveries" in summary[t]:
            d = summary[t]["deliveries"]
            line = (f"  delivery {t:8} {fmt(d['copies_per_s'])} copies/s"
                    f" (in {fmt(d['deliver_s'], 1, 2)} s, CPU {fmt(d['cpu_ms_per_copy'])}"
                    " ms/copy)")  # fmt: skip
            if "receipts_per_s" in d:
                line += (f"; receipts {fmt(d['receipts_per_s'])}/s; whole drain"
                         f" {fmt(d['total_s'], 1, 2)} s")  # fmt: skip
            else:
                line += " over LMTP, one session"
            print(line)
    for t in targets:
        ratios = summary[t].get("ratio_to_dovecot")
        if not ratios:
            continue
        parts = [f"{k} {fmt(v, 1, 2)}" for k, v in ratios.items() if v]
        print(f"  ratio {t}/dovecot: " + "; ".join(parts))
        head = ratios.get("headers")
        if head:
            verdict = "meets" if head["median"] <= HEADERS_AIM else "MISSES"
            print(f"    headers: {head['median']:.2f}x -> {verdict} the aim"
                  f" (within {HEADERS_AIM:.0f}x of Dovecot)")  # fmt: skip


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 1024 / 1024:.0f} GiB"
    import sqlite3

    return {"python": platform.python_version(), "platform": platform.platform(),
            "cpus": os.cpu_count(), "cpu_model": model, "memory": memory,
            "openssl": ssl.OPENSSL_VERSION, "sqlite": sqlite3.sqlite_version}  # fmt: skip


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
    expect = sum(len(_header_block(m)) for m in messages)
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


def signed_messages(secret_key: str, count: int, document_bytes: int) -> list[bytes]:
    """bench_submission's PGP/MIME messages, the first one signed alone: concurrent first
    uses of a freshly imported key by one gpg-agent can fail ("Unmatched parentheses in
    S-expression"); a message whose signing fails is signed once more."""
    home = Path(tempfile.mkdtemp(prefix="g", dir="/tmp"))  # short: gpg-agent socket path
    try:
        imported = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--import",
                                   secret_key], capture_output=True, timeout=60)  # fmt: skip
        if imported.returncode != 0:
            raise BenchError(f"gpg --import failed: {imported.stderr.decode(errors='replace')}")

        def build(n: int) -> bytes:
            try:
                return sub.build_message(home, n, document_bytes)
            except sub.BenchError:
                return sub.build_message(home, n, document_bytes)

        first = build(0)
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            return [first, *pool.map(build, range(1, count))]
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                       capture_output=True, timeout=60, check=False)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


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
            pg = stack.enter_context(bench_import.postgres_server())
            run.versions["postgres"] = pg.version
            pg_url = pg.url(bench_import.create_database(pg, "baridimap"))
            say(f"barid demo (PostgreSQL, {pg.version}) ...")
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
            py_spy = _py_spy()
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
    except (BenchError, sub.BenchError, bench_import.BenchError) as exc:
        print(f"bench_imap: {exc}", file=sys.stderr)
        sys.exit(1)
