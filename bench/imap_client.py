"""The IMAP benchmark's client operations, one imaplib client for every target:
fill (APPEND), headers (connect + LOGIN + SELECT + FETCH headers) and big
(APPEND and FETCH of one large message), each timed and checked.
"""

from __future__ import annotations

import imaplib
import socket
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.imap_servers import Target
from bench.imap_setup import BIG_FOLDER, IMAP_TIMEOUT, NAGLE_PROBE, BenchError

if TYPE_CHECKING:
    pass

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


