"""One IMAP connection: pymap's command loop with the gateway's reading rules.

Owns: reading each command whole before pymap parses it (lines, literals of
both kinds, the limits on them, the literal budget), the deadlines and minimum
rates of reading and writing, BYE answers, and the shutdown signal. Must not:
bind sockets (server.py) or touch mailboxes (backend.py). The rules and why are
in server.py's docstring and docs/MAILBOXES.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from pymap.exceptions import ResponseError
from pymap.imap import IMAPConnection
from pymap.imap.state import ConnectionState
from pymap.parsing import Params
from pymap.parsing.command import Command
from pymap.parsing.commands import Commands, InvalidCommand
from pymap.parsing.response import (
    CommandResponse,
    Response,
    ResponseBad,
    ResponseBye,
    ResponseCode,
    ResponseContinuation,
    ResponseNo,
    ResponseOk,
)
from pymap.parsing.state import ParsingInterrupt, ParsingState

from gateway.imap import fast_format
from gateway.imap.limits import LiteralBudget, TransferRules
from gateway.imap.scan import Announcement, CommandScan

log = logging.getLogger("barid.imap")
fast_format.install()  # pymap's response formatting without Protocol isinstance checks

MAX_LINE = 64 * 1024
MAX_PREAUTH_LITERAL = 4096
MAX_OTHER_LITERAL = 64 * 1024
PARSER_LITERAL = 4096  # pymap refuses longer literals outside APPEND ([TOOBIG])
MAX_PREAUTH_LITERALS = 8  # LOGIN needs two
MAX_NESTING = 20
MAX_BAD_COMMANDS = 5
PREAUTH_IDLE_SECONDS = 60.0
IDLE_SECONDS = 30 * 60.0
READ_CHUNK = 256 * 1024
DRAIN_POLL_SECONDS = 0.05
SHUTDOWN_TEXT = b"Server shutting down."

_APPEND = re.compile(rb"^[^ ]+ (UID )?APPEND ", re.IGNORECASE)
_TAG = re.compile(rb"^[\x21-\x7e]{1,64}")


class Refused(Exception):
    """A command refused before parsing: answer it (BAD or NO) and read the next."""

    def __init__(self, tag: bytes, reason: bytes, code: bytes | None = None, *, bad: bool = True):
        super().__init__(reason)
        self.tag = tag
        self.reason = reason
        self.code = code
        self.bad = bad

    def response(self) -> CommandResponse:
        code = ResponseCode.of(self.code) if self.code else None
        if self.bad:
            return ResponseBad(self.tag, self.reason, code)
        return ResponseNo(self.tag, self.reason, code)


class State(ConnectionState):
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


class _CommandRead:
    """What is known about the command being read."""

    __slots__ = ("append", "discarding", "scan", "tag")

    def __init__(self, first: bytes) -> None:
        tag = _TAG.match(first)
        self.tag = tag.group(0) if tag else b"*"
        self.append = _APPEND.match(first) is not None
        self.scan = CommandScan()
        self.discarding = False  # over the literal budget: read on, keep nothing, answer NO


class Connection(IMAPConnection):
    __slots__ = [
        "_bad", "_budget", "_bye_sent", "_command_bytes", "_deadline", "_max_append",
        "_reserved", "_rules", "_state", "_tag", "closing", "waiting",
    ]  # fmt: skip

    def __init__(
        self, *args: Any, max_append: int, budget: LiteralBudget, rules: TransferRules
    ) -> None:
        super().__init__(*args)
        self._state: State | None = None
        self._max_append = max_append
        self._budget = budget
        self._rules = rules
        self._bad = 0
        self._bye_sent = False
        self._command_bytes = 0
        self._reserved = 0
        self._deadline: float | None = None
        self._tag = b"*"
        self.closing = False  # the server is stopping: BYE at the next command boundary
        self.waiting = False  # between commands, or in IDLE: safe to interrupt at once

    async def run(self, state: ConnectionState) -> None:
        assert isinstance(state, State)
        self._state = state
        await super().run(state)

    def release(self) -> None:
        """Give the literal budget this connection holds back."""
        if self._reserved:
            self._budget.release(self._reserved)
            self._reserved = 0

    def _authenticated(self) -> bool:
        return self._state is not None and self._state.authenticated

    def _command_budget(self) -> int:
        """Octets one command may carry, literals included."""
        if not self._authenticated():
            return MAX_LINE + MAX_PREAUTH_LITERAL
        return self._max_append + MAX_LINE

    # ---- writing -----------------------------------------------------------------------

    async def _bye(self, text: bytes, code: bytes | None = None) -> None:
        if not self._bye_sent:
            self._bye_sent = True
            await self.write_response(ResponseBye(text, ResponseCode.of(code) if code else None))

    async def send_error_disconnect(self) -> None:
        if self._bye_sent:  # one BYE per connection
            return
        if self.closing:
            await self._bye(SHUTDOWN_TEXT, b"UNAVAILABLE")
            return
        self._bye_sent = True
        await super().send_error_disconnect()

    async def write_response(self, resp: Response) -> None:
        # One TLS record per ~64 KiB instead of one per fragment pymap writes (a FETCH
        # of a thousand headers is some nine fragments per message).
        buffer = _Coalesced(self.writer)
        try:
            try:
                await resp.async_write(buffer)
            except ResponseError as refusal:
                # pymap loads a message's content in the writing hook of its FETCH
                # response, before any byte of that response is written; a store error
                # there (a blob that fails its integrity check, a store outage) ends
                # the command with its NO after the responses already sent, and the
                # session goes on (RFC 3501 §7.1).
                if not isinstance(resp, CommandResponse) or resp.tag == b"*":
                    raise
                resp = refusal.get_response(resp.tag)
                resp.write(buffer)
            buffer.flush()
            await self._drain()
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

    async def _drain(self) -> None:
        """Wait for the client to read; one that reads slower than the minimum rate
        over a whole window is cut off (it would hold its slot indefinitely).

        Over TLS, asyncio's drain returns once the TLS layer has handed its bytes
        to the socket transport, which then buffers the rest unseen; so the bytes
        waiting there count too, and we wait for them to fall under the TLS
        layer's high-water mark."""
        rules = self._rules
        loop = asyncio.get_running_loop()
        high = self.writer.transport.get_write_buffer_limits()[1]
        window_end = loop.time() + rules.window_seconds
        at_start = self._unsent()
        while True:
            try:
                async with asyncio.timeout_at(window_end):
                    await self.writer.drain()
                    while self._unsent() > high:  # noqa: ASYNC110 - no event to wait for
                        await asyncio.sleep(DRAIN_POLL_SECONDS)
                return
            except TimeoutError:
                now = self._unsent()
                if at_start - now < rules.min_rate * rules.window_seconds:
                    log.info("client reads too slowly; connection closed")
                    self.writer.transport.abort()
                    raise ConnectionError("client reads too slowly") from None
                at_start, window_end = now, loop.time() + rules.window_seconds

    def _unsent(self) -> int:
        """Octets written and not yet taken by the kernel (TLS layer and socket transport)."""
        transport = self.writer.transport
        size = transport.get_write_buffer_size()
        inner = getattr(getattr(transport, "_ssl_protocol", None), "_transport", None)
        if inner is not None and inner is not transport:
            size += inner.get_write_buffer_size()
        return int(size)

    # ---- reading -----------------------------------------------------------------------

    async def _read_line(self) -> bytes:
        """One line: before a command within the idle timeout, inside one within
        the command's deadline."""
        if self._deadline is None:
            seconds = IDLE_SECONDS if self._authenticated() else PREAUTH_IDLE_SECONDS
        else:
            seconds = max(0.0, self._deadline - asyncio.get_running_loop().time())
        try:
            async with asyncio.timeout(seconds):
                line = await self.reader.readline()
        except TimeoutError:
            if self._deadline is None:
                await self._bye(b"Autologout: idle too long.", b"UNAVAILABLE")
            else:
                await self._bye(b"Command took too long.", b"LIMIT")
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

    async def _read_literal(self, size: int, into: bytearray | None) -> None:
        """`size` octets into `into` (or dropped): at least `min_rate` octets a second
        over each window, and all of it before the command's deadline."""
        rules = self._rules
        loop = asyncio.get_running_loop()
        need = size
        while need:
            goal = min(need, int(rules.min_rate * rules.window_seconds))
            until = loop.time() + rules.window_seconds
            if self._deadline is not None:
                until = min(until, self._deadline)
            try:
                async with asyncio.timeout_at(until):
                    while goal > 0:
                        chunk = await self.reader.read(min(need, READ_CHUNK))
                        if not chunk:
                            raise asyncio.IncompleteReadError(b"", need)
                        need -= len(chunk)
                        goal -= len(chunk)
                        if into is not None:
                            into += chunk
            except TimeoutError:
                await self._bye(b"Too slow: the literal did not arrive in time.", b"LIMIT")
                raise EOFError() from None

    async def readline(self) -> memoryview:
        # pymap reads a SASL response or IDLE's DONE through this: literal+ octets
        # are read with the same limits (commands are read by read_command).
        line = await self._read_line()
        scan = CommandScan()
        buf = bytearray()
        while True:
            if not line.endswith(b"\n"):
                raise EOFError()
            buf += line
            found = scan.line(line)
            if found is None or found.synchronizing:
                break
            await self._check_plus(found, scan, self._literal_limit(False))
            await self._read_literal(found.size, buf)
            line = await self._read_line()
        if scan.deepest > MAX_NESTING:
            raise Refused(b"*", b"Too deeply nested.")
        return memoryview(buf)

    async def _read_command(self) -> memoryview:
        """The whole command: every literal read (a synchronizing one after our "+"),
        then handed to pymap as if it had been sent with LITERAL+."""
        self.waiting = True
        try:
            line = await self._read_line()
        finally:
            self.waiting = False
        seconds = self._rules.command_seconds
        if not self._authenticated():
            seconds = min(seconds, PREAUTH_IDLE_SECONDS)
        self._deadline = asyncio.get_running_loop().time() + seconds
        try:
            return await self._read_rest(line)
        finally:
            self._deadline = None

    async def _read_rest(self, line: bytes) -> memoryview:
        cmd = _CommandRead(line)
        self._tag = cmd.tag
        buf = bytearray()
        while True:
            if not line.endswith(b"\n"):
                raise EOFError()
            found = cmd.scan.line(line)
            if found is None:
                buf += line
                break
            if found.synchronizing:
                await self._check_sync(found, cmd)
                head = line[: found.start]
                line = head + line[found.start :].replace(b"}", b"+}", 1)
                await self.write_response(ResponseContinuation(b"Ready for literal data."))
            else:
                await self._check_plus(found, cmd.scan, self._literal_limit(cmd.append))
                if not cmd.discarding and not self._reserve(found.size):
                    cmd.discarding = True
            await self._spend(found.size)
            buf += line
            await self._read_literal(found.size, None if cmd.discarding else buf)
            line = await self._read_line()
        if cmd.discarding:
            raise Refused(cmd.tag, _BUSY, b"LIMIT", bad=False)
        if cmd.scan.deepest > MAX_NESTING:
            raise Refused(cmd.tag, b"Too deeply nested.")
        return memoryview(buf)

    def _max_literals(self) -> int:
        return self._rules.max_literals if self._authenticated() else MAX_PREAUTH_LITERALS

    async def _check_plus(self, found: Announcement, scan: CommandScan, limit: int) -> None:
        """A non-synchronizing literal is on its way: over a limit, BYE (it cannot be
        skipped safely)."""
        if scan.literals > self._max_literals():
            await self._bye(b"Too many literals in one command.", b"LIMIT")
            raise EOFError()
        if found.size > limit or self._command_bytes + found.size > self._command_budget():
            await self._bye(b"Literal too large.", b"TOOBIG")
            raise EOFError()

    async def _check_sync(self, found: Announcement, cmd: _CommandRead) -> None:
        """A synchronizing literal: over a limit, the command is answered now, with
        no "+" (RFC 7888 §4, RFC 7889 §4), and the connection goes on."""
        if cmd.discarding:
            raise Refused(cmd.tag, _BUSY, b"LIMIT", bad=False)
        if cmd.scan.literals > self._max_literals():
            raise Refused(cmd.tag, b"Too many literals in one command.", b"LIMIT", bad=False)
        limit = self._literal_limit(cmd.append)
        if not cmd.append:
            limit = min(limit, PARSER_LITERAL)
        if found.size > limit or self._command_bytes + found.size > self._command_budget():
            raise Refused(cmd.tag, b"Too big.", b"TOOBIG", bad=False)
        if not self._reserve(found.size):
            raise Refused(cmd.tag, _BUSY, b"LIMIT", bad=False)

    def _reserve(self, octets: int) -> bool:
        """Literal octets after login count against the shared budget."""
        if not self._authenticated():
            return True
        if not self._budget.reserve(octets):
            return False
        self._reserved += octets
        return True

    def _literal_limit(self, append: bool) -> int:
        if not self._authenticated():
            return MAX_PREAUTH_LITERAL
        return self._max_append if append else MAX_OTHER_LITERAL

    async def read_continuation(self, literal_length: int) -> memoryview:
        # The rest of a command after a synchronizing literal, a SASL response or
        # IDLE's DONE: the same budget, and a refusal here ends the connection
        # (there is no command left to answer BAD to).
        await self._spend(literal_length)
        try:
            return await super().read_continuation(literal_length)
        except Refused as refused:
            await self._bye(refused.reason)
            raise EOFError() from None

    async def read_idle_done(self, cmd: Any) -> bool:
        self.waiting = True
        try:
            return await super().read_idle_done(cmd)
        finally:
            self.waiting = False

    async def read_command(self, state: ConnectionState) -> Command:
        # Before login pymap checks literal sizes against the pre-login bound.
        self.params = self._params_for_state()
        while True:
            self.release()  # the previous command is done with its literals
            if self.closing:
                await self._bye(SHUTDOWN_TEXT, b"UNAVAILABLE")
                raise EOFError()
            self._command_bytes = 0
            try:
                text = await self._read_command()
                return parse_command(self.commands, text, self.params, self._tag)
            except Refused as refused:
                await self.write_response(refused.response())

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
        try:
            await self.writer.start_tls(
                self.config.ssl_context,
                ssl_handshake_timeout=self._rules.tls_handshake_seconds,
            )
        except TimeoutError:
            raise ConnectionError("TLS handshake took too long") from None


_BUSY = b"Server busy: too much mail in transit, try again later."


def parse_command(commands: Commands, text: memoryview, params: Params, tag: bytes) -> Command:
    """pymap's parse of one whole command (every literal inline, as LITERAL+), once.

    Raises `Refused` instead of what pymap's parser cannot take: recursion too
    deep for it (SEARCH's `OR OR OR ...`, which no parenthesis count sees), text
    it cannot decode (8-bit octets in a SEARCH string without CHARSET raised
    UnicodeDecodeError), and a request for a literal (impossible once every
    literal is inline)."""
    try:
        cmd, _ = commands.parse(text, params.copy(ParsingState(continuations=[])))
    except RecursionError:
        raise Refused(tag, b"Too deeply nested.") from None
    except ValueError:  # UnicodeDecodeError and kin, from pymap's parsing of strings
        raise Refused(tag, b"Invalid characters in command.") from None
    except ParsingInterrupt:
        raise Refused(tag, b"Unexpected literal.") from None
    return cmd
