"""`barid init`: data directory, configuration file, keys, TLS, policy, database,
the audit head's seal.

Owns: the idempotent set-up sequence; every step creates only what is missing
and reports what it did. Must not: overwrite anything that exists.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from admin.errors import CliError
from gateway.config import ConfigError, Settings, load_settings, render_toml
from gateway.store import audit, audit_checkpoints, migrate
from gateway.store.cluster_state import ClusterMismatch, check_master_key
from gateway.store.db import create_engine, session_factory, transaction
from gateway.store.signing_keys import publish_if_empty
from keys.cluster_keys import key_check_value
from keys.gateway_keys import ensure_gateway_keys, load_gateway_keys
from keys.key_files import KeyFileError
from keys.tls import ensure_dev_certificate

# The demo's routing policy, shipped inside the package (config/policies.yaml in a
# checkout is a link to it), so a plain `pip install .` can run `barid demo`.
SHIPPED_POLICY = Path(__file__).resolve().parent / "data" / "policies.yaml"
CONFIG_NAME = "barid.toml"


@dataclass
class InitReport:
    data_dir: Path
    config_file: Path
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "data_dir": str(self.data_dir),
            "config_file": str(self.config_file),
            "created": self.created,
            "unchanged": self.unchanged,
            "changed": bool(self.created),
        }

    def text(self) -> str:
        lines = [f"data directory: {self.data_dir}", f"configuration:  {self.config_file}"]
        if self.created:
            lines += [f"  created {item}" for item in self.created]
        else:
            lines.append("already initialised: nothing to do")
        return "\n".join(lines)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def resolve(data_dir: str | None, config: str | None) -> tuple[Path, Path | None]:
    """(config file to use or create, the data dir requested on the command line)."""
    if data_dir is not None:
        base = Path(data_dir).expanduser().resolve()
        return base / CONFIG_NAME, base
    if config is not None or os.environ.get("BARID_CONFIG"):
        return Path(config or os.environ["BARID_CONFIG"]).expanduser().resolve(), None
    try:
        settings = load_settings(None)
    except ConfigError as exc:
        raise CliError(f"configuration: {exc}", 2) from None
    return settings.data_dir / CONFIG_NAME, settings.data_dir


DEFAULT_POLICY = """\
# Barid routing policy: who may address whom. Every message is denied until a
# rule allows it. See docs/POLICIES.md for the language and config/policies.yaml
# for a complete example; check a file with `barid policy check FILE`.
version: 1
default: deny
rules: []
"""


async def initialise(
    data_dir: str | None,
    config: str | None,
    *,
    config_overrides: dict[str, Any] | None = None,
    policy_template: Path | None = None,
) -> tuple[InitReport, Settings]:
    """Create whatever is missing; `config_overrides` and `policy_template` only
    shape files that do not exist yet (the demo uses them)."""
    config_file, wanted_dir = resolve(data_dir, config)
    report = InitReport(data_dir=wanted_dir or config_file.parent, config_file=config_file)
    _ensure_config_file(report, config_file, wanted_dir, config_overrides)
    try:
        settings = load_settings(config_file)
    except ConfigError as exc:
        raise CliError(f"configuration: {exc}", 2) from None
    report.data_dir = settings.data_dir

    if not settings.data_dir.exists():
        settings.data_dir.mkdir(mode=0o700, parents=True)
        report.created.append(f"data directory {settings.data_dir}")
    _ensure_keys(report, settings)
    _ensure_tls(report, settings)
    _ensure_policy(report, settings, policy_template)
    await _ensure_schema(report, settings)
    return report, settings


def _ensure_config_file(
    report: InitReport,
    config_file: Path,
    wanted_dir: Path | None,
    config_overrides: dict[str, Any] | None,
) -> None:
    if config_file.exists():
        report.unchanged.append(f"configuration file {config_file}")
        return
    if wanted_dir is None:
        raise CliError(f"{config_file}: configuration file not found")
    wanted_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    overrides: dict[str, Any] = {"server": {"data_dir": "."}}
    overrides.update(config_overrides or {})
    _write_private(config_file, render_toml(overrides))
    report.created.append(f"configuration file {config_file}")


def _ensure_keys(report: InitReport, settings: Settings) -> None:
    try:
        keys = ensure_gateway_keys(settings.keys_dir)
    except KeyFileError as exc:
        raise CliError(f"gateway keys: {exc}") from None
    report.created += [f"key {settings.keys_dir / name}" for name in keys.created]
    if keys.present:
        report.unchanged.append(f"keys in {settings.keys_dir}")


def _ensure_tls(report: InitReport, settings: Settings) -> None:
    """A configured certificate must exist; without one, make the development one."""
    if settings.tls.cert:
        for path in (settings.tls_cert, settings.tls_key):
            if not path.exists():
                raise CliError(f"tls: {path} does not exist")
        report.unchanged.append("configured TLS certificate")
        return
    settings.tls_cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        made = ensure_dev_certificate(settings.tls_cert, settings.tls_key, settings.server.hostname)
    except KeyFileError as exc:
        raise CliError(f"tls: {exc}") from None
    if made:
        report.created.append(f"development TLS certificate {settings.tls_cert}")
    else:
        report.unchanged.append("development TLS certificate")


def _ensure_policy(report: InitReport, settings: Settings, policy_template: Path | None) -> None:
    """A configured policy file must exist; the default one is made from the template
    (the demo's) or denies everything."""
    if settings.policy_file.exists():
        report.unchanged.append("routing policy")
        return
    if settings.policy.file:
        raise CliError(f"policy: {settings.policy_file} does not exist")
    if policy_template is not None:
        shutil.copyfile(policy_template, settings.policy_file)
        report.created.append(
            f"routing policy {settings.policy_file} (from {policy_template.name})"
        )
    else:
        _write_private(settings.policy_file, DEFAULT_POLICY)
        report.created.append(f"routing policy {settings.policy_file} (deny everything)")


async def _ensure_schema(report: InitReport, settings: Settings) -> None:
    """Bring the database schema to the newest revision (a SQLite file is made 0600)."""
    if not settings.database.url:
        db_file = settings.data_dir / "barid.db"
        if not db_file.exists():
            # Created private before SQLite opens it: it holds password hashes.
            os.close(os.open(db_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    engine = create_engine(settings.database_url)
    try:
        before = await migrate.current_revision(engine)
        head = migrate.head_revision()
        if before != head:
            await migrate.upgrade(engine)
            report.created.append(f"database schema {before or 'empty'} -> {head}")
        else:
            report.unchanged.append(f"database schema at {head}")
        await _seal_audit_head(report, settings, engine)
    except (SQLAlchemyError, OSError) as exc:
        raise CliError(f"database unavailable ({type(exc).__name__})") from None
    finally:
        await engine.dispose()


INIT_ACTOR = "cli:init"


async def _seal_audit_head(report: InitReport, settings: Settings, engine: AsyncEngine) -> None:
    """Seal an audit head that has no MAC (a new database, or one from before the
    head MAC); when the chain already holds events, sign a first checkpoint too, so
    the chain itself shows a seal exists. Nothing happens on a sealed head."""
    try:
        keys = load_gateway_keys(settings.keys_dir)
    except KeyFileError as exc:
        raise CliError(f"gateway keys: {exc}") from None
    # Before anything is written: a node whose master key differs from the one the
    # database was made with would seal and chain with the wrong key.
    try:
        if await check_master_key(session_factory(engine), key_check_value(keys.master_key)):
            report.created.append("master key check value in the database")
        if await publish_if_empty(session_factory(engine), keys):
            report.created.append("token signing key set in the database")
    except ClusterMismatch as exc:
        raise CliError(str(exc)) from None
    audit_key = keys.derive(audit.AUDIT_KEY_PURPOSE)
    async with transaction(session_factory(engine)) as session:
        if not await audit.seal_head(session, audit_key):
            return
        report.created.append("audit head seal")
        if await audit_checkpoints.last_checkpoint(session) is not None:
            return
        if await audit.chain_length(session) == 0:
            return
        facts = await audit_checkpoints.write_checkpoint(
            session,
            audit_key,
            keys.signing_key,
            keys.signing_key_id,
            node=settings.server.hostname,
            actor=INIT_ACTOR,
        )
        report.created.append(f"audit checkpoint at event {facts.event_id}")
