"""PROXY protocol on a listening socket: the real client address behind a load balancer.

Owns: `accept_through(sock, rules, name)`: with trusted proxies configured
(`[server] trusted_proxies`), the listener's own server no longer accepts on the
bound socket; an accept loop here does, and:

* a connection from a trusted proxy must start with a PROXY header (v1 or v2,
  gateway.serve.proxy_header): it is read (peeked, then exactly the header
  consumed: not one byte of the client's data), within
  `proxy_header_timeout_seconds`; the connection then reaches the server as if
  accepted from the header's client address (its socket's `getpeername` and the
  asyncio `peername` say so: SMTP, IMAP, uvicorn, the throttles, the access
  trail and the radar all see it). A v2 LOCAL header or an UNKNOWN address keeps
  the proxy's own address. A missing, malformed or late header: the connection
  is closed and "PROXY header refused" logged (listener, proxy address, reason;
  never the data).
* a connection from anywhere else is handed over untouched: a PROXY header it
  sends is never parsed and reaches the protocol as data (SMTP answers it as an
  unknown command, IMAP as a bad command, HTTP as a bad request), so no client
  can claim another's address.

The hand-over: the server listens on one end of a socket pair whose `accept`
returns the connections this loop has prepared (one byte per connection makes
it readable), so every asyncio server (aiosmtpd, the IMAP listener, uvicorn),
implicit TLS and STARTTLS work unchanged above it. Closing that socket (what a
server does when it stops) stops the accept loop and closes the bound socket.
Without trusted proxies the bound socket is returned as it is.

Must not: parse headers itself, or keep more than `MAX_PENDING` headers being
read at once (further connections from proxies are closed until some finish).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.serve.proxy_header import MAX_V2_BYTES, ProxyHeaderError, parse

log = logging.getLogger("barid.proxy")

MAX_PENDING = 1024  # PROXY headers being read at once, per listener
POLL = 0.01  # seconds between two looks at a header that came in pieces

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProxyRules:
    trusted: tuple[Network, ...]
    timeout: float = 5.0

    @classmethod
    def parse(cls, networks: list[str], timeout: float) -> ProxyRules:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks), timeout)

    def trusts(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.trusted)


class ProxiedSocket(socket.socket):
    """An accepted connection that reports the client address of its PROXY header."""

    peer: tuple[str, int]

    def getpeername(self) -> Any:
        return self.peer


class HandOverSocket(socket.socket):
    """What the server listens on: accepts the connections the loop prepared."""

    front: _Front

    def listen(self, backlog: int = 0, /) -> None:
        pass  # the bound socket listens

    def getsockname(self) -> Any:
        return self.front.bound.getsockname()

    def accept(self) -> tuple[socket.socket, Any]:
        super().recv(1)  # BlockingIOError when nothing is ready: the server waits
        if not self.front.ready:
            raise BlockingIOError
        return self.front.ready.popleft()

    def close(self) -> None:
        front = getattr(self, "front", None)
        if front is not None:
            front.close()
        super().close()


class _Front:
    """The accept loop on the bound socket (see the module docstring)."""

    def __init__(self, bound: socket.socket, rules: ProxyRules, name: str) -> None:
        self.bound, self.rules, self.name = bound, rules, name
        self.ready: deque[tuple[socket.socket, Any]] = deque()
        self.pending: set[asyncio.Task[None]] = set()
        server_end, self._bell = socket.socketpair()
        self._bell.setblocking(False)
        self.hand_over = HandOverSocket(
            server_end.family, server_end.type, server_end.proto, fileno=server_end.detach()
        )
        self.hand_over.front = self
        self.hand_over.setblocking(False)
        self._task = asyncio.get_running_loop().create_task(self._accept_loop())

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, address = await loop.sock_accept(self.bound)
            except asyncio.CancelledError:
                raise
            except OSError as exc:
                log.warning("accept failed", extra={"listener": self.name, "error": exc.strerror})
                await asyncio.sleep(0.1)
                continue
            if not self.rules.trusts(str(address[0])):
                self._hand(conn, address)
            elif len(self.pending) >= MAX_PENDING:
                conn.close()
            else:
                task = loop.create_task(self._read_header(conn, address))
                self.pending.add(task)
                task.add_done_callback(self.pending.discard)

    def _hand(self, conn: socket.socket, address: Any) -> None:
        self.ready.append((conn, address))
        try:
            self._bell.send(b"\0")
        except OSError:
            self.ready.pop()
            conn.close()

    async def _read_header(self, conn: socket.socket, address: Any) -> None:
        try:
            async with asyncio.timeout(self.rules.timeout):
                client = await read_header(conn)
        except (ProxyHeaderError, TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc)
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                reason = "connection lost"
            log.warning(
                "PROXY header refused",
                extra={"listener": self.name, "proxy": str(address[0]), "reason": reason},
            )
            conn.close()
            return
        if client is None:
            self._hand(conn, address)
            return
        proxied = ProxiedSocket(conn.family, conn.type, conn.proto, fileno=conn.detach())
        proxied.peer = client
        self._hand(proxied, client)

    def close(self) -> None:
        self._task.cancel()
        for task in list(self.pending):
            task.cancel()
        while self.ready:
            self.ready.popleft()[0].close()
        with contextlib.suppress(OSError):
            self._bell.close()
        with contextlib.suppress(OSError):
            self.bound.close()


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(sock.fileno())


async def read_header(conn: socket.socket) -> tuple[str, int] | None:
    """Read exactly one PROXY header from `conn` (non-blocking): its client address."""
    conn.setblocking(False)
    await _readable(conn)
    while True:
        try:
            data = conn.recv(MAX_V2_BYTES, socket.MSG_PEEK)
        except BlockingIOError:
            data = None
        if data == b"":
            raise ConnectionResetError("closed before its PROXY header")
        header = parse(data) if data else None
        if header is not None:
            consumed = conn.recv(header.length)
            if len(consumed) != header.length:  # pragma: no cover - peeked bytes are there
                raise ProxyHeaderError("header vanished")
            return header.client
        await asyncio.sleep(POLL)  # a header in pieces: look again shortly


def accept_through(sock: socket.socket, rules: ProxyRules | None, name: str) -> socket.socket:
    """The socket a listener's server should accept on (see the module docstring);
    called on the running loop."""
    if rules is None or not rules.trusted:
        return sock
    return _Front(sock, rules, name).hand_over
