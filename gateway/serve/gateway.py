"""`Gateway`: every listener and worker of `barid serve` on one asyncio loop.

Owns: the start order, visible in `start` at one level (one start function per
listener or worker, from gateway.serve.listeners, .workers and .services), the
directory snapshot refresher, and the graceful stop. Must not: parse mail or
decide policy. Call order: `Gateway(settings)` -> `await start()` -> ... ->
`await stop()`.
"""

from __future__ import annotations

import asyncio
import logging

from gateway import metrics
from gateway.alerts.evaluator import AlertEvaluator
from gateway.alerts.mailer import AlertMailer
from gateway.checks.policy import PolicyRuntime
from gateway.config import Settings
from gateway.delivery.local import MailWorker
from gateway.delivery.relay import RelayWorker
from gateway.federation.peers import Federation
from gateway.http.clientconfig.model import MailEndpoints
from gateway.imap.access import AccessRecorder
from gateway.imap.backend import ImapContext
from gateway.imap.server import ImapService
from gateway.intake.acceptance import SubmissionPipeline
from gateway.intake.login import Authenticator
from gateway.intake.smtp.listeners import Listener, stop_listeners
from gateway.intake.submission import SubmissionHandler
from gateway.logs import node_name
from gateway.serve import listeners, services, workers
from gateway.serve.admin_hook import AdminAppFactory, AdminResources
from gateway.serve.audit_checkpointer import AuditCheckpointer
from gateway.serve.audit_linker import AuditLinker
from gateway.serve.key_ring import KeyRing
from gateway.serve.listeners import QuietUvicorn
from gateway.serve.sockets import StartupError
from gateway.store.audit import AUDIT_KEY_PURPOSE
from gateway.store.audit import set_node as set_audit_node
from gateway.store.blobs import BLOB_KEK_PURPOSE, BlobCipher
from gateway.store.blobstore import DATABASE_ONLY, BlobStoreError, BlobStores, stores_from_settings
from gateway.store.blobstore.gc import collect_forever
from gateway.store.counters import COUNTER_KEY_PURPOSE
from gateway.store.db import create_engine, session_factory
from gateway.store.directory import Directory
from gateway.store.directory import directory_version as read_version
from gateway.store.mailbox.notify import MailboxNotifier
from gateway.store.mailbox.store import MailboxStore
from gateway.store.messages import MessageStore
from keys.gateway_keys import GatewayKeys, derive_key
from policies.directory import DirectorySnapshot
from policies.holder import PolicyHolder

log = logging.getLogger("barid.serve")
SNAPSHOT_POLL_SECONDS = 2.0


class Gateway:
    def __init__(self, settings: Settings, admin_app: AdminAppFactory | None = None) -> None:
        self.settings = settings
        self._admin_app = admin_app  # None: no admin listener (e.g. in-process tests)
        self._admin: QuietUvicorn | None = None
        self._admin_task: asyncio.Task[None] | None = None
        self.admin_port = 0
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
        self._tasks: list[asyncio.Task[None]] = []  # HTTP first, then the refresher
        self._http: QuietUvicorn | None = None
        self.directory: Directory | None = None
        self.policy: PolicyRuntime | None = None
        self.store: MessageStore | None = None
        self.blob_stores: BlobStores = DATABASE_ONLY
        self._blob_gc: asyncio.Task[None] | None = None
        self.authenticator: Authenticator | None = None
        self.pipeline: SubmissionPipeline | None = None
        self.checkpointer: AuditCheckpointer | None = None
        self.linker: AuditLinker | None = None
        self.alert_rules: AlertEvaluator | None = None
        self.key_ring: KeyRing | None = None

    async def start(self) -> None:
        """Start everything, in this order; a failure raises StartupError (then `stop`)."""
        settings, sessions = self.settings, self.sessions
        set_audit_node(node_name(settings.server.node_id))  # named in the events it appends
        keys = await self._checked_keys()
        audit_key = keys.derive(AUDIT_KEY_PURPOSE)
        await self._start_directory_and_policy(audit_key)
        tls = services.load_tls(settings)
        self.federation = federation = services.load_federation(settings)
        await services.clear_spool_of_last_run(settings)
        self._start_blob_stores()
        pipeline = self._build_submission(keys, audit_key)
        # The listeners and workers, one start function each, in start order.
        self._add_smtp(
            await listeners.start_submission_listeners(settings, self._submission_handler(), tls)
        )
        cipher = BlobCipher(derive_key(keys.master_key, BLOB_KEK_PURPOSE), self.blob_stores)
        self.mailboxes = mailboxes = MailboxStore(sessions, cipher, self.notifier)
        self.notifier.start_listening(self.engine)
        signer_for = workers.DkimSigners(keys, settings.keys.dkim_selector)
        self.worker = worker = workers.build_mail_worker(
            settings,
            sessions,
            cipher,
            mailboxes,
            signer_for=signer_for,
            verify_url=pipeline.stamper.verify_url,
            audit_key=audit_key,
        )
        assert self.store is not None and self.key_ring is not None
        self.relay = workers.start_relay_worker(
            settings,
            sessions,
            cipher,
            federation,
            store=self.store,
            worker=worker,
            signer_for=signer_for,
            audit_key=audit_key,
        )
        transfer = await listeners.start_transfer_listener(
            settings,
            federation,
            sessions=sessions,
            cipher=cipher,
            mailboxes=mailboxes,
            policy=self._policy_holder,
            describe=worker.describe,
            signer_for=signer_for,
            audit_key=audit_key,
        )
        self._add_smtp([transfer])
        worker.start()
        self._start_audit_tasks(keys, audit_key)
        mailer = AlertMailer(
            settings.alerts, sessions, mailboxes, cipher,
            describe=worker.describe, hostname=settings.server.hostname,
            signer_for=signer_for,
        )  # fmt: skip
        self.alert_rules = AlertEvaluator(settings.alerts, sessions, audit_key, mailer=mailer)
        self.alert_rules.start()
        self.imap = await listeners.start_imap_listeners(
            settings, self._imap_context(audit_key), tls, self.imap_ports
        )
        # The public HTTP listener starts last: once /healthz answers, every
        # listener is up and barid_up is 1.
        await self._start_admin(keys)
        metrics.UP.set(1)
        self._http, http_task, self.http_port = await listeners.start_http_listener(
            settings,
            self.engine,
            sessions=sessions,
            keys=self.key_ring,
            audit_key=audit_key,
            endpoints=self.mail_endpoints(),
            snapshot=lambda: self.snapshot,
        )
        self._tasks += [http_task, asyncio.create_task(self._watch_directory())]

    async def _checked_keys(self) -> GatewayKeys:
        """The keys from the files, once the database is checked: schema, durability,
        this node's master key and cluster-wide configuration (before anything is
        written); then with the database's token key set applied, kept current by
        the key ring."""
        keys = services.load_keys(self.settings)
        await services.check_database(self.settings, self.engine)
        await services.check_cluster(self.settings, self.sessions, keys)
        keys = await services.shared_keys(self.sessions, keys)
        self.key_ring = KeyRing(self.sessions, keys)
        return keys

    def _start_blob_stores(self) -> None:
        """The configured blob stores and their collector (gateway.store.blobstore.gc)."""
        try:
            self.blob_stores = stores_from_settings(self.settings)
        except BlobStoreError as exc:
            raise StartupError(f"blob store: {exc}") from None
        conf = self.settings.blobs
        if self.blob_stores.by_scheme and conf.gc_interval_seconds:
            self._blob_gc = asyncio.create_task(
                collect_forever(
                    self.engine,
                    self.sessions,
                    self.blob_stores,
                    grace_seconds=conf.gc_grace_seconds,
                    interval_seconds=conf.gc_interval_seconds,
                    lock_path=self.settings.data_dir / "blob-gc.lock",
                ),
                name="barid-blob-gc",
            )

    def _start_audit_tasks(self, keys: GatewayKeys, audit_key: bytes) -> None:
        """The periodic checkpoint, and (PostgreSQL) the linker of staged events."""
        self.checkpointer = AuditCheckpointer(self.settings, self.sessions, keys, audit_key)
        self.checkpointer.start()
        self.linker = AuditLinker(self.sessions, audit_key)
        self.linker.start()

    async def _start_admin(self, keys: GatewayKeys) -> None:
        """The admin listener, when `barid serve` gave the app's factory."""
        if self._admin_app is None:
            return
        assert self.directory is not None and self.authenticator is not None
        app = self._admin_app(
            AdminResources(
                self.settings,
                self.engine,
                self.sessions,
                keys,
                self.directory,
                self.authenticator,
                self.blob_stores,
                self.key_ring.watch if self.key_ring is not None else None,
            )
        )
        self._admin, self._admin_task, self.admin_port = await listeners.start_admin_listener(
            self.settings, app
        )

    async def _start_directory_and_policy(self, audit_key: bytes) -> None:
        """The directory and its first snapshot, then the routing policy bound to it."""
        self.directory = Directory(self.sessions, audit_key)
        await self.refresh_snapshot()
        assert self.snapshot is not None
        self.policy = await services.start_policy(
            self.settings, self.sessions, audit_key, self.snapshot
        )
        self.policy.start_watching(self.engine)

    def _build_submission(self, keys: GatewayKeys, audit_key: bytes) -> SubmissionPipeline:
        """The message store, the login throttle and the submission pipeline."""
        assert self.directory is not None
        self.store = MessageStore(self.sessions, keys.master_key, audit_key, self.blob_stores)
        self.authenticator = services.build_authenticator(
            self.settings,
            self.directory,
            self.sessions,
            audit_key,
            keys.derive(COUNTER_KEY_PURPOSE),
        )
        assert self.key_ring is not None
        self.pipeline = services.build_pipeline(
            self.settings,
            self.key_ring,
            directory=self.directory,
            sessions=self.sessions,
            store=self.store,
            policy=self._policy_holder,
            directory_version=lambda: self.snapshot_version,
        )
        return self.pipeline

    def _add_smtp(self, started: list[Listener]) -> None:
        for listener in started:
            self._smtp.append(listener)
            self.smtp_ports[listener.name] = listener.port

    def _submission_handler(self) -> SubmissionHandler:
        assert self.directory is not None and self.store is not None
        assert self.pipeline is not None
        return SubmissionHandler(
            self.directory,
            self._policy_holder,
            self.pipeline,
            max_recipients=self.settings.smtp.max_recipients,
            sent_last_hour=self.pipeline.sent_last_hour,
            record_refusal=self.store.record_rejection,
            authenticator=self.authenticator,
        )

    def _imap_context(self, audit_key: bytes) -> ImapContext:
        assert self.mailboxes is not None and self.directory is not None
        assert self.authenticator is not None
        return ImapContext(
            store=self.mailboxes,
            authenticator=self.authenticator,
            access=AccessRecorder(self.sessions, audit_key),
            employee_id=self.directory.active_employee_id,
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
                if self.key_ring is not None:
                    await self.key_ring.refresh()  # a rotation on another node
            except Exception:
                log.warning("token key refresh failed; keeping the current keys", exc_info=True)
            try:
                if self.policy is not None:
                    await self.policy.reload_if_changed()
            except Exception:
                log.warning("policy file check failed; keeping the running policy", exc_info=True)

    async def _stop_imap(self, grace: float) -> None:
        """The IMAP side of the graceful stop (gateway.imap.server says BYE and closes)."""
        if self.imap is not None:
            await self.imap.close_gracefully(grace)

    async def stop(self) -> None:
        """The graceful stop: no new connections anywhere, then SMTP and IMAP sessions
        are closed with a reply (SMTP `421 4.3.2`, IMAP `* BYE`; a message being
        received has the grace period to finish) while HTTP finishes its requests in
        the same period (so the whole stop stays within one grace period plus the
        workers' stop), then the workers and the database."""
        grace = self.settings.server.shutdown_grace_seconds
        for server in (self._http, self._admin):
            if server is not None:
                server.should_exit = True
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
        if self.checkpointer is not None:
            await self.checkpointer.stop()
        if self.linker is not None:
            await self.linker.stop()
        if self.alert_rules is not None:
            await self.alert_rules.stop()
        await self.notifier.stop()
        if self.policy is not None:
            await self.policy.stop()
        for task in self._tasks[1:]:
            task.cancel()
        admin = [self._admin_task] if self._admin_task is not None else []
        await asyncio.gather(*self._tasks, *admin, return_exceptions=True)
        metrics.UP.set(0)
        if self._blob_gc is not None:
            self._blob_gc.cancel()
            await asyncio.gather(self._blob_gc, return_exceptions=True)
        await self.blob_stores.close()
        await self.engine.dispose()
