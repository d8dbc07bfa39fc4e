"""`BaridSMTP`: aiosmtpd's SMTP protocol with Barid's transport rules.

Owns: TLS-before-anything on submission listeners (530 5.7.0 for MAIL/RCPT/
DATA/AUTH before STARTTLS), AUTH PLAIN/LOGIN verified off the event loop by the
handler, implicit-TLS listeners that still offer AUTH, fair slots (a cap per
client address, gateway.intake.smtp.slots), strict command lines (CRLF only), a DATA
reader that streams into memory or an encrypted spool file within the in-flight
budget, with a minimum rate and deadlines, and the graceful stop. Must not:
decide about senders, recipients or content (the handler does).

aiosmtpd facts this module handles (STYLE.md): on an implicit-TLS listener
`auth_require_tls=True` would hide AUTH (so implicit listeners switch it off
after construction: the whole connection is TLS); an exception in a hook would
become `500 Error: (Exc) text` (we answer 451 4.3.0 and log instead); NOOP could
keep a session alive forever (`command_call_limit`); its command reader accepts
a bare LF (ours answers 500 5.5.2); bare CR/LF in DATA are kept verbatim (the
MIME checks refuse them); the stock DATA reader reads line by line into memory
(ours reads chunks, gateway.intake.smtp.data_reader, RFC 5321 §4.1.1.4 and §4.5.2).
"""

from __future__ import annotations

import asyncio
import binascii
import functools
import logging
import ssl
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import Any, AnyStr, Protocol

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from gateway.intake.smtp.data_reader import DataDecoder, EdgeRules
from gateway.intake.smtp.sessions import SmtpShared
from gateway.intake.smtp.spool import MessageSink
from gateway.model import replies

log = logging.getLogger("barid.smtp")


def _not_login_data_notice(record: logging.LogRecord) -> bool:
    # aiosmtpd sets the deprecated Session.login_data itself on every AUTH success.
    return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_not_login_data_notice)

_PROBLEMS = {
    "size": replies.TOO_BIG,
    "line": replies.LINE_TOO_LONG,
    "8bit-header": replies.EIGHT_BIT_HEADER,
}

# Commands a client may repeat per session before it is disconnected (421 4.7.0).
CALL_LIMITS = {"NOOP": 20, "RSET": 50, "HELP": 10, "VRFY": 5, "EHLO": 10, "HELO": 10,
               "AUTH": 10, "STARTTLS": 3, "*": 1000}  # fmt: skip
DATA_CHUNK = 64 * 1024  # read size during DATA; the reader pauses the socket past twice this


class BareLineFeed(Exception):
    """A command line ended in LF without CR (RFC 5321 §2.3.8)."""


class Credentials(Protocol):
    """What the handler offers the protocol for AUTH (called once per attempt)."""

    async def authenticate(self, peer: str, login: str, password: str) -> tuple[bool, str, Any]:
        """(ok, reply line, identity); must spend equal time on unknown users."""
        ...


class BaridSMTP(SMTP):
    def __init__(
        self,
        handler: Any,
        *,
        hostname: str,
        tls_context: ssl.SSLContext,
        implicit_tls: bool,
        max_message_size: int,
        shared: SmtpShared,
        listener: str,
    ) -> None:
        super().__init__(
            handler,
            data_size_limit=max_message_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="Barid",
            tls_context=None if implicit_tls else tls_context,
            require_starttls=False,  # enforced below: 530 5.7.0 (docs/CONTRACT.md §5)
            timeout=shared.limits.idle_timeout,
            auth_required=True,
            auth_require_tls=True,
            command_call_limit=CALL_LIMITS,
        )
        # On an implicit-TLS listener the whole connection is encrypted, but aiosmtpd
        # only counts STARTTLS: without this it would hide and refuse AUTH.
        self._auth_require_tls = not implicit_tls
        self.implicit_tls = implicit_tls
        self.listener = listener
        self._shared = shared
        self._limits = shared.limits
        self._slot: str | None = None  # the client address holding a slot
        self._in_data = False
        self._bare_lf = 0
        self._command_timer: asyncio.TimerHandle | None = None
        self.busy = False  # a command is being carried out
        self._smtp_methods = {name: self._tracked(m) for name, m in self._smtp_methods.items()}

    # ---- connection bookkeeping ----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and self._slot is None:
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if peer else ""
            why = "stopping" if self._shared.stopping else self._shared.slots.admit(address)
            if why:
                log.warning("connection refused", extra={"listener": self.listener, "reason": why})
                refusal = {"stopping": replies.SHUTTING_DOWN, "full": replies.TOO_MANY_CONNECTIONS}
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(refusal.get(why, replies.TOO_MANY_FROM_ADDRESS).encode() + b"\r\n")
                transport.close()
                return
            self._slot = address
            self._shared.add(self)
        super().connection_made(transport)
        if self.implicit_tls and self.session is not None:
            self.session.ssl = {"ssl_object": transport.get_extra_info("ssl_object")}

    def connection_lost(self, error: Exception | None) -> None:
        if self._slot is not None:
            self._shared.slots.release(self._slot)
            self._shared.remove(self)
            self._slot = None
        if self._command_timer is not None:
            self._command_timer.cancel()
            self._command_timer = None
        if self.session is None:  # refused before the session started
            return
        super().connection_lost(error)

    def _cb_client_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super()._cb_client_connected(reader, writer)
        plain = reader.readuntil

        async def strict(separator: bytes = b"\n") -> bytes:
            line = await plain(separator)
            if separator == b"\n" and not line.endswith(b"\r\n"):
                raise BareLineFeed()
            return line

        # Every command line (and AUTH response) is read through readuntil(b"\n").
        reader.readuntil = strict  # type: ignore[method-assign,assignment]

    def say_goodbye(self, reply: str) -> None:
        """Write `reply` and close the connection (nothing if it is closing already)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(reply.encode() + b"\r\n")
        transport.close()

    def _timeout_cb(self) -> None:
        if self.busy and not self._in_data:  # our own work (a login, the checks) is not idling
            self._reset_timeout()
            return
        self.say_goodbye(replies.IDLE_TIMEOUT)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_data:
            # A large message on a slow link is not an idle session (RFC 5321 §4.5.3.2.5);
            # the minimum rate and the message deadline bound it instead.
            self._reset_timeout()
            return
        # A command must be whole within command_timeout of its first octet.
        if b"\n" in data and self._command_timer is not None:
            self._command_timer.cancel()
            self._command_timer = None
        if not data.endswith(b"\n") and self._command_timer is None:
            self._command_timer = self.loop.call_later(
                self._limits.command_timeout, self._command_too_slow
            )

    def _command_too_slow(self) -> None:
        self._command_timer = None
        if self.busy or self._in_data:  # we are the slow one: the line waits in the buffer
            self._command_timer = self.loop.call_later(
                self._limits.command_timeout, self._command_too_slow
            )
            return
        self.say_goodbye(replies.COMMAND_TOO_SLOW)

    def _tracked(self, method: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Any]:
        """A command method that marks the session busy; at its end, a stop says goodbye."""

        @functools.wraps(method)
        async def run(arg: Any) -> None:
            self.busy = True
            try:
                await method(arg)
            finally:
                self.busy = False
                if self._shared.stopping:
                    self.say_goodbye(replies.SHUTTING_DOWN)
                elif self.transport is not None:
                    self._reset_timeout()  # idle time counts from our reply

        return run

    async def push(self, status: AnyStr) -> None:
        """Every reply as printable ASCII: aiosmtpd echoes an unknown command's name,
        control characters included ("500 Error: command ... not recognized")."""
        if isinstance(status, str) and not (status.isascii() and status.isprintable()):
            await super().push("".join(c if " " <= c <= "~" else "?" for c in status))
            return
        await super().push(status)

    @property
    def tls_active(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    async def handle_exception(self, error: Exception) -> str:
        if isinstance(error, BareLineFeed):
            self._bare_lf += 1
            if self._bare_lf >= self._limits.bare_lf_limit and self.transport is not None:
                self.loop.call_soon(self.transport.close)  # after the reply is written
            return replies.BARE_LF_COMMAND
        log.error(
            "SMTP session error",
            exc_info=error,
            extra={"listener": self.listener, "error": type(error).__name__},
        )
        return replies.INTERNAL

    async def _require_tls(self) -> bool:
        """True (after replying 530 5.7.0) when the session is not yet encrypted."""
        if self.tls_active:
            return False
        await self.push(replies.TLS_REQUIRED)
        return True

    # ---- commands -----------------------------------------------------------

    async def smtp_STARTTLS(self, arg: str) -> None:
        try:
            async with asyncio.timeout(self._limits.tls_handshake_timeout):
                await super().smtp_STARTTLS(arg)
        except TimeoutError:
            log.warning("TLS handshake timed out", extra={"listener": self.listener})
            if self.transport is not None:
                self.transport.close()

    async def smtp_AUTH(self, arg: str) -> None:
        if await self._require_tls():
            return
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        if await self._require_tls():
            return
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if await self._require_tls():
            return
        await super().smtp_RCPT(arg)

    async def smtp_VRFY(self, arg: str) -> None:
        # No directory enumeration over SMTP (RFC 5321 §3.5.3 allows 252/502).
        await self.push("502 5.5.1 VRFY is not offered")

    async def smtp_DATA(self, arg: str) -> None:
        if await self._require_tls():
            return
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 5.5.1 Error: need RCPT command")
            return
        if arg:
            await self.push("501 5.5.4 Syntax: DATA")
            return
        limits, budget = self._limits, self._shared.budget
        # While it arrives a message holds at most the spooling threshold in memory.
        reserve = min(limits.spool_threshold, self.data_size_limit or 1 << 30)
        if limits.spool_dir is None:
            reserve = self.data_size_limit or 1 << 30
        if not budget.try_take(reserve):
            await self.push(replies.IN_TRANSIT_FULL)
            return
        sink = MessageSink(limits.spool_dir, limits.spool_threshold)
        try:
            try:
                await self.push("354 End data with <CR><LF>.<CR><LF>")
                outcome = await self._receive(sink)
            finally:
                budget.give(reserve)
            if outcome is None:  # connection closed mid-DATA
                return
            reply, close = outcome
            if reply:
                if close:
                    self.say_goodbye(reply)
                    return
                await self.push(reply)
                self._set_post_data_state()  # type: ignore[no-untyped-call]
                return
            status = await self._deliver(sink)
        finally:
            sink.close()
        await self.push(status)
        self._set_post_data_state()  # type: ignore[no-untyped-call]

    async def _deliver(self, sink: MessageSink) -> str:
        """Hold the whole message (within the budget) while the handler checks and stores it."""
        assert self.envelope is not None
        budget, size = self._shared.budget, sink.size
        await budget.take(size)
        try:
            content = await asyncio.to_thread(sink.read) if sink.spooled else sink.read()
            sink.close()
            self.envelope.content = self.envelope.original_content = content
            del content
            status = await self._call_handler_hook("DATA")
            self.envelope.content = self.envelope.original_content = None
        finally:
            budget.give(size)
        return "250 OK" if status is MISSING else str(status)

    async def _receive(self, sink: MessageSink) -> tuple[str, bool] | None:
        """Read the message into `sink`: ("", False) when whole and within the limits,
        (reply, close the session?) otherwise, None on EOF.

        The minimum rate is checked once per window; the deadline counts from 354.
        Past a limit the rest is still read (and discarded) to its end.
        """
        reader, limits, loop = self._reader, self._limits, self.loop
        decoder = DataDecoder()
        assert self.envelope is not None
        rules = EdgeRules(smtputf8=bool(self.envelope.smtp_utf8))
        if not limits.line_rule:
            rules.max_line = 1 << 62
        size_limit = self.data_size_limit or 1 << 30
        deadline = loop.time() + limits.data_timeout
        window_end, window_bytes = loop.time() + limits.rate_window, 0
        problem = ""
        saved = reader._limit  # type: ignore[attr-defined]
        reader._limit = DATA_CHUNK  # type: ignore[attr-defined]
        self._in_data = True
        try:
            while not decoder.done:
                chunk = b""
                try:
                    async with asyncio.timeout(max(0.0, min(deadline, window_end) - loop.time())):
                        chunk = await reader.read(DATA_CHUNK)
                    if not chunk:
                        return None
                except TimeoutError:
                    pass
                now, window_bytes = loop.time(), window_bytes + len(chunk)
                if now >= deadline:
                    return replies.DATA_DEADLINE, True
                if now >= window_end:
                    if window_bytes < limits.min_data_rate * limits.rate_window:
                        return replies.DATA_TOO_SLOW, True
                    window_end, window_bytes = now + limits.rate_window, 0
                out, rest = decoder.feed(chunk)
                if rest:
                    reader._buffer[0:0] = rest  # type: ignore[attr-defined]  # pipelined commands
                if problem:
                    continue
                rules.feed(out)
                if rules.problem:
                    problem = rules.problem
                elif sink.size + len(out) > size_limit:
                    problem = "size"
                else:
                    sink.write(out)
                    continue
                sink.close()
        finally:
            reader._limit = saved  # type: ignore[attr-defined]
            self._in_data = False
        return _PROBLEMS.get(problem, ""), False

    # ---- AUTH mechanisms (RFC 4954, RFC 4616), verified off the loop ---------

    async def _verify(self, login: bytes, password: bytes) -> AuthResult:
        assert self.session is not None
        try:
            user = login.decode("utf-8")
            secret = password.decode("utf-8")
        except UnicodeDecodeError:
            return AuthResult(success=False, handled=False, message=replies.AUTH_FAILED)
        check: Callable[[str, str, str], Awaitable[tuple[bool, str, Any]]]
        check = self.event_handler.authenticate
        peer = str(self.session.peer[0]) if self.session.peer else ""
        ok, message, identity = await check(peer, user, secret)
        if ok:
            return AuthResult(success=True, auth_data=identity, message=message)
        return AuthResult(success=False, handled=False, message=message)

    async def _challenge(self, text: str) -> bytes | object:
        """One AUTH exchange step; MISSING after replying when the line is too long."""
        try:
            return await self.challenge_auth(text)
        except (ValueError, asyncio.LimitOverrunError):
            # The client's response exceeded the line limit (RFC 4954 §4: 500 5.5.6).
            self._reader._buffer.clear()  # type: ignore[attr-defined]
            await self.push("500 5.5.6 Authentication exchange line is too long")
            return MISSING

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            blob = await self._challenge("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                blob = b64decode(args[1].encode(), validate=True)
            except binascii.Error:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        parts = blob.split(b"\x00")
        if len(parts) != 3 or (parts[0] and parts[0] != parts[1]):
            await self.push("501 5.5.2 Malformed PLAIN credentials")
            return AuthResult(success=False, handled=True)
        return await self._verify(parts[1], parts[2])

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        if len(args) == 1:
            login = await self._challenge(self.AuthLoginUsernameChallenge)
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            try:
                login = b64decode(args[1].encode(), validate=True)
            except binascii.Error:
                await self.push("501 5.5.2 Can't decode base64")
                return AuthResult(success=False, handled=True)
        password = await self._challenge(self.AuthLoginPasswordChallenge)
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(login, bytes) and isinstance(password, bytes)
        return await self._verify(login, password)
