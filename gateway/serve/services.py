"""The services behind the listeners of `barid serve`, built once at start-up.

Owns: checking the database (schema at head, durable commits), starting the
routing policy, loading the server TLS context and the federation, clearing the
spool of a previous run, and building the login throttle and the submission
pipeline from the settings. Must not: bind sockets or start workers.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.checks.policy import PolicyRuntime, PolicyStartupError
from gateway.config import Settings
from gateway.config.cluster_digest import config_digests
from gateway.federation.peers import Federation, PeerConfigError
from gateway.intake.acceptance import SubmissionPipeline
from gateway.intake.lockout_events import audit_lockouts
from gateway.intake.login import Authenticator
from gateway.intake.smtp.spool import SPOOL_DIR_NAME, clear_spool
from gateway.intake.smtp.throttle import ThrottleRules
from gateway.mime.limits import MimeLimits
from gateway.serve.key_ring import KeyRing
from gateway.serve.sockets import StartupError
from gateway.stamping.stamper import Stamper
from gateway.stamping.trace import TRACE_KEY_PURPOSE
from gateway.store import migrate
from gateway.store.cluster_state import ClusterMismatch, check_config, check_master_key
from gateway.store.counters import LoginFailureCounters, SharedCounters
from gateway.store.db import durability_problems
from gateway.store.directory import Directory
from gateway.store.messages import MessageStore
from gateway.store.signing_keys import load_shared
from keys.cluster_keys import SealError, key_check_value
from keys.gateway_keys import GatewayKeys, KeyFileError, load_gateway_keys
from keys.tls import load_server_context
from policies.directory import DirectorySnapshot
from policies.holder import PolicyHolder

log = logging.getLogger("barid.serve")


def load_keys(settings: Settings) -> GatewayKeys:
    try:
        return load_gateway_keys(settings.keys_dir)
    except Exception as exc:
        raise StartupError(f"gateway keys: {exc}") from None


async def check_database(settings: Settings, engine: AsyncEngine) -> None:
    """The schema is at head, and a PostgreSQL does not lose commits: a 250 must
    mean on disk."""
    try:
        current = await migrate.current_revision(engine)
    except Exception:
        log.exception("database unavailable at start-up")
        raise StartupError("database unavailable (see the log)") from None
    if current != migrate.head_revision():
        raise StartupError(
            f"database schema at {current or 'nothing'}, expected {migrate.head_revision()};"
            " run `barid init`"
        )
    try:
        problems = await durability_problems(engine)
    except Exception:
        log.exception("database unavailable at start-up")
        raise StartupError("database unavailable (see the log)") from None
    if not problems:
        return
    if settings.database.allow_unsafe_durability:
        log.warning("database durability off (allowed for tests)",
                    extra={"settings": ", ".join(problems)})  # fmt: skip
        return
    raise StartupError(
        f"PostgreSQL runs with {' and '.join(problems)}: a crash could lose acknowledged"
        " mail; turn it back on (see docs/OPERATIONS.md)"
    )


async def check_cluster(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], keys: GatewayKeys
) -> None:
    """Before anything is written: this node's master key and, on PostgreSQL (the
    only database several nodes share), its cluster-wide configuration (policy,
    peers, mail servers) are the database's; values the database does not hold
    yet (a new or upgraded database) are recorded. A SQLite database belongs to
    one node, whose policy file edits keep becoming versions at start."""
    try:
        await check_master_key(sessions, key_check_value(keys.master_key))
        shared = not settings.database_url.startswith("sqlite")
        recorded = await check_config(sessions, config_digests(settings)) if shared else []
    except ClusterMismatch as exc:
        raise StartupError(str(exc)) from None
    except Exception:
        log.exception("database unavailable at start-up")
        raise StartupError("database unavailable (see the log)") from None
    if recorded:
        log.info("cluster configuration digests recorded", extra={"parts": ", ".join(recorded)})


async def start_policy(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    audit_key: bytes,
    snapshot: DirectorySnapshot,
) -> PolicyRuntime:
    """The routing policy, compiled against the directory; refused when invalid."""
    if not settings.policy_file.exists():
        raise StartupError(f"routing policy {settings.policy_file} does not exist")
    policy = PolicyRuntime(settings.policy_file, settings.federation, sessions, audit_key)
    try:
        await policy.start(snapshot)
    except PolicyStartupError as exc:
        for problem in exc.problems:
            log.error("policy problem", extra={"problem": str(problem)})
        first = str(exc.problems[0]) if exc.problems else ""
        raise StartupError(
            f"routing policy {settings.policy_file} is not valid"
            f" ({len(exc.problems)} problem(s), first: {first});"
            " fix it (barid policy check FILE) and start again"
        ) from None
    return policy


def load_tls(settings: Settings) -> ssl.SSLContext:
    """The server TLS context of the submission and IMAP listeners."""
    try:
        return load_server_context(settings.tls_cert, settings.tls_key)
    except KeyFileError as exc:
        raise StartupError(f"tls: {exc}") from None


def load_federation(settings: Settings) -> Federation:
    try:
        return Federation.load(settings)
    except PeerConfigError as exc:
        raise StartupError(str(exc)) from None


async def clear_spool_of_last_run(settings: Settings) -> None:
    removed = await asyncio.to_thread(clear_spool, settings.data_dir / SPOOL_DIR_NAME)
    if removed:
        log.info("removed temporary message files of a previous run", extra={"files": removed})


def build_authenticator(
    settings: Settings,
    directory: Directory,
    sessions: async_sessionmaker[AsyncSession],
    audit_key: bytes,
    counter_key: bytes,
) -> Authenticator:
    """The password check with its throttle, shared by SMTP AUTH and IMAP LOGIN (and
    the admin sign-in), its counts in the database shared by every node."""
    login = settings.login
    return Authenticator(
        directory,
        rules=ThrottleRules(
            window=login.window_seconds,
            per_pair=login.failures_per_address_and_account,
            per_address=login.failures_per_address,
            per_account=login.failures_per_account,
            slowdown_max=login.slowdown_max_seconds,
            known_per_account=login.known_addresses_per_account,
        ),
        audit=audit_lockouts(sessions, audit_key),
        counters=LoginFailureCounters(SharedCounters(sessions, counter_key), login.window_seconds),
    )


async def shared_keys(sessions: async_sessionmaker[AsyncSession], keys: GatewayKeys) -> GatewayKeys:
    """The keys with the database's token key set applied (this node's published
    first when the database has none; gateway.store.signing_keys)."""
    try:
        return await load_shared(sessions, keys)
    except SealError as exc:
        raise StartupError(f"token signing keys: {exc}") from None
    except Exception:
        log.exception("database unavailable at start-up")
        raise StartupError("database unavailable (see the log)") from None


def build_pipeline(
    settings: Settings,
    keys: KeyRing,
    *,
    directory: Directory,
    sessions: async_sessionmaker[AsyncSession],
    store: MessageStore,
    policy: Callable[[], PolicyHolder],
    directory_version: Callable[[], int],
) -> SubmissionPipeline:
    """End of data on the submission listeners: checks, stamping, acceptance."""
    return SubmissionPipeline(
        directory=directory,
        sessions=sessions,
        policy=policy,
        store=store,
        stamper=Stamper(
            keys.current(),
            settings.http.public_url,
            keys.current().derive(TRACE_KEY_PURPOSE),
            settings.marking.policy(),
            current=keys.current,
        ),
        federation=settings.federation,
        limits=MimeLimits(
            max_message_bytes=settings.smtp.max_message_size,
            max_parts=settings.smtp.max_mime_parts,
            max_depth=settings.smtp.max_mime_depth,
        ),
        data_dir=settings.data_dir,
        min_free_bytes=settings.smtp.min_free_disk_mb * 1024 * 1024,
        openpgp_backend=settings.keys.openpgp_backend,
        directory_version=directory_version,
        mailservers=settings.agency_mailservers,
    )
