"""The listeners of `barid serve`, one start function each: submission (STARTTLS and
implicit TLS), transfer (mutual TLS), IMAP (STARTTLS and implicit TLS), HTTP.

Owns: binding each listener's socket (behind the PROXY protocol when
`[server] trusted_proxies` is set: gateway.serve.proxy_listener), the handler
it serves and the limits it runs with, and logging "listening". Must not: build
the services behind the handlers (gateway.serve.services) or choose the start
order (gateway.serve.gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.types import ASGIApp

from gateway.config import Settings
from gateway.federation.peers import Federation
from gateway.http.app import build_app
from gateway.http.clientconfig.model import MailEndpoints
from gateway.http.clientconfig.routes import ClientSetup
from gateway.http.slots import fair_protocol
from gateway.imap.backend import ImapContext
from gateway.imap.limits import ConnectionSlots, LiteralBudget, TransferRules
from gateway.imap.server import ImapService
from gateway.intake.smtp.listeners import Listener, start_listener
from gateway.intake.smtp.sessions import SessionLimits, SmtpShared, shared_for
from gateway.intake.smtp.slots import SlotTable
from gateway.intake.smtp.spool import SPOOL_DIR_NAME
from gateway.intake.transfer import TransferHandler, TransferSMTP
from gateway.serve.key_ring import KeyRing
from gateway.serve.proxy_listener import ProxyRules, accept_through
from gateway.serve.sockets import StartupError, bind
from gateway.stamping.dkim import DkimSigner
from gateway.store.blobs import BlobCipher
from gateway.store.counters import COUNTER_KEY_PURPOSE, SharedCounters
from gateway.store.mailbox.store import MailboxStore
from gateway.store.transfers import FederationStore
from gateway.verification import VerificationService
from gateway.verification.radar import Radar, RadarLimits, audit_alerts
from gateway.verification.radar_windows import SharedWindows
from keys.gateway_keys import KeyFileError
from policies.directory import DirectorySnapshot
from policies.holder import PolicyHolder

log = logging.getLogger("barid.serve")
TRANSFER_ENVELOPE_ALLOWANCE = 2 * 1024 * 1024  # cover, QR, certificate.json, DKIM fields


class QuietUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the Gateway owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _listen(settings: Settings, host: str, port: int, name: str) -> socket.socket:
    """The listener's bound socket, behind the PROXY protocol when proxies are trusted."""
    server = settings.server
    rules = ProxyRules.parse(server.trusted_proxies, server.proxy_header_timeout_seconds)
    return accept_through(bind(host, port), rules, name)


def _listening(name: str, address: str, port: int) -> None:
    log.info("listening", extra={"listener": name, "address": address, "port": port})


def smtp_shared(settings: Settings, *, line_rule: bool) -> SmtpShared:
    """Slots, in-flight budget and limits for one group of SMTP listeners."""
    smtp = settings.smtp
    return shared_for(
        max_connections=smtp.max_connections,
        per_address=smtp.max_connections_per_address,
        budget_bytes=settings.smtp_inflight_bytes,
        limits=SessionLimits(
            idle_timeout=smtp.idle_timeout_seconds,
            command_timeout=smtp.command_timeout_seconds,
            data_timeout=smtp.data_timeout_seconds,
            min_data_rate=smtp.min_data_rate,
            rate_window=smtp.data_rate_window_seconds,
            tls_handshake_timeout=smtp.tls_handshake_timeout_seconds,
            spool_threshold=smtp.spool_threshold_bytes,
            spool_dir=settings.data_dir / SPOOL_DIR_NAME,
            line_rule=line_rule,
        ),
    )


async def start_submission_listeners(
    settings: Settings, handler: Any, tls: ssl.SSLContext
) -> list[Listener]:
    """Submission with STARTTLS and with implicit TLS, sharing slots and limits."""
    shared = smtp_shared(settings, line_rule=True)
    listeners = []
    for name, port, implicit in (
        ("submission", settings.smtp.submission_port, False),
        ("smtps", settings.smtp.smtps_port, True),
    ):
        listener = await start_listener(
            name,
            _listen(settings, settings.smtp.listen, port, name),
            handler,
            hostname=settings.server.hostname,
            tls_context=tls,
            implicit_tls=implicit,
            max_message_size=settings.smtp.max_message_size,
            shared=shared,
        )
        listeners.append(listener)
        _listening(name, settings.smtp.listen, listener.port)
    return listeners


async def start_transfer_listener(
    settings: Settings,
    federation: Federation,
    *,
    sessions: async_sessionmaker[AsyncSession],
    cipher: BlobCipher,
    mailboxes: MailboxStore,
    policy: Callable[[], PolicyHolder],
    describe: Callable[[bytes], Awaitable[bytes]],
    signer_for: Callable[[str], DkimSigner | None],
    audit_key: bytes,
) -> Listener:
    """The transfer listener: mutual TLS with the peers' trust anchors."""
    try:
        tls = federation.server_context(settings.tls_cert, settings.tls_key)
    except (KeyFileError, ssl.SSLError, ValueError) as exc:
        raise StartupError(f"transfer TLS: {exc}") from None
    store = FederationStore(sessions, cipher, mailboxes, audit_key)
    handler = TransferHandler(
        federation,
        policy,
        store,
        describe=describe,
        signer_for=signer_for,
        hostname=settings.server.hostname,
        record_refusal=store.record_refusal,
    )
    listener = await start_listener(
        "transfer",
        _listen(settings, settings.smtp.listen, settings.smtp.transfer_port, "transfer"),
        handler,
        hostname=settings.server.hostname,
        tls_context=tls,
        implicit_tls=False,
        # A copy is the original (at most max_message_size) inside its envelope.
        max_message_size=settings.smtp.max_message_size + TRANSFER_ENVELOPE_ALLOWANCE,
        # Copies embed originals verbatim, labelled "binary" when a line is over
        # 998 octets (gateway.stamping.envelope), so the line rule is off here.
        shared=smtp_shared(settings, line_rule=False),
        protocol=TransferSMTP,
    )
    _listening("transfer", settings.smtp.listen, listener.port)
    return listener


async def start_imap_listeners(
    settings: Settings, ctx: ImapContext, tls: ssl.SSLContext, ports: dict[str, int]
) -> ImapService:
    """IMAP with STARTTLS and with implicit TLS; their ports go into `ports`."""
    imap = settings.imap
    service = ImapService(
        ctx,
        tls_context=tls,
        max_append_size=imap.max_append_size,
        slots=ConnectionSlots(
            imap.max_connections, imap.max_connections_per_address, imap.busy_per_address
        ),
        budget=LiteralBudget(imap.append_memory_budget),
        rules=TransferRules(
            min_rate=imap.min_transfer_rate,
            window_seconds=imap.transfer_window_seconds,
            command_seconds=imap.command_timeout_seconds,
            tls_handshake_seconds=imap.tls_handshake_seconds,
            max_literals=imap.max_literals_per_command,
        ),
    )
    for name, port, implicit in (("imap", imap.port, False), ("imaps", imap.imaps_port, True)):
        ports[name] = await service.start_listener(
            name, _listen(settings, imap.listen, port, name), implicit_tls=implicit
        )
        _listening(name, imap.listen, ports[name])
    return service


async def start_http_listener(
    settings: Settings,
    engine: AsyncEngine,
    *,
    sessions: async_sessionmaker[AsyncSession],
    keys: KeyRing,
    audit_key: bytes,
    endpoints: MailEndpoints,
    snapshot: Callable[[], DirectorySnapshot | None],
) -> tuple[QuietUvicorn, asyncio.Task[None], int]:
    """The HTTP listener (admin, API, verification, metrics), serving once it returns:
    the server, its task and its port."""
    http = settings.http
    sock = _listen(settings, http.listen, http.port, "http")
    port = sock.getsockname()[1]
    app = build_app(
        engine,
        verification=VerificationService(sessions, source=keys),
        radar=Radar(
            RadarLimits(
                per_minute=http.verify_lookups_per_minute,
                failures=http.verify_failures_per_10_minutes,
            ),
            alerts=audit_alerts(sessions, audit_key),
            windows=SharedWindows(
                SharedCounters(sessions, keys.current().derive(COUNTER_KEY_PURPOSE))
            ),
        ),
        client_setup=ClientSetup(endpoints, snapshot),
    )
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="off",
        access_log=False,
        server_header=False,
        http=fair_protocol(SlotTable(http.max_connections, http.max_connections_per_address)),
        timeout_graceful_shutdown=int(settings.server.shutdown_grace_seconds),
    )
    server, task = await _serve(config, sock, "HTTP")
    _listening("http", http.listen, port)
    return server, task, port


async def start_admin_listener(
    settings: Settings, app: ASGIApp
) -> tuple[QuietUvicorn, asyncio.Task[None], int]:
    """The admin listener (DESIGN §10): HTTPS only, on `http.admin_address`, serving the
    app `admin` builds (the gateway never imports it); the server, its task, its port."""
    http = settings.http
    sock = _listen(settings, http.admin_address, http.admin_port, "admin")
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="off",
        access_log=False,
        server_header=False,
        ssl_certfile=str(settings.tls_cert),
        ssl_keyfile=str(settings.tls_key),
        http=fair_protocol(SlotTable(http.max_connections, http.max_connections_per_address)),
        timeout_graceful_shutdown=int(settings.server.shutdown_grace_seconds),
    )
    server, task = await _serve(config, sock, "admin")
    _listening("admin", http.admin_address, port)
    return server, task, port


async def _serve(
    config: uvicorn.Config, sock: socket.socket, name: str
) -> tuple[QuietUvicorn, asyncio.Task[None]]:
    """Serve on `sock` and return once the server accepts connections."""
    server = QuietUvicorn(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await asyncio.gather(task, return_exceptions=True)
            raise StartupError(f"{name} listener failed to start")
        await asyncio.sleep(0.01)
    return server, task
