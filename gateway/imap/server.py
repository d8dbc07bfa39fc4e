"""The IMAP listeners: pymap's connection loop, hardened, on the gateway's own loop.

Owns: binding the STARTTLS (1430) and implicit-TLS (9930) listeners, the limits
pymap leaves open, and stopping them (gracefully: BYE to every session). Must
not: touch mailboxes (backend.py). Reading commands is connection.py's.

What we change in pymap's behaviour, and why:
- Login only over TLS from every address. pymap offers LOGIN/AUTHENTICATE to
  loopback clients without TLS; here the greeting advertises LOGINDISABLED and
  no AUTH= mechanism until STARTTLS, loopback included (docs/CONTRACT.md §7, RFC 3501
  §6.2.3, RFC 8314).
- Fair slots: at most `max_connections` at once, at most
  `max_connections_per_address` from one client address, and when fewer than a
  fifth of the slots are free an address already holding `busy_per_address`
  gets no more. The refused connection gets `* BYE [UNAVAILABLE]` at once. The
  implicit-TLS handshake happens inside a slot, within `tls_handshake_seconds`
  (as does STARTTLS's).
- Commands are read whole before pymap parses them, in one pass (scan.py):
  a synchronizing literal gets our "+" and is then handed over as LITERAL+, so
  pymap parses each command once (it re-parsed from the start after every
  literal). Literals are bounded: 4096 octets before login (RFC 7888 §4's
  LITERAL- size), the APPENDLIMIT in APPEND, 64 KiB elsewhere; at most 8 per
  command before login and `max_literals_per_command` after; one command may
  carry at most 68 KiB before login (APPENDLIMIT + 64 KiB after). Over a bound,
  a synchronizing literal is answered `NO [TOOBIG]`/`NO [LIMIT]` before any
  "+" (RFC 7889 §4); a non-synchronizing one ends the connection with
  `BYE [TOOBIG]`/`BYE [LIMIT]`, since it cannot be skipped safely.
- Literal octets after login count against one budget shared by all sessions
  (`append_memory_budget`); over it, the command gets `NO [LIMIT]` (RFC 5530:
  an implementation limit, try again later; a LITERAL+ is read and dropped
  first) and nothing else is affected.
- A command must arrive within `command_timeout_seconds` of its first line (60 s
  before login), and its literals at `min_transfer_rate` octets a second over
  each `transfer_window_seconds`; replies must be read at that rate too.
  Otherwise `BYE [LIMIT]` and the connection closes: a trickle holds no slot.
- A command line is at most `MAX_LINE` octets, and parentheses nest at most
  `MAX_NESTING` deep (`BAD`); the parser recurses on them.
- Bytes pipelined after STARTTLS (before the TLS handshake) end the connection:
  they would otherwise be read as if they had come over TLS (CVE-2011-0411 class).
- Idle connections are closed (RFC 3501 §5.4): `PREAUTH_IDLE_SECONDS` before
  login, `IDLE_SECONDS` (30 minutes) after.
- Five BAD answers in a row end the connection with one `BYE` (pymap would
  close without one); a connection never gets two BYEs.
- Internal exception text never reaches the client (pymap answers `BYE
  [SERVERBUG]`), and a client's misbehaviour is logged without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from contextlib import AsyncExitStack, closing
from dataclasses import dataclass, field

from proxyprotocol.sock import SocketInfoLocal
from pymap.context import connection_exit

from gateway import metrics
from gateway.imap.backend import BaridImapConfig, ImapContext, Login
from gateway.imap.connection import (
    MAX_BAD_COMMANDS,
    MAX_LINE,
    MAX_NESTING,
    MAX_PREAUTH_LITERAL,
    MAX_PREAUTH_LITERALS,
    Connection,
    State,
)
from gateway.imap.limits import ConnectionSlots, LiteralBudget, TransferRules

__all__ = [
    "MAX_BAD_COMMANDS",
    "MAX_LINE",
    "MAX_NESTING",
    "MAX_PREAUTH_LITERAL",
    "MAX_PREAUTH_LITERALS",
    "ImapListener",
    "ImapService",
]

log = logging.getLogger("barid.imap")

GREETING = "Barid IMAP4rev1 ready"
FULL = b"* BYE [UNAVAILABLE] Too many connections, try again later.\r\n"
FULL_FOR_YOU = b"* BYE [UNAVAILABLE] Too many connections from your address, try again later.\r\n"
LAST_WORDS_SECONDS = 2.0  # after the grace period: for the BYE of cancelled sessions


@dataclass
class ImapListener:
    name: str
    port: int
    server: asyncio.Server
    connections: dict[asyncio.Task[None], Connection | None] = field(default_factory=dict)


class ImapService:
    """Both IMAP listeners with their shared slots and literal budget."""

    def __init__(
        self,
        ctx: ImapContext,
        *,
        tls_context: ssl.SSLContext,
        max_append_size: int,
        slots: ConnectionSlots,
        budget: LiteralBudget,
        rules: TransferRules,
    ) -> None:
        self._ctx = ctx
        self._tls = tls_context
        self._max_append = max_append_size
        self.slots = slots
        self.budget = budget
        self.rules = rules
        self.listeners: list[ImapListener] = []
        self._closed = False

    async def start_listener(self, name: str, sock: socket.socket, *, implicit_tls: bool) -> int:
        """Serve IMAP on the bound, listening `sock` (STARTTLS, or TLS from the start);
        the port it listens on."""
        config = BaridImapConfig(
            ssl_context=self._tls,
            starttls=not implicit_tls,
            max_append_size=self._max_append,
            greeting=GREETING,
        )
        login = Login(self._ctx, config, "imaps" if implicit_tls else "imap")
        listener: ImapListener

        async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            listener.connections[task] = None
            try:
                await self._serve(listener, config, login, implicit_tls, reader, writer)
            finally:
                listener.connections.pop(task, None)

        server = await asyncio.start_server(on_connection, sock=sock, limit=MAX_LINE)
        listener = ImapListener(name, sock.getsockname()[1], server)
        self.listeners.append(listener)
        return listener.port

    async def _serve(
        self,
        listener: ImapListener,
        config: BaridImapConfig,
        login: Login,
        implicit_tls: bool,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if self._closed or not self.slots.admit(address):
            full = self.slots.open >= self.slots.limit or self._closed
            bye = FULL if full else FULL_FOR_YOU
            tls = self._tls if implicit_tls else None
            await _refuse(writer, bye, tls, self.rules.tls_handshake_seconds)
            return
        metrics.IMAP_CONNECTIONS.labels(listener.name).inc()
        conn: Connection | None = None
        try:
            if implicit_tls:
                await writer.start_tls(
                    self._tls, ssl_handshake_timeout=self.rules.tls_handshake_seconds
                )
            conn = Connection(
                config.commands, config, reader, writer, SocketInfoLocal(writer),
                max_append=self._max_append, budget=self.budget, rules=self.rules,
            )  # fmt: skip
            task = asyncio.current_task()
            assert task is not None
            listener.connections[task] = conn
            if self._closed:
                conn.closing = True
            state = State(login, config)
            async with AsyncExitStack() as stack:
                connection_exit.set(stack)
                stack.enter_context(closing(conn))
                await conn.run(state)
        except (ConnectionError, EOFError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # pymap has answered BYE [SERVERBUG]; this is our bug, so keep the trace.
            log.error(
                "IMAP connection ended by an error",
                extra={"error": type(exc).__name__},
                exc_info=True,
            )
        finally:
            if conn is not None:
                conn.release()
            else:
                writer.close()
            self.slots.release(address)
            metrics.IMAP_CONNECTIONS.labels(listener.name).dec()

    async def close_gracefully(self, grace: float) -> None:
        """Stop accepting; every session gets `* BYE [UNAVAILABLE] Server shutting
        down.` and is closed: at once when it waits between commands (or in IDLE),
        after its command otherwise, and at the latest after `grace` seconds."""
        self._closed = True
        for listener in self.listeners:
            listener.server.close()
        tasks: list[asyncio.Task[None]] = []
        for listener in self.listeners:
            for task, conn in listener.connections.items():
                tasks.append(task)
                if conn is None:
                    continue
                conn.closing = True
                if conn.waiting:
                    task.cancel()  # pymap answers a cancel with BYE (send_error_disconnect)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                _, stuck = await asyncio.wait(pending, timeout=LAST_WORDS_SECONDS)
                for listener in self.listeners:
                    for task, conn in listener.connections.items():
                        if task in stuck and conn is not None:
                            conn.writer.transport.abort()
                await asyncio.gather(*pending, return_exceptions=True)
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                await listener.server.wait_closed()


async def _refuse(
    writer: asyncio.StreamWriter, bye: bytes, tls: ssl.SSLContext | None, handshake: float
) -> None:
    """Answer a connection that gets no slot, and close it (briefly: no slot is held)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(handshake):
            if tls is not None:
                await writer.start_tls(tls, ssl_handshake_timeout=handshake)
            writer.write(bye)
            await writer.drain()
    writer.close()
