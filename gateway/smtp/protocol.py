"""`BaridSMTP`: aiosmtpd's SMTP protocol with Barid's transport rules.

Owns: TLS-before-anything on submission listeners (530 5.7.0 for MAIL/RCPT/
DATA/AUTH before STARTTLS), AUTH PLAIN/LOGIN verified off the event loop by the
handler, implicit-TLS listeners that still offer AUTH, a chunked DATA reader,
connection limits, command call limits, and a safe exception reply.
Must not: decide about senders, recipients or content (the handler does).

aiosmtpd facts this module handles (STYLE.md): on an implicit-TLS listener
`auth_require_tls=True` would hide AUTH (so implicit listeners switch it off
after construction: the whole connection is TLS); an exception in a hook would
become `500 Error: (Exc) text` (we answer 451 4.3.0 and log instead); NOOP could
keep a session alive forever (`command_call_limit`); bare CR/LF in DATA are kept
verbatim (the MIME checks refuse them); the stock DATA reader reads line by line
(ours reads the whole message with one buffered search for CRLF.CRLF, RFC 5321
§4.1.1.4, and removes dot-stuffing per §4.5.2, exactly as the stock reader
does).
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import ssl
from base64 import b64decode
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from gateway.smtp import replies

log = logging.getLogger("barid.smtp")


def _not_login_data_notice(record: logging.LogRecord) -> bool:
    # aiosmtpd sets the deprecated Session.login_data itself on every AUTH success.
    return "login_data is deprecated" not in record.getMessage()


logging.getLogger("mail.log").addFilter(_not_login_data_notice)

# RFC 5321 §4.5.3.2 timeouts are minutes; a session idle this long is closed.
SESSION_TIMEOUT_SECONDS = 300.0
# Commands a client may repeat per session before it is disconnected (421 4.7.0).
CALL_LIMITS = {"NOOP": 20, "RSET": 50, "HELP": 10, "VRFY": 5, "EHLO": 10, "HELO": 10,
               "AUTH": 10, "STARTTLS": 3, "*": 1000}  # fmt: skip
TERMINATOR = b"\r\n.\r\n"


class Credentials(Protocol):
    """What the handler offers the protocol for AUTH (called once per attempt)."""

    async def authenticate(self, peer: str, login: str, password: str) -> tuple[bool, str, Any]:
        """(ok, reply line, identity); must spend equal time on unknown users."""
        ...


class ConnectionCounter:
    """Counts open sessions across all listeners; refuses past `limit` (421 4.7.0)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0


class BaridSMTP(SMTP):
    def __init__(
        self,
        handler: Any,
        *,
        hostname: str,
        tls_context: ssl.SSLContext,
        implicit_tls: bool,
        max_message_size: int,
        counter: ConnectionCounter,
        listener: str,
        timeout: float = SESSION_TIMEOUT_SECONDS,
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
            timeout=timeout,
            auth_required=True,
            auth_require_tls=True,
            command_call_limit=CALL_LIMITS,
        )
        # On an implicit-TLS listener the whole connection is encrypted, but aiosmtpd
        # only counts STARTTLS: without this it would hide and refuse AUTH.
        self._auth_require_tls = not implicit_tls
        self.implicit_tls = implicit_tls
        self.listener = listener
        self._counter = counter
        self._counted = False
        self._in_data = False

    # ---- connection bookkeeping ----------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._original_transport is None and not self._counted:
            if self._counter.open >= self._counter.limit:
                log.warning("connection refused: limit reached", extra={"listener": self.listener})
                assert isinstance(transport, asyncio.WriteTransport)
                transport.write(replies.TOO_MANY_CONNECTIONS.encode() + b"\r\n")
                transport.close()
                return
            self._counter.open += 1
            self._counted = True
        super().connection_made(transport)
        if self.implicit_tls and self.session is not None:
            self.session.ssl = {"ssl_object": transport.get_extra_info("ssl_object")}

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self._counter.open -= 1
        if self.session is None:  # refused before the session started
            return
        super().connection_lost(error)

    @property
    def tls_active(self) -> bool:
        return self.implicit_tls or self._tls_protocol is not None

    async def handle_exception(self, error: Exception) -> str:
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
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content = await self._read_data()
        if content is None:  # connection closed mid-DATA
            return
        if content is MISSING:
            await self.push(replies.TOO_BIG)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        assert isinstance(content, bytes)
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        await self.push("250 OK" if status is MISSING else status)
        self._set_post_data_state()  # type: ignore[no-untyped-call]

    async def _read_data(self) -> bytes | object | None:
        """The message, dot-unstuffed; MISSING when over the size limit; None on EOF.

        The stream reader's buffer is searched for CRLF.CRLF in one pass. A CRLF
        is put in front of the buffered data first so that an empty message
        ('.' alone on the first line) ends the same way.
        """
        reader = self._reader
        size_limit = self.data_size_limit or 1 << 30
        # RFC 1870: the SIZE limit counts the message without transparency dots, so
        # the wire may carry more; stuffed lines are at least 3 octets (".." CRLF).
        limit = size_limit + size_limit // 2 + len(TERMINATOR) + 2
        reader._buffer[0:0] = b"\r\n"  # type: ignore[attr-defined]
        saved = reader._limit  # type: ignore[attr-defined]
        reader._limit = limit  # type: ignore[attr-defined]
        self._in_data = True  # incoming bytes keep the session's idle timer fresh
        try:
            try:
                data = await reader.readuntil(TERMINATOR)
            except asyncio.LimitOverrunError:
                await self._drain_data()
                return MISSING
        except asyncio.IncompleteReadError:
            return None
        finally:
            reader._limit = saved  # type: ignore[attr-defined]
            self._in_data = False
        # data = CRLF + message + "." CRLF ; undo transparency (RFC 5321 §4.5.2)
        body = data[: -len(TERMINATOR) + 2]
        if b"\r\n." in body:
            body = body.replace(b"\r\n.", b"\r\n")
        if len(body) - 2 > size_limit:
            return MISSING
        return bytes(body[2:])

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_data:
            # A large message on a slow link is not an idle session (RFC 5321 §4.5.3.2.5).
            self._reset_timeout()

    async def _drain_data(self) -> None:
        """Discard the rest of an oversized message, up to and including CRLF.CRLF."""
        reader = self._reader
        while True:
            try:
                await reader.readuntil(TERMINATOR)
                return
            except asyncio.LimitOverrunError as exc:
                # keep the last bytes: the terminator may straddle the cut
                await reader.readexactly(max(1, exc.consumed - len(TERMINATOR)))

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
