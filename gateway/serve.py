"""`barid serve`: every listener on one asyncio loop, started and stopped together.

Owns: binding sockets, running the listeners, the directory snapshot refresher,
and clean shutdown on SIGTERM/SIGINT. Must not: parse mail or decide policy.
Call order: `Gateway(settings)` -> `await start()` -> ... -> `await stop()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import ssl
from collections.abc import Callable, Generator
from pathlib import Path

import uvicorn

from gateway import metrics
from gateway.auth import Authenticator
from gateway.auth_events import audit_lockouts
from gateway.clientconfig.model import MailEndpoints
from gateway.clientconfig.routes import ClientSetup
from gateway.config import Settings
from gateway.delivery.imap_target import ImapServer
from gateway.delivery.local import MailWorker
from gateway.delivery.relay import RelayWorker
from gateway.federation.peers import Federation, PeerConfigError
from gateway.federation.store import FederationStore
from gateway.federation.transfer import TransferHandler, TransferSMTP
from gateway.http_app import build_app
from gateway.http_slots import fair_protocol
from gateway.imap.access import AccessRecorder
from gateway.imap.backend import ImapContext
from gateway.imap.limits import ConnectionSlots, LiteralBudget, TransferRules
from gateway.imap.server import ImapService
from gateway.mailbox.notify import MailboxNotifier
from gateway.mailbox.store import MailboxStore
from gateway.mime.limits import MimeLimits
from gateway.policy_runtime import PolicyRuntime, PolicyStartupError
from gateway.smtp.listeners import Listener, start_listener, stop_listeners
from gateway.smtp.sessions import SessionLimits, SmtpShared, shared_for
from gateway.smtp.slots import SlotTable
from gateway.smtp.spool import SPOOL_DIR_NAME, clear_spool
from gateway.smtp.throttle import ThrottleRules
from gateway.stamp.dkim import DkimSigner
from gateway.stamp.stamper import Stamper
from gateway.stamp.trace import TRACE_KEY_PURPOSE
from gateway.store import migrate
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.db import create_engine, durability_problems, session_factory
from gateway.store.directory import Directory
from gateway.store.directory import directory_version as read_version
from gateway.store.messages import MessageStore
from gateway.submission.handler import SubmissionHandler
from gateway.submission.pipeline import SubmissionPipeline
from gateway.verification import VerificationService
from gateway.verification.radar import Radar, RadarLimits, audit_alerts
from keys.gateway_keys import GatewayKeys, KeyFileError, derive_key, load_gateway_keys
from keys.tls import load_server_context
from policies.directory import DirectorySnapshot
from policies.holder import PolicyHolder

log = logging.getLogger("barid.serve")
SNAPSHOT_POLL_SECONDS = 2.0
GC_YOUNG_THRESHOLD = 50_000
DESCRIBE = "gateway.imap.describe:describe"  # run by the mail worker's parse process
TRANSFER_ENVELOPE_ALLOWANCE = 2 * 1024 * 1024  # cover, QR, certificate.json, DKIM fields


class StartupError(Exception):
    """The gateway cannot start; the message says why (no internals)."""


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the Gateway owns signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only when
    # the listening socket says it is TCP; without it every small reply written in
    # two pieces waits for the client's delayed ACK (~40 ms).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(512)
    sock.setblocking(False)
    return sock


class Gateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = create_engine(
            settings.database_url,
            pool_size=settings.database.pool_size,
            connect_timeout=settings.database.connect_timeout_seconds,
        )
        self.sessions = session_factory(self.engine)
        self.snapshot: DirectorySnapshot | None = None
        self.snapshot_version = -1
        self.http_port = 0
        self.smtp_ports: dict[str, int] = {}
        self.imap_ports: dict[str, int] = {}
        self._smtp: list[Listener] = []
        self.imap: ImapService | None = None
        self.notifier = MailboxNotifier()
        self.mailboxes: MailboxStore | None = None
        self.worker: MailWorker | None = None
        self.relay: RelayWorker | None = None
        self.federation: Federation | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._http: _Uvicorn | None = None
        self.directory: Directory | None = None
        self.policy: PolicyRuntime | None = None
        self.store: MessageStore | None = None
        self.authenticator: Authenticator | None = None

    async def start(self) -> None:
        try:
            keys = load_gateway_keys(self.settings.keys_dir)
        except Exception as exc:
            raise StartupError(f"gateway keys: {exc}") from None
        try:
            current = await migrate.current_revision(self.engine)
        except Exception:
            log.exception("database unavailable at start-up")
            raise StartupError("database unavailable (see the log)") from None
        if current != migrate.head_revision():
            raise StartupError(
                f"database schema at {current or 'nothing'}, expected {migrate.head_revision()};"
                " run `barid init`"
            )
        await self._check_durability()
        audit_key = keys.derive(AUDIT_KEY_PURPOSE)
        self.directory = Directory(self.sessions, audit_key)
        await self.refresh_snapshot()
        assert self.snapshot is not None
        if not self.settings.policy_file.exists():
            raise StartupError(f"routing policy {self.settings.policy_file} does not exist")
        policy = PolicyRuntime(
            self.settings.policy_file, self.settings.federation, self.sessions, audit_key
        )
        try:
            await policy.start(self.snapshot)
        except PolicyStartupError as exc:
            for problem in exc.problems:
                log.error("policy problem", extra={"problem": str(problem)})
            first = str(exc.problems[0]) if exc.problems else ""
            raise StartupError(
                f"routing policy {self.settings.policy_file} is not valid"
                f" ({len(exc.problems)} problem(s), first: {first});"
                " fix it (barid policy check FILE) and start again"
            ) from None
        self.policy = policy
        await self._start_smtp(keys, audit_key)

        http_sock = bind(self.settings.http.listen, self.settings.http.port)
        self.http_port = http_sock.getsockname()[1]
        config = uvicorn.Config(
            build_app(
                self.engine,
                verification=VerificationService(
                    self.sessions, keys.verification_keys, current_key_id=keys.signing_key_id
                ),
                radar=Radar(
                    RadarLimits(
                        per_minute=self.settings.http.verify_lookups_per_minute,
                        failures=self.settings.http.verify_failures_per_10_minutes,
                    ),
                    alerts=audit_alerts(self.sessions, audit_key),
                ),
                client_setup=ClientSetup(self.mail_endpoints(), lambda: self.snapshot),
            ),
            log_config=None,
            lifespan="off",
            access_log=False,
            server_header=False,
            http=fair_protocol(
                SlotTable(
                    self.settings.http.max_connections,
                    self.settings.http.max_connections_per_address,
                )
            ),
            timeout_graceful_shutdown=int(self.settings.server.shutdown_grace_seconds),
        )
        self._http = _Uvicorn(config)
        self._tasks.append(asyncio.create_task(self._http.serve(sockets=[http_sock])))
        self._tasks.append(asyncio.create_task(self._watch_directory()))
        while not self._http.started:
            if self._tasks[0].done():
                raise StartupError("HTTP listener failed to start")
            await asyncio.sleep(0.01)
        metrics.UP.set(1)
        log.info(
            "listening",
            extra={
                "listener": "http",
                "address": self.settings.http.listen,
                "port": self.http_port,
            },
        )

    async def _check_durability(self) -> None:
        """Refuse a PostgreSQL that may lose commits: a 250 must mean on disk."""
        try:
            problems = await durability_problems(self.engine)
        except Exception:
            log.exception("database unavailable at start-up")
            raise StartupError("database unavailable (see the log)") from None
        if not problems:
            return
        if self.settings.database.allow_unsafe_durability:
            log.warning("database durability off (allowed for tests)",
                        extra={"settings": ", ".join(problems)})  # fmt: skip
            return
        raise StartupError(
            f"PostgreSQL runs with {' and '.join(problems)}: a crash could lose acknowledged"
            " mail; turn it back on (see docs/OPERATIONS.md)"
        )

    async def _start_smtp(self, keys: GatewayKeys, audit_key: bytes) -> None:
        settings = self.settings
        try:
            tls = load_server_context(settings.tls_cert, settings.tls_key)
        except KeyFileError as exc:
            raise StartupError(f"tls: {exc}") from None
        try:
            self.federation = Federation.load(settings)
        except PeerConfigError as exc:
            raise StartupError(str(exc)) from None
        removed = await asyncio.to_thread(clear_spool, settings.data_dir / SPOOL_DIR_NAME)
        if removed:
            log.info("removed temporary message files of a previous run", extra={"files": removed})
        store = MessageStore(self.sessions, keys.master_key, audit_key)
        self.store = store
        assert self.directory is not None
        login = settings.login
        authenticator = Authenticator(
            self.directory,
            rules=ThrottleRules(
                window=login.window_seconds,
                per_pair=login.failures_per_address_and_account,
                per_address=login.failures_per_address,
                per_account=login.failures_per_account,
                slowdown_max=login.slowdown_max_seconds,
                known_per_account=login.known_addresses_per_account,
            ),
            audit=audit_lockouts(self.sessions, audit_key),
        )
        self.authenticator = authenticator
        pipeline = SubmissionPipeline(
            directory=self.directory,
            sessions=self.sessions,
            policy=self._policy_holder,
            store=store,
            stamper=Stamper(keys, settings.http.public_url, keys.derive(TRACE_KEY_PURPOSE)),
            federation=settings.federation,
            limits=MimeLimits(
                max_message_bytes=settings.smtp.max_message_size,
                max_parts=settings.smtp.max_mime_parts,
                max_depth=settings.smtp.max_mime_depth,
            ),
            data_dir=settings.data_dir,
            min_free_bytes=settings.smtp.min_free_disk_mb * 1024 * 1024,
            openpgp_backend=settings.keys.openpgp_backend,
            directory_version=lambda: self.snapshot_version,
            mailservers=settings.agency_mailservers,
        )
        self.pipeline = pipeline
        handler = SubmissionHandler(
            self.directory,
            self._policy_holder,
            pipeline,
            max_recipients=settings.smtp.max_recipients,
            sent_last_hour=pipeline.sent_last_hour,
            record_refusal=store.record_rejection,
            authenticator=authenticator,
        )
        shared = self._smtp_shared(line_rule=True)
        for name, port, implicit in (
            ("submission", settings.smtp.submission_port, False),
            ("smtps", settings.smtp.smtps_port, True),
        ):
            listener = await start_listener(
                name,
                bind(settings.smtp.listen, port),
                handler,
                hostname=settings.server.hostname,
                tls_context=tls,
                implicit_tls=implicit,
                max_message_size=settings.smtp.max_message_size,
                shared=shared,
            )
            self._smtp.append(listener)
            self.smtp_ports[name] = listener.port
            log.info(
                "listening",
                extra={"listener": name, "address": settings.smtp.listen, "port": listener.port},
            )

        await self._start_mail(keys, audit_key, authenticator, tls, pipeline)

    async def _start_mail(
        self,
        keys: GatewayKeys,
        audit_key: bytes,
        authenticator: Authenticator,
        tls: ssl.SSLContext,
        pipeline: SubmissionPipeline,
    ) -> None:
        """Mailboxes: the IMAP listeners and the local delivery / receipts worker."""
        settings = self.settings
        assert self.directory is not None and self.store is not None
        cipher = BlobCipher(derive_key(keys.master_key, BLOB_KEK_PURPOSE))
        self.mailboxes = MailboxStore(self.sessions, cipher, self.notifier)
        self.notifier.start_listening(self.engine)
        signers: dict[str, DkimSigner] = {}

        def signer_for(domain: str) -> DkimSigner | None:
            if domain not in signers:
                try:
                    signers[domain] = DkimSigner(keys, domain, settings.keys.dkim_selector)
                except ValueError:  # not a DNS name DKIM can sign for
                    log.warning("receipts for this agency domain cannot be DKIM-signed")
                    return None
            return signers[domain]

        self.worker = MailWorker(
            self.sessions,
            cipher,
            self.mailboxes,
            describe=DESCRIBE,
            signer_for=signer_for,
            verify_url=pipeline.stamper.verify_url,
            hostname=settings.server.hostname,
            audit_key=audit_key,
        )
        await self._start_federation(keys, audit_key, cipher, signer_for)
        self.worker.start()
        ctx = ImapContext(
            store=self.mailboxes,
            authenticator=authenticator,
            access=AccessRecorder(self.sessions, audit_key),
            employee_id=self.directory.active_employee_id,
        )
        imap = settings.imap
        self.imap = ImapService(
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
            self.imap_ports[name] = await self.imap.start_listener(
                name, bind(imap.listen, port), implicit_tls=implicit
            )
            log.info(
                "listening",
                extra={"listener": name, "address": imap.listen, "port": self.imap_ports[name]},
            )

    async def _start_federation(
        self,
        keys: GatewayKeys,
        audit_key: bytes,
        cipher: BlobCipher,
        signer_for: Callable[[str], DkimSigner | None],
    ) -> None:
        """The transfer listener (mutual TLS) and the remote delivery worker."""
        settings = self.settings
        assert self.federation is not None and self.worker is not None
        assert self.mailboxes is not None and self.store is not None
        worker = self.worker
        self.relay = RelayWorker(
            self.sessions,
            cipher,
            self.federation,
            _mail_servers(settings),
            delivery=settings.delivery,
            signer_for=signer_for,
            tls_cert=settings.tls_cert,
            tls_key=settings.tls_key,
            hostname=settings.server.hostname,
            audit_key=audit_key,
            on_receipts=worker.wake,
        )
        relay = self.relay

        def accepted() -> None:
            worker.wake()
            relay.wake()

        self.store.on_accepted = accepted
        relay.start()
        try:
            tls = self.federation.server_context(settings.tls_cert, settings.tls_key)
        except (KeyFileError, ssl.SSLError, ValueError) as exc:
            raise StartupError(f"transfer TLS: {exc}") from None
        store = FederationStore(self.sessions, cipher, self.mailboxes, audit_key)
        handler = TransferHandler(
            self.federation,
            self._policy_holder,
            store,
            describe=worker.describe,
            signer_for=signer_for,
            hostname=settings.server.hostname,
            record_refusal=store.record_refusal,
        )
        listener = await start_listener(
            "transfer",
            bind(settings.smtp.listen, settings.smtp.transfer_port),
            handler,
            hostname=settings.server.hostname,
            tls_context=tls,
            implicit_tls=False,
            # A copy is the original (at most max_message_size) inside its envelope.
            max_message_size=settings.smtp.max_message_size + TRANSFER_ENVELOPE_ALLOWANCE,
            # Copies embed originals verbatim, labelled "binary" when a line is over
            # 998 octets (gateway.stamp.envelope), so the line rule is off here.
            shared=self._smtp_shared(line_rule=False),
            protocol=TransferSMTP,
        )
        self._smtp.append(listener)
        self.smtp_ports["transfer"] = listener.port
        log.info(
            "listening",
            extra={"listener": "transfer", "address": settings.smtp.listen, "port": listener.port},
        )

    def mail_endpoints(self) -> MailEndpoints:
        """What clients are told (autoconfig): the host name and the ports listened on."""
        return MailEndpoints(
            hostname=self.settings.server.hostname,
            imaps_port=self.imap_ports["imaps"],
            imap_port=self.imap_ports["imap"],
            smtps_port=self.smtp_ports["smtps"],
            submission_port=self.smtp_ports["submission"],
        )

    def _smtp_shared(self, *, line_rule: bool) -> SmtpShared:
        """Slots, in-flight budget and limits for one group of SMTP listeners."""
        smtp = self.settings.smtp
        return shared_for(
            max_connections=smtp.max_connections,
            per_address=smtp.max_connections_per_address,
            budget_bytes=self.settings.smtp_inflight_bytes,
            limits=SessionLimits(
                idle_timeout=smtp.idle_timeout_seconds,
                command_timeout=smtp.command_timeout_seconds,
                data_timeout=smtp.data_timeout_seconds,
                min_data_rate=smtp.min_data_rate,
                rate_window=smtp.data_rate_window_seconds,
                tls_handshake_timeout=smtp.tls_handshake_timeout_seconds,
                spool_threshold=smtp.spool_threshold_bytes,
                spool_dir=self.settings.data_dir / SPOOL_DIR_NAME,
                line_rule=line_rule,
            ),
        )

    async def _stop_imap(self, grace: float) -> None:
        """The IMAP side of the graceful stop (gateway.imap.server says BYE and closes)."""
        if self.imap is not None:
            await self.imap.close_gracefully(grace)

    def _policy_holder(self) -> PolicyHolder:
        assert self.policy is not None
        return self.policy.holder

    async def refresh_snapshot(self) -> bool:
        """Reload the directory snapshot if it changed; swap it in whole, rebind the policy."""
        assert self.directory is not None
        async with self.sessions() as session:
            version = await read_version(session)
        if version == self.snapshot_version:
            return False
        snapshot = await self.directory.snapshot()
        self.snapshot, self.snapshot_version = snapshot, version
        if self.policy is not None:
            await self.policy.rebind(snapshot)
        metrics.DIRECTORY_VERSION.set(version)
        metrics.DIRECTORY_SIZE.labels("agencies").set(len(snapshot.agencies))
        metrics.DIRECTORY_SIZE.labels("employees").set(len(snapshot.employees))
        return True

    async def _watch_directory(self) -> None:
        while True:
            await asyncio.sleep(SNAPSHOT_POLL_SECONDS)
            try:
                await self.refresh_snapshot()
            except Exception:
                log.warning("directory refresh failed; keeping the current snapshot", exc_info=True)
            try:
                if self.policy is not None:
                    await self.policy.reload_if_changed()
            except Exception:
                log.warning("policy file check failed; keeping the running policy", exc_info=True)

    async def stop(self) -> None:
        """The graceful stop: no new connections anywhere, then SMTP and IMAP sessions
        are closed with a reply (SMTP `421 4.3.2`, IMAP `* BYE`; a message being
        received has the grace period to finish) while HTTP finishes its requests in
        the same period (so the whole stop stays within one grace period plus the
        workers' stop), then the workers and the database."""
        grace = self.settings.server.shutdown_grace_seconds
        if self._http is not None:
            self._http.should_exit = True
        for listener in self._smtp:
            listener.server.close()
        await asyncio.gather(stop_listeners(self._smtp, grace), self._stop_imap(grace))
        if self.authenticator is not None:
            await self.authenticator.drain()
        if self.store is not None:
            await self.store.close()
        if self.relay is not None:
            await self.relay.stop()
        if self.worker is not None:
            await self.worker.stop()
            await self.worker.close()
        await self.notifier.stop()
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        metrics.UP.set(0)
        await self.engine.dispose()


def _mail_servers(settings: Settings) -> dict[str, ImapServer]:
    """The agencies' own IMAP servers, passwords read from their files."""
    out = {}
    for name, conf in settings.mailservers.items():
        try:
            password = Path(conf.password_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise StartupError(
                f"mailservers.{name}: cannot read password_file {conf.password_file}"
                f" ({exc.strerror})"
            ) from None
        try:
            out[name] = ImapServer(
                name=name,
                host=conf.host,
                port=conf.port,
                tls=conf.tls,
                ca_file=Path(conf.tls_ca) if conf.tls_ca else None,
                server_name=conf.tls_server_name,
                login=conf.login,
                password=password,
                folder=conf.folder,
                timeout=settings.delivery.timeout_seconds,
            )
        except ValueError as exc:
            raise StartupError(f"mailservers.{name}: {exc}") from None
    return out


PID_FILE = "barid.pid"


def claim_pid_file(path: Path) -> None:
    """Write our pid; refuse when another live gateway holds the file."""
    try:
        other = int(path.read_text().strip())
    except (OSError, ValueError):
        other = 0
    if other and other != os.getpid():
        try:
            os.kill(other, 0)
        except ProcessLookupError:
            pass  # stale
        except PermissionError:
            raise StartupError(
                f"another gateway runs with this data directory (pid {other})"
            ) from None
        else:
            raise StartupError(f"another gateway runs with this data directory (pid {other})")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path)


def release_pid_file(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text().strip()) == os.getpid():
            path.unlink()


def tune_garbage_collector() -> None:
    """A long-running server: the objects made at start-up (modules, the directory
    snapshot, the policy) are frozen out of collection, and the young generation is
    collected less often. Answering a FETCH of a thousand headers allocates many
    short-lived objects; CPython's default threshold (700) made collection a sixth
    of that work. Reference counting still frees almost everything at once."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


async def run(settings: Settings) -> None:
    """Start everything, wait for SIGTERM or SIGINT, stop cleanly. SIGHUP reloads the policy."""
    pid_file = settings.data_dir / PID_FILE
    # Once the pid file names this process, `barid policy reload` may send SIGHUP;
    # until its handler is in place the signal waits (blocked) instead of killing
    # a gateway that is still starting.
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        claim_pid_file(pid_file)
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    gateway = Gateway(settings)
    try:
        try:
            await gateway.start()
        except BaseException:
            await gateway.stop()
            raise
        tune_garbage_collector()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        reloads: set[asyncio.Task[object]] = set()

        def on_hup() -> None:
            if gateway.policy is None:
                return
            task = asyncio.create_task(gateway.policy.reload("sighup"))
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
        try:
            await stop.wait()
            log.info("shutting down")
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await asyncio.gather(*reloads, return_exceptions=True)
            await gateway.stop()
    finally:
        release_pid_file(pid_file)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    log.info("stopped")
