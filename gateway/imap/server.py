"""The IMAP listeners: pymap's connection loop, hardened, on the gateway's own loop.

Owns: binding the STARTTLS (1430) and implicit-TLS (9930) listeners, the limits
pymap leaves open, and stopping them. Must not: touch mailboxes (backend.py).

What we change in pymap's behaviour, and why:
- Login only over TLS from every address. pymap offers LOGIN/AUTHENTICATE to
  loopback clients without TLS; here the greeting advertises LOGINDISABLED and
  no AUTH= mechanism until STARTTLS, loopback included (docs/CONTRACT.md §7, RFC 3501
  §6.2.3, RFC 8314).
- Literals are bounded: 4096 octets before login (RFC 7888 §4's LITERAL- size),
  the APPENDLIMIT in APPEND, 64 KiB elsewhere, and one command may carry at
  most 68 KiB before login (APPENDLIMIT + 64 KiB after). pymap reads any
  announced non-synchronizing literal (LITERAL+, RFC 7888); over the bound the
  client gets `BYE [TOOBIG]` and the connection closes, since its literal
  cannot be skipped safely. A synchronizing literal over the bound is answered
  `NO [TOOBIG]` (RFC 7889 §4) before any `+`.
- A command line is at most `MAX_LINE` octets, and parentheses nest at most
  `MAX_NESTING` deep (`BAD`); the parser recurses on them.
- Bytes pipelined after STARTTLS (before the TLS handshake) end the connection:
  they would otherwise be read as if they had come over TLS (CVE-2011-0411 class).
- Idle connections are closed (RFC 3501 §5.4): `PREAUTH_IDLE_SECONDS` before
  login, `IDLE_SECONDS` (30 minutes) after.
- At most `max_connections` connections at once; the next gets `BYE` at once.
- Five BAD answers in a row end the connection with one `BYE` (pymap would
  close without one); a connection never gets two BYEs.
- Internal exception text never reaches the client (pymap answers `BYE
  [SERVERBUG]`), and a client's misbehaviour is logged without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack, closing
from dataclasses import dataclass, field
from typing import Any

from proxyprotocol.sock import SocketInfoLocal
from pymap.config import IMAPConfig
from pymap.context import connection_exit
from pymap.imap import IMAPConnection
from pymap.imap.state import ConnectionState
from pymap.interfaces.login import LoginInterface
from pymap.parsing import Params
from pymap.parsing.command import Command
from pymap.parsing.commands import InvalidCommand
from pymap.parsing.response import (
    CommandResponse,
    Response,
    ResponseBad,
    ResponseBye,
    ResponseCode,
    ResponseNo,
    ResponseOk,
)

from gateway import metrics
from gateway.imap.backend import BaridImapConfig, ImapContext, Login

log = logging.getLogger("barid.imap")

MAX_LINE = 64 * 1024
MAX_PREAUTH_LITERAL = 4096
MAX_OTHER_LITERAL = 64 * 1024
MAX_NESTING = 20
MAX_BAD_COMMANDS = 5
PREAUTH_IDLE_SECONDS = 60.0
IDLE_SECONDS = 30 * 60.0
GREETING = "Barid IMAP4rev1 ready"

_LITERAL_PLUS = re.compile(rb"\{(\d{1,19})\+\}\r?\n$")
_APPEND = re.compile(rb"^[^ ]+ (UID )?APPEND ", re.IGNORECASE)
_TAG = re.compile(rb"^[\x21-\x7e]{1,64}")


class _Refused(Exception):
    """A command refused before parsing: answer BAD with this text and go on."""

    def __init__(self, tag: bytes, reason: bytes) -> None:
        super().__init__(reason)
        self.tag = tag
        self.reason = reason


def nesting_depth(line: bytes) -> int:
    """Deepest parenthesis nesting outside quoted strings and literals."""
    depth = deepest = 0
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == 0x22:  # quoted string, with backslash escapes
            i += 1
            while i < n and line[i] != 0x22:
                i += 2 if line[i] == 0x5C else 1
        elif ch == 0x7B:  # {N} or {N+} then CRLF then N octets
            match = re.match(rb"\{(\d{1,19})\+?\}\r?\n", line[i:])
            if match:
                i += match.end() + int(match.group(1))
                continue
        elif ch == 0x28:
            depth += 1
            deepest = max(deepest, depth)
        elif ch == 0x29:
            depth = max(0, depth - 1)
        i += 1
    return deepest


class _Coalesced:
    """A write stream that hands the transport large pieces."""

    FLUSH_AT = 64 * 1024

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._parts: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self.FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        if self._parts:
            self._writer.write(b"".join(self._parts))
            self._parts.clear()
            self._size = 0


class _State(ConnectionState):
    """pymap's connection state, without its loopback login exemption."""

    async def do_greeting(self) -> CommandResponse:
        return ResponseOk(b"*", self.config.greeting, self.capability)

    async def do_command(self, cmd: Command) -> CommandResponse:
        if isinstance(cmd, InvalidCommand) and cmd.parse_exc is not None:
            code = cmd.parse_exc.code
            if code is not None and b"TOOBIG" in bytes(code):
                # RFC 7889 §4: a literal over the limit is answered [TOOBIG].
                return ResponseNo(cmd.tag, b"Too big.", ResponseCode.of(b"TOOBIG"))
        return await super().do_command(cmd)

    @property
    def authenticated(self) -> bool:
        return self._session is not None


class _Connection(IMAPConnection):
    __slots__ = ["_bad", "_bye_sent", "_command_bytes", "_max_append", "_state"]

    def __init__(self, *args: Any, max_append: int) -> None:
        super().__init__(*args)
        self._state: _State | None = None
        self._max_append = max_append
        self._bad = 0
        self._bye_sent = False
        self._command_bytes = 0

    async def run(self, state: ConnectionState) -> None:
        assert isinstance(state, _State)
        self._state = state
        await super().run(state)

    def _authenticated(self) -> bool:
        return self._state is not None and self._state.authenticated

    def _command_budget(self) -> int:
        """Octets one command may carry, literals included."""
        if not self._authenticated():
            return MAX_LINE + MAX_PREAUTH_LITERAL
        return self._max_append + MAX_LINE

    async def _bye(self, text: bytes, code: bytes | None = None) -> None:
        if not self._bye_sent:
            self._bye_sent = True
            await self.write_response(ResponseBye(text, ResponseCode.of(code) if code else None))

    async def send_error_disconnect(self) -> None:
        if not self._bye_sent:  # one BYE per connection
            self._bye_sent = True
            await super().send_error_disconnect()

    async def write_response(self, resp: Response) -> None:
        # One TLS record per ~64 KiB instead of one per fragment pymap writes (a FETCH
        # of a thousand headers is some nine fragments per message).
        buffer = _Coalesced(self.writer)
        try:
            await resp.async_write(buffer)
            buffer.flush()
            await self.writer.drain()
        except ConnectionError:
            pass
        if isinstance(resp, CommandResponse):
            if resp.is_bad:  # also "* BAD" for a line with no usable tag
                self._bad += 1
            elif resp.tag != b"*":
                self._bad = 0
            if self._bad >= MAX_BAD_COMMANDS:
                await self._bye(b"Too many errors, disconnecting.")
                raise EOFError()

    async def _read_line(self) -> bytes:
        seconds = IDLE_SECONDS if self._authenticated() else PREAUTH_IDLE_SECONDS
        try:
            line = await asyncio.wait_for(self.reader.readline(), seconds)
        except TimeoutError:
            await self._bye(b"Autologout: idle too long.", b"UNAVAILABLE")
            raise EOFError() from None
        except ValueError:  # longer than the stream limit (MAX_LINE)
            await self._bye(b"Command line too long.", b"TOOBIG")
            raise EOFError() from None
        await self._spend(len(line))
        return line

    async def _spend(self, octets: int) -> None:
        self._command_bytes += octets
        if self._command_bytes > self._command_budget():
            await self._bye(b"Command too large.", b"TOOBIG")
            raise EOFError()

    async def readline(self) -> memoryview:
        buf = bytearray(await self._read_line())
        while True:
            if not buf.endswith(b"\n"):
                raise EOFError()
            match = _LITERAL_PLUS.search(buf)
            if match is None:
                break
            size = int(match.group(1))
            if size > self._literal_limit(buf):
                await self._bye(b"Literal too large.", b"TOOBIG")
                raise EOFError()
            await self._spend(size)
            buf += await self.reader.readexactly(size)
            buf += await self._read_line()
        if nesting_depth(bytes(buf)) > MAX_NESTING:
            tag_match = _TAG.match(buf)
            tag = tag_match.group(0) if tag_match else b"*"
            raise _Refused(tag, b"Too deeply nested.")
        return memoryview(buf)

    def _literal_limit(self, buf: bytearray) -> int:
        if not self._authenticated():
            return MAX_PREAUTH_LITERAL
        if _APPEND.match(buf):
            return self._max_append
        return MAX_OTHER_LITERAL

    async def read_continuation(self, literal_length: int) -> memoryview:
        # The rest of a command after a synchronizing literal, a SASL response or
        # IDLE's DONE: the same budget, and a refusal here ends the connection
        # (there is no command left to answer BAD to).
        await self._spend(literal_length)
        try:
            return await super().read_continuation(literal_length)
        except _Refused as refused:
            await self._bye(refused.reason)
            raise EOFError() from None

    async def read_command(self, state: ConnectionState) -> Command:
        # Before login pymap checks literal sizes against the pre-login bound, so
        # an oversized synchronizing literal is refused before its "+".
        self.params = self._params_for_state()
        while True:
            self._command_bytes = 0
            try:
                return await super().read_command(state)
            except _Refused as refused:
                await self.write_response(ResponseBad(refused.tag, refused.reason))

    def _params_for_state(self) -> Params:
        if self._authenticated():
            return self.config.parsing_params
        return Params(max_append_len=MAX_PREAUTH_LITERAL)

    async def start_tls(self) -> None:
        # Anything the client sent after STARTTLS, before the handshake, was sent in
        # clear text and must not be taken as if it came over TLS.
        pending = getattr(self.reader, "_buffer", b"")
        if pending:
            log.info("bytes pipelined after STARTTLS; connection closed")
            raise ConnectionError("data pipelined after STARTTLS")
        await super().start_tls()


@dataclass
class ImapListener:
    name: str
    port: int
    server: asyncio.Server
    connections: set[asyncio.Task[Any]] = field(default_factory=set)


class ConnectionLimit:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0


async def start_imap_listener(
    name: str,
    sock: socket.socket,
    ctx: ImapContext,
    *,
    tls_context: ssl.SSLContext,
    implicit_tls: bool,
    max_append_size: int,
    limit: ConnectionLimit,
) -> ImapListener:
    """Serve IMAP on the bound, listening `sock` (STARTTLS, or TLS from the start)."""
    config = BaridImapConfig(
        ssl_context=tls_context,
        starttls=not implicit_tls,
        max_append_size=max_append_size,
        greeting=GREETING,
    )
    login = Login(ctx, config, "imaps" if implicit_tls else "imap")
    handler = _handler(name, config, login, max_append_size, limit)
    listener: ImapListener

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        listener.connections.add(task)
        try:
            await handler(reader, writer)
        finally:
            listener.connections.discard(task)

    server = await asyncio.start_server(
        on_connection,
        sock=sock,
        ssl=tls_context if implicit_tls else None,
        limit=MAX_LINE,
        ssl_handshake_timeout=30.0 if implicit_tls else None,
    )
    listener = ImapListener(name, sock.getsockname()[1], server)
    return listener


def _handler(
    listener_name: str,
    config: IMAPConfig,
    login: LoginInterface,
    max_append: int,
    limit: ConnectionLimit,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    commands = config.commands

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if limit.open >= limit.limit:
            with contextlib.suppress(Exception):
                writer.write(b"* BYE [UNAVAILABLE] Too many connections, try again later.\r\n")
                await writer.drain()
                writer.close()
            return
        limit.open += 1
        metrics.IMAP_CONNECTIONS.labels(listener_name).inc()
        try:
            conn = _Connection(
                commands, config, reader, writer, SocketInfoLocal(writer), max_append=max_append
            )
            state = _State(login, config)
            async with AsyncExitStack() as stack:
                connection_exit.set(stack)
                stack.enter_context(closing(conn))
                await conn.run(state)
        except (ConnectionError, EOFError, asyncio.IncompleteReadError, ssl.SSLError):
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
            limit.open -= 1
            metrics.IMAP_CONNECTIONS.labels(listener_name).dec()

    return handle


async def stop_imap_listeners(listeners: list[ImapListener], grace_seconds: float) -> None:
    """Stop accepting; give open connections `grace_seconds`, then cancel them."""
    for listener in listeners:
        listener.server.close()
    tasks = [t for listener in listeners for t in listener.connections]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=min(grace_seconds, 1.0))
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    for listener in listeners:
        with contextlib.suppress(Exception):
            await listener.server.wait_closed()
