"""Remote delivery by IMAP APPEND: an official copy into a mailbox on an agency's own server.

Owns: one delivery attempt of one copy to one `ImapServer` -- verified TLS,
LOGIN with the configured (master) login, APPEND into the configured folder
(CREATE on `[TRYCREATE]`), the duplicate check after a possible crash, and the
classification of the result as an `AppendOutcome` (the server's settings
and the outcome are gateway.delivery.imap_server). Must not: touch the
delivery queue, the store or receipts (the caller records the outcome and
retries), build or change message bytes, speak plaintext IMAP, or let the
password or message bytes reach a log record or an outcome.

Contract of `append_copy(server, recipient, data, trace_code=..., maybe_done=...)`:

- TLS is mandatory and verified: CERT_REQUIRED, the certificate's name checked
  against `server.server_name` (or `server.host`), TLS 1.2 or later, trust
  anchors from `server.ca_file` or the system's. "implicit" connects in TLS;
  "starttls" requires the server to offer STARTTLS before any LOGIN (the
  STARTTLS command of aioimaplib's protocol, then `loop.start_tls`; plaintext
  bytes after the server's OK are refused, RFC 3501 §6.2.1 / RFC 7817 injection).
  No TLS, a failed handshake or an untrusted certificate -> "temporary": the
  queue retries and the caller alerts; LOGIN is never sent in the clear.
- LOGIN as `server.login` with "{address}" / "{local}" replaced by the recipient
  (e.g. "{address}*barid", a Dovecot master user). Refused -> "temporary" (likely
  a configuration error; the queue's retry window ends in a non-delivery receipt).
- APPEND of `data` byte for byte, no flags, into `server.folder`. NO [TRYCREATE]
  (or [NONEXISTENT]) -> CREATE (ALREADYEXISTS is fine) and one more APPEND. NO
  with OVERQUOTA, UNAVAILABLE, INUSE, SERVERBUG, any other code or none ->
  "temporary"; TOOBIG, LIMIT, CANNOT, NONEXISTENT/TRYCREATE after the CREATE,
  or BAD -> "permanent". Connection lost, BYE, timeouts -> "temporary".
- `maybe_done=True` (an earlier attempt may have appended before we recorded
  it): LIST the folder (missing: not done), EXAMINE it and `UID SEARCH HEADER
  Barid-Trace <trace_code>`; a match -> "delivered" without a second APPEND.
  (The search is a substring match on a fixed-format code, `XXXXX-XXXXX`.)
- LOGOUT at the end; the connection is always closed; the whole call is bounded
  by `server.timeout` (plus at most one second to close). Network and server
  trouble never raises: it is an outcome. ValueError only for a bad `ImapServer`
  (at construction), recipient or trace code.

The `detail` of an outcome is one printable-ASCII line of at most 300
characters (the server's answer or the local reason), never the password.
Logs go to "barid.delivery.imap" and carry server name, recipient, folder and
outcome, never the password or message bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl
from collections.abc import Awaitable
from typing import Any, Literal, TypeVar

from aioimaplib.aioimaplib import (
    AUTH,
    NONAUTH,
    SELECTED,
    Command,
    IMAP4ClientProtocol,
    Response,
    quoted,
)

from gateway.delivery.imap_server import (
    AppendOutcome,
    ImapServer,
    check_recipient,
    check_trace,
)

__all__ = ["AppendOutcome", "ImapServer", "append_copy"]

log = logging.getLogger("barid.delivery.imap")

TEMPORARY_CODES = frozenset({"OVERQUOTA", "UNAVAILABLE", "INUSE", "SERVERBUG"})
PERMANENT_CODES = frozenset({"TOOBIG", "LIMIT", "CANNOT", "NONEXISTENT"})
CREATE_CODES = frozenset({"TRYCREATE", "NONEXISTENT"})
TRACE_HEADER = "Barid-Trace"
DETAIL_MAX = 300
CLOSE_GRACE = 1.0  # seconds to wait for the connection to close after LOGOUT

_CODE = re.compile(rb"^\[([A-Za-z0-9-]+)")
_NUMBERS = re.compile(rb"^[0-9 ]*$")
_T = TypeVar("_T")


# ---------------------------------------------------------------- the session


class _Failed(Exception):
    """Ends the session with an outcome (kind, detail)."""

    def __init__(self, kind: Literal["temporary", "permanent"], detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


class _Protocol(IMAP4ClientProtocol):  # type: ignore[misc]
    """aioimaplib's protocol, remembering BYE and refusing data between STARTTLS and TLS."""

    def __init__(self, loop: asyncio.AbstractEventLoop, lost: asyncio.Future[None]) -> None:
        super().__init__(loop, self._on_lost)
        self._lost = lost
        self.bye = b""
        self.awaiting_tls = False  # STARTTLS answered OK, handshake not started yet
        self.injected = False  # bytes arrived in that window (plaintext injection)

    def _on_lost(self, exc: Exception | None) -> None:
        if not self._lost.done():
            self._lost.set_result(None)

    async def welcome(self, command: bytes) -> None:
        try:
            await super().welcome(command)
        except Exception:  # a BYE or odd greeting, or no IMAP4rev1: end the connection
            self.bye = b"* " + command.removeprefix(b"* ")
            if self.transport is not None:
                self.transport.close()

    def data_received(self, d: bytes) -> None:
        if self.awaiting_tls:
            self.injected = True
            return
        super().data_received(d)
        if self.awaiting_tls and self.incomplete_line:
            self.injected = True  # a partial line followed the STARTTLS OK

    def _handle_line(self, line: bytes, current_cmd: Command) -> Command | None:
        if self.awaiting_tls and line:
            self.injected = True
            return None
        if line.startswith(b"* BYE"):
            self.bye = line
        result: Command | None = super()._handle_line(line, current_cmd)
        return result


def _ascii_line(text: str | bytes) -> str:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    cleaned = "".join(ch if " " <= ch <= "~" else "?" for ch in text.replace("\r\n", " "))
    return cleaned.strip()[:DETAIL_MAX]


def _code(response: Response) -> str | None:
    if not response.lines:
        return None
    last = response.lines[-1]
    match = _CODE.match(last) if isinstance(last, bytes) else None
    return match.group(1).decode("ascii").upper() if match else None


def _answer(command: str, response: Response) -> str:
    text = response.lines[-1] if response.lines else b""
    return f"{command} {response.result} {_ascii_line(text)}".strip()


class _Session:
    def __init__(self, server: ImapServer, recipient: str) -> None:
        self.server = server
        self.recipient = recipient
        self.loop = asyncio.get_running_loop()
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.protocol = _Protocol(self.loop, self.lost)
        self.transport: asyncio.Transport | None = None
        self.step = "connect"

    @property
    def server_hostname(self) -> str:
        return self.server.server_name or self.server.host

    async def wait(self, awaitable: Awaitable[_T]) -> _T:
        """`awaitable`'s result, or _Failed if the connection is lost first."""
        task = asyncio.ensure_future(awaitable)
        try:
            waiters: set[asyncio.Future[Any]] = {task, self.lost}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if task.cancelled():
            bye = _ascii_line(self.protocol.bye[2:]) if self.protocol.bye else ""
            why = f" ({bye})" if bye else ""
            raise _Failed("temporary", f"connection closed by the server during {self.step}{why}")
        return task.result()

    async def run(self, command: Command, scrub: str | None = None) -> Response:
        response: Response = await self.wait(self.protocol.execute(command, scrub=scrub))
        return response

    def command(self, name: str, *args: str, prefix: str | None = None) -> Command:
        return Command(name, self.protocol.new_tag(), *args, prefix=prefix, loop=self.loop)

    # -- connection and TLS

    async def connect(self, context: ssl.SSLContext) -> None:
        implicit = self.server.tls == "implicit"
        self.step = "TLS handshake" if implicit else "connect"
        try:
            self.transport, _ = await self.loop.create_connection(
                lambda: self.protocol,
                self.server.host,
                self.server.port,
                ssl=context if implicit else None,
                server_hostname=self.server_hostname if implicit else None,
            )
        except ssl.SSLCertVerificationError as exc:
            raise _Failed(
                "temporary", f"TLS certificate not trusted: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise _Failed("temporary", f"TLS handshake failed: {exc.reason or exc}") from None
        except OSError as exc:
            raise _Failed("temporary", f"cannot connect: {exc.strerror or exc}") from None
        self.step = "greeting"
        await self.wait(self.protocol.wait(f"{AUTH}|{NONAUTH}"))
        if self.protocol.state != NONAUTH:
            raise _Failed("temporary", "server greeted PREAUTH; refusing an unverified session")
        if not implicit:
            await self.starttls(context)

    async def starttls(self, context: ssl.SSLContext) -> None:
        self.step = "STARTTLS"
        if "STARTTLS" not in self.protocol.capabilities:
            raise _Failed("temporary", "server does not offer STARTTLS; not logging in without TLS")
        command = self.command("STARTTLS")
        # awaiting_tls is set by the time the tagged OK has been handled (see _Protocol).
        original_close = command.close

        def close(line: bytes, result: str) -> None:
            if result == "OK":
                self.protocol.awaiting_tls = True
            original_close(line, result)

        command.close = close
        response = await self.run(command)
        if response.result != "OK":
            raise _Failed("temporary", _answer("STARTTLS", response))
        if self.protocol.injected or self.protocol.incomplete_line:
            raise _Failed("temporary", "server sent plaintext data after STARTTLS")
        self.step = "TLS handshake"
        assert self.transport is not None
        try:
            tls_transport = await self.wait(
                self.loop.start_tls(
                    self.transport, self.protocol, context, server_hostname=self.server_hostname
                )
            )
        except ssl.SSLCertVerificationError as exc:
            raise _Failed(
                "temporary", f"TLS certificate not trusted: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise _Failed("temporary", f"TLS handshake failed: {exc.reason or exc}") from None
        except (OSError, ConnectionError) as exc:
            raise _Failed("temporary", f"TLS handshake failed: {exc}") from None
        if tls_transport is None:
            raise _Failed("temporary", "TLS handshake failed: connection closed")
        if self.protocol.injected:
            raise _Failed("temporary", "server sent plaintext data after STARTTLS")
        self.transport = tls_transport
        self.protocol.transport = tls_transport
        self.protocol.awaiting_tls = False
        self.step = "CAPABILITY"
        self.protocol.capabilities = set()
        await self.wait(self.protocol.capability())  # the pre-TLS list is discarded

    # -- commands

    async def login(self) -> None:
        self.step = "LOGIN"
        if "LOGINDISABLED" in self.protocol.capabilities:
            raise _Failed("temporary", "server advertises LOGINDISABLED over TLS")
        user = quoted(self.server.login_for(self.recipient))
        secret = quoted(self.server.password)
        response = await self.run(self.command("LOGIN", user, secret), scrub=secret)
        if response.result != "OK":
            raise _Failed("temporary", _answer("LOGIN", response))
        self.protocol.state = AUTH

    async def already_there(self, trace_code: str) -> bool:
        """Whether the folder holds a message whose Barid-Trace is `trace_code`."""
        folder = quoted(self.server.folder)
        self.step = "LIST"
        listed = await self.run(self.command("LIST", '""', folder))
        if listed.result != "OK":
            raise _Failed("temporary", _answer("LIST", listed))
        if not any(line for line in listed.lines[:-1]):
            return False  # no such folder: nothing was appended
        self.step = "EXAMINE"
        examined = await self.run(self.command("EXAMINE", folder))
        if examined.result != "OK":
            raise _Failed("temporary", _answer("EXAMINE", examined))
        self.protocol.state = SELECTED  # aioimaplib only tracks SELECT
        self.step = "UID SEARCH"
        found = await self.run(
            self.command("SEARCH", "HEADER", TRACE_HEADER, quoted(trace_code), prefix="UID")
        )
        if found.result != "OK":
            raise _Failed("temporary", _answer("UID SEARCH", found))
        uids = [
            n
            for line in found.lines[:-1]
            if isinstance(line, bytes) and _NUMBERS.match(line)
            for n in line.split()
        ]
        return bool(uids)

    async def append(self, data: bytes) -> Response:
        self.step = "APPEND"
        response: Response = await self.wait(
            self.protocol.append(data, mailbox=quoted(self.server.folder))
        )
        return response

    async def create(self) -> None:
        self.step = "CREATE"
        response = await self.run(self.command("CREATE", quoted(self.server.folder)))
        code = _code(response)
        if response.result == "OK" or code == "ALREADYEXISTS":
            return
        if response.result == "NO" and (code is None or code in TEMPORARY_CODES):
            raise _Failed("temporary", _answer("CREATE", response))
        if response.result == "NO" and code not in PERMANENT_CODES:
            raise _Failed("temporary", _answer("CREATE", response))
        raise _Failed("permanent", _answer("CREATE", response))

    async def logout(self) -> None:
        self.step = "LOGOUT"
        with contextlib.suppress(_Failed):
            await self.run(self.command("LOGOUT"))

    async def close(self, deadline: float) -> None:
        """Close the connection; abort it if it is not closed by `deadline` (loop time)."""
        for task in list(self.protocol.tasks):
            task.cancel()
        if self.transport is None:
            return
        self.transport.close()
        remaining = max(0.0, min(CLOSE_GRACE, deadline - self.loop.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), remaining)
        if not self.lost.done():
            self.transport.abort()


def _classify_append(response: Response, after_create: bool) -> AppendOutcome | None:
    """The outcome of an APPEND answer; None when a CREATE and a second APPEND are due."""
    code = _code(response)
    detail = _answer("APPEND", response)
    if response.result == "OK":
        return AppendOutcome("delivered", detail, "")
    if response.result == "NO":
        if code in CREATE_CODES:
            return AppendOutcome("permanent", detail, "") if after_create else None
        if code in PERMANENT_CODES:
            return AppendOutcome("permanent", detail, "")
        return AppendOutcome("temporary", detail, "")
    if response.result == "BAD":
        return AppendOutcome("permanent", detail, "")
    return AppendOutcome("temporary", detail, "")


async def _deliver(
    session: _Session, data: bytes, trace_code: str, maybe_done: bool
) -> AppendOutcome:
    server = session.server
    try:
        context = server.tls_context()
    except (OSError, ssl.SSLError) as exc:
        raise _Failed("temporary", f"TLS trust anchors cannot be loaded: {exc}") from None
    await session.connect(context)
    await session.login()
    if maybe_done and await session.already_there(trace_code):
        await session.logout()
        return AppendOutcome("delivered", f"already in {server.folder} (Barid-Trace found)", "")
    outcome = _classify_append(await session.append(data), after_create=False)
    if outcome is None:
        await session.create()
        outcome = _classify_append(await session.append(data), after_create=True)
        assert outcome is not None
    await session.logout()
    return outcome


async def append_copy(
    server: ImapServer,
    recipient: str,
    data: bytes,
    *,
    trace_code: str,
    maybe_done: bool = False,
) -> AppendOutcome:
    """APPEND `data` into `recipient`'s `server.folder` on `server`; see the module doc."""
    if not isinstance(server, ImapServer):
        raise ValueError("server must be an ImapServer")
    check_recipient(recipient)
    check_trace(trace_code)
    if not isinstance(data, bytes | bytearray) or not data:
        raise ValueError("data must be non-empty bytes")
    session = _Session(server, recipient)
    deadline = session.loop.time() + server.timeout
    facts: dict[str, Any] = {
        "imap_server": server.name,
        "remote": server.host,
        "recipient": recipient,
        "folder": server.folder,
        "trace_code": trace_code,
    }
    try:
        async with asyncio.timeout_at(deadline):
            outcome = await _deliver(session, bytes(data), trace_code, maybe_done)
    except _Failed as failed:
        outcome = AppendOutcome(failed.kind, failed.detail, "")
    except TimeoutError:
        outcome = AppendOutcome(
            "temporary", f"timed out after {server.timeout:g} s during {session.step}", ""
        )
    except Exception as exc:  # aioimaplib's Abort/Error, protocol surprises: never raise
        outcome = AppendOutcome(
            "temporary", f"IMAP client error during {session.step}: {type(exc).__name__}", ""
        )
        log.warning("IMAP client error", extra=facts | {"step": session.step}, exc_info=False)
    finally:
        await session.close(deadline + CLOSE_GRACE)
    detail = _ascii_line(outcome.detail.replace(server.password, "***"))
    outcome = AppendOutcome(outcome.kind, detail, server.host)
    level = logging.INFO if outcome.kind == "delivered" else logging.WARNING
    log.log(level, "IMAP append %s", outcome.kind, extra=facts | {"detail": detail})
    return outcome
