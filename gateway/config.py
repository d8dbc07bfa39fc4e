"""Configuration: `config/barid.toml` defaults, a TOML file, `BARID_<SECTION>__<KEY>`.

Owns: the settings schema, their defaults and validation. Must not: create files
or open sockets; a bad setting raises `ConfigError` naming the key (exit 2).
Precedence (lowest first): built-in defaults, the TOML file, the environment.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ENV_PREFIX = "BARID_"
Port = Annotated[int, Field(ge=0, le=65535)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _f(default: Any, doc: str, **limits: Any) -> Any:
    """A setting with its default and the one-line documentation rendered into barid.toml."""
    return Field(default=default, description=doc, **limits)


class ServerSettings(_Section):
    data_dir: str = _f("./barid-data", "Data directory: database, blobs, keys, TLS, policy.")
    hostname: str = _f(
        "localhost", "Name this gateway uses in SMTP greetings and Received headers."
    )
    log_level: Literal["debug", "info", "warning", "error"] = _f("info", "Log level.")
    log_format: Literal["json", "text"] = _f(
        "json", "Log format: json (one object per line) or text."
    )
    shutdown_grace_seconds: float = _f(
        20.0,
        "On SIGTERM: seconds a message being received has to finish (idle SMTP"
        " sessions get 421 4.3.2 at once).",
        gt=0,
        le=600,
    )

    @field_validator("hostname")
    @classmethod
    def _hostname(cls, value: str) -> str:
        if not value or len(value) > 253 or any(c.isspace() for c in value):
            raise ValueError("must be a host name without spaces")
        return value


class DatabaseSettings(_Section):
    url: str = _f(
        "",
        "SQLAlchemy URL; empty means SQLite at <data_dir>/barid.db. PostgreSQL:"
        " postgresql+asyncpg://user:password@host:5432/barid",
    )
    pool_size: int = _f(5, "Connections kept open (PostgreSQL).", ge=1, le=100)
    connect_timeout_seconds: float = _f(5.0, "Give up connecting after this long.", gt=0, le=120)
    allow_unsafe_durability: bool = _f(
        False,
        "Tests only: start even when PostgreSQL runs with fsync or synchronous_commit off"
        " (a crash could then lose acknowledged mail). Never in production.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class SmtpSettings(_Section):
    listen: str = _f("127.0.0.1", "Address the SMTP listeners bind to.")
    submission_port: Port = _f(5870, "Submission with STARTTLS (production: 587).")
    smtps_port: Port = _f(4650, "Submission with implicit TLS (production: 465).")
    transfer_port: Port = _f(2525, "Gateway-to-gateway transfer / MX (production: 25).")
    max_message_size: int = _f(
        25 * 1024 * 1024, "Largest message accepted, in bytes.", ge=1024, le=1024**3
    )
    max_recipients: int = _f(100, "Recipients per message.", ge=1, le=10_000)
    max_connections: int = _f(
        200, "Concurrent SMTP sessions (over it: 421 4.7.0).", ge=1, le=100_000
    )
    max_connections_per_address: int = _f(
        20,
        "Concurrent SMTP sessions per client address (over it: 421 4.7.0). With a tenth"
        " of the slots left, an address holding a quarter of this is refused first.",
        ge=1,
        le=100_000,
    )
    idle_timeout_seconds: float = _f(
        300.0, "Close a session idle between commands this long (421 4.4.2).", gt=0, le=3600
    )
    command_timeout_seconds: float = _f(
        60.0,
        "A command line must be complete this long after its first octet (421 4.4.2).",
        gt=0,
        le=3600,
    )
    data_timeout_seconds: float = _f(
        1800.0,
        "A message must be complete this long after 354 (451 4.4.2, connection closed).",
        gt=0,
        le=86400,
    )
    min_data_rate: int = _f(
        1024,
        "Octets per second a message must arrive at, over each data_rate_window_seconds"
        " (slower: 451 4.4.2, connection closed).",
        ge=0,
        le=1024**3,
    )
    data_rate_window_seconds: float = _f(
        30.0, "Window over which min_data_rate is measured.", gt=0, le=3600
    )
    tls_handshake_timeout_seconds: float = _f(
        15.0, "A TLS handshake (implicit or STARTTLS) must finish this fast.", gt=0, le=600
    )
    max_inflight_bytes: int = _f(
        0,
        "Message bytes held in memory across all SMTP sessions; 0: four times"
        " max_message_size. A new DATA over it: 452 4.3.1.",
        ge=0,
        le=1024**4,
    )
    spool_threshold_bytes: int = _f(
        1024 * 1024,
        "A message being received beyond this many bytes goes to an encrypted temporary"
        " file in <data_dir>/spool instead of memory.",
        ge=64 * 1024,
        le=1024**3,
    )
    max_mime_parts: int = _f(100, "MIME parts per message (over it: 552 5.3.4).", ge=2, le=10_000)
    max_mime_depth: int = _f(10, "Nesting depth of multiparts (over it: 552 5.3.4).", ge=1, le=100)
    min_free_disk_mb: int = _f(
        256, "Refuse mail with 452 4.3.1 when the data disk has less free space.", ge=0
    )


class ImapSettings(_Section):
    listen: str = _f("127.0.0.1", "Address the IMAP listeners bind to.")
    port: Port = _f(1430, "IMAP with STARTTLS (production: 143).")
    imaps_port: Port = _f(9930, "IMAP with implicit TLS (production: 993).")
    max_append_size: int = _f(
        50 * 1024 * 1024,
        "Largest message a client may APPEND, in bytes (advertised as APPENDLIMIT).",
        ge=1024,
        le=2**31 - 1,
    )
    max_connections: int = _f(500, "Concurrent IMAP connections.", ge=1, le=100_000)
    max_connections_per_address: int = _f(
        50, "Concurrent IMAP connections from one client address.", ge=1, le=100_000
    )
    busy_per_address: int = _f(
        8,
        "When fewer than a fifth of max_connections are free, an address already holding"
        " this many connections gets no more.",
        ge=1,
        le=100_000,
    )
    tls_handshake_seconds: float = _f(
        15.0, "A TLS handshake (implicit TLS or STARTTLS) must end within this.", gt=0, le=300
    )
    command_timeout_seconds: float = _f(
        900.0,
        "One command, with its literals, must arrive within this after its first line"
        " (before login: 60 s).",
        gt=0,
        le=86400,
    )
    min_transfer_rate: int = _f(
        1024,
        "Literals arrive, and replies are read, at least this many bytes per second over"
        " each transfer window; slower: BYE [LIMIT].",
        ge=1,
        le=1024**3,
    )
    transfer_window_seconds: float = _f(
        30.0, "The window over which min_transfer_rate is measured.", gt=0, le=3600
    )
    max_literals_per_command: int = _f(
        1000, "Literals in one command after login (before login: 8).", ge=2, le=1_000_000
    )
    append_memory_budget: int = _f(
        256 * 1024 * 1024,
        "Literal bytes (APPEND messages) held in memory across all IMAP sessions; over it a"
        " command gets NO [LIMIT] (try again later). At least max_append_size.",
        ge=1024,
        le=2**40,
    )

    @model_validator(mode="after")
    def _budget_fits_append(self) -> ImapSettings:
        if self.append_memory_budget < self.max_append_size:
            raise ValueError("append_memory_budget must be at least max_append_size")
        return self


class LoginSettings(_Section):
    """Password logins (SMTP AUTH and IMAP LOGIN share one throttle)."""

    window_seconds: float = _f(
        900.0, "Failed logins are counted over this sliding window.", gt=0, le=86400
    )
    failures_per_address_and_account: int = _f(
        5,
        "Failures for one account from one client address; then that address is refused"
        " for that account (SMTP 454 4.7.0, IMAP NO) until the window has passed.",
        ge=1,
        le=10_000,
    )
    failures_per_address: int = _f(
        20, "Failures from one client address, any account; then it is refused.", ge=1, le=100_000
    )
    failures_per_account: int = _f(
        5,
        "Failures for one account from everywhere; then attempts from addresses the account"
        " never logged in from are slowed down (never refused; known addresses never wait).",
        ge=1,
        le=100_000,
    )
    slowdown_max_seconds: float = _f(
        30.0, "Longest slow-down (1 s, doubled with every further failure).", ge=0, le=600
    )
    known_addresses_per_account: int = _f(
        16, "Client addresses remembered per account (in memory) as known.", ge=1, le=1000
    )


class HttpSettings(_Section):
    listen: str = _f("127.0.0.1", "Address the HTTP listener binds to.")
    port: Port = _f(8080, "Admin, REST API (/api/v1), verification (/v/), /metrics, /healthz.")
    public_url: str = _f(
        "http://localhost:8080", "Base URL printed in verification links and QR codes."
    )
    max_connections: int = _f(
        1000, "Concurrent HTTP connections (over it: 503 with Retry-After).", ge=1, le=1_000_000
    )
    max_connections_per_address: int = _f(
        100,
        "Concurrent HTTP connections per client address (over it: 503 with Retry-After).",
        ge=1,
        le=1_000_000,
    )
    verify_lookups_per_minute: int = _f(
        600,
        "Verification lookups (API and /v/ pages) per client address and minute; more: 429.",
        ge=1,
        le=10_000_000,
    )
    verify_failures_per_10_minutes: int = _f(
        30,
        "Failed verification lookups (unknown or forged token, unmatched document) per"
        " client address in 10 minutes; more: 429 for its failing lookups.",
        ge=1,
        le=10_000_000,
    )

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class TlsSettings(_Section):
    cert: str = _f(
        "", "Certificate chain (PEM); empty: the development certificate in <data_dir>/tls."
    )
    key: str = _f("", "Private key (PEM); empty: the development key in <data_dir>/tls.")


class PolicySettings(_Section):
    file: str = _f("", "Routing policy (YAML); empty: <data_dir>/policies.yaml.")


class KeysSettings(_Section):
    dir: str = _f("", "Gateway keys (signing, DKIM, master); empty: <data_dir>/keys.")
    dkim_selector: str = _f(
        "barid", "DKIM selector prefix (records <prefix>-rsa, <prefix>-ed25519)."
    )
    openpgp_backend: Literal["sequoia", "gnupg"] = _f(
        "sequoia", "OpenPGP verification: sequoia (in-process) or gnupg (runs gpg per check)."
    )


_LABELS = ("public", "internal", "confidential", "secret")


def _mail_domain(value: str) -> str:
    d = value.strip().lower().rstrip(".")
    if not d or " " in d or "." not in d:
        raise ValueError(f"not a mail domain: {value!r}")
    return d


class PeerSettings(_Section):
    """A federation peer gateway (docs/CONTRACT.md §9). Only in the file: [peers.<name>].

    A peer without `host` and `tls_trust` is known to the policy (its domains are
    federated) but nothing can be transferred: copies to it wait in the queue.
    """

    domains: list[str] = Field(min_length=1)
    host: str = ""
    port: Port = 2525
    tls_trust: str = ""
    tls_fingerprints: list[str] = Field(default_factory=list)
    tls_server_name: str = ""
    dkim_domain: str = ""
    dkim_keys: str = ""
    classification_map: dict[str, str] = Field(default_factory=dict)

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        return [_mail_domain(domain) for domain in value]

    @field_validator("dkim_domain")
    @classmethod
    def _dkim_domain(cls, value: str) -> str:
        return _mail_domain(value) if value else ""

    @field_validator("host", "tls_server_name")
    @classmethod
    def _host(cls, value: str) -> str:
        if any(c.isspace() for c in value) or len(value) > 253:
            raise ValueError("must be a host name or address without spaces")
        return value

    @field_validator("tls_fingerprints")
    @classmethod
    def _fingerprints(cls, value: list[str]) -> list[str]:
        out = []
        for text in value:
            hexed = text.strip().lower().removeprefix("sha256:").replace(":", "")
            if len(hexed) != 64 or any(c not in "0123456789abcdef" for c in hexed):
                raise ValueError(f"not a SHA-256 fingerprint: {text!r}")
            out.append(hexed)
        return out

    @field_validator("classification_map")
    @classmethod
    def _classification_map(cls, value: dict[str, str]) -> dict[str, str]:
        out = {}
        for theirs, ours in value.items():
            if ours.strip().lower() not in _LABELS:
                raise ValueError(
                    f"{theirs!r} maps to {ours!r}; expected one of: {', '.join(_LABELS)}"
                )
            out[theirs.strip().lower()] = ours.strip().lower()
        return out

    @property
    def transfer_ready(self) -> bool:
        """Whether copies can be transferred: a host and a TLS trust anchor."""
        return bool(self.host and self.tls_trust)

    @property
    def dkim_domains(self) -> list[str]:
        """d= domains a transfer from this peer may be signed with (and their subdomains)."""
        return [self.dkim_domain] if self.dkim_domain else list(self.domains)

    def local_classification(self, label: str) -> str | None:
        """This side's label for the peer's `label` (None: no mapping, refuse)."""
        key = label.strip().lower()
        if key in self.classification_map:
            return self.classification_map[key]
        return key if key in _LABELS else None


class MailServerSettings(_Section):
    """An agency's own IMAP server receiving its copies (docs/CONTRACT.md §9).

    Only in the file: [mailservers.<name>]. Copies for employees of `agencies`
    are appended to their mailbox there instead of Barid's own INBOX.
    """

    agencies: list[str] = Field(min_length=1)
    host: str
    port: Port = 993
    tls: Literal["implicit", "starttls"] = "implicit"
    tls_ca: str = ""
    tls_server_name: str = ""
    login: str = "{address}"
    password_file: str
    folder: str = "INBOX"

    @field_validator("agencies")
    @classmethod
    def _agencies(cls, value: list[str]) -> list[str]:
        return [code.strip().upper() for code in value]

    @field_validator("login")
    @classmethod
    def _login(cls, value: str) -> str:
        if "{address}" not in value and "{local}" not in value:
            raise ValueError("must contain {address} or {local}")
        return value


class DeliverySettings(_Section):
    retry_window_hours: float = _f(
        24.0,
        "Remote delivery keeps retrying a copy this long after acceptance, then the"
        " sender gets a non-delivery receipt.",
        gt=0,
        le=24 * 30,
    )
    retry_first_seconds: float = _f(
        60.0, "First retry after a temporary failure; doubled each time.", gt=0, le=86400
    )
    retry_max_seconds: float = _f(3600.0, "Longest wait between two retries.", gt=0, le=86400)
    timeout_seconds: float = _f(
        60.0, "Give up one transfer (connect, TLS, send) after this long.", gt=0, le=3600
    )
    concurrency: int = _f(8, "Copies sent to peers and agency servers at once.", ge=1, le=256)


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    imap: ImapSettings = ImapSettings()
    login: LoginSettings = LoginSettings()
    http: HttpSettings = HttpSettings()
    tls: TlsSettings = TlsSettings()
    policy: PolicySettings = PolicySettings()
    keys: KeysSettings = KeysSettings()
    delivery: DeliverySettings = DeliverySettings()
    peers: dict[str, PeerSettings] = Field(default_factory=dict)
    mailservers: dict[str, MailServerSettings] = Field(default_factory=dict)

    @field_validator("peers", "mailservers")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not name or len(name) > 64 or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"name {name!r}: letters, digits, - and _ only (at most 64)")
        return value

    @property
    def agency_mailservers(self) -> dict[str, str]:
        """Agency code -> name of the agency's own IMAP server (delivery target)."""
        out: dict[str, str] = {}
        for name, server in self.mailservers.items():
            for code in server.agencies:
                out[code] = name
        return out

    @property
    def federation(self) -> dict[str, list[str]]:
        """Peer name -> mail domains, as the policy engine takes it."""
        return {name: list(peer.domains) for name, peer in self.peers.items()}

    # Derived paths. Relative paths in a config file were made absolute against
    # the file's folder by load_settings; the rest resolve against the cwd.
    @property
    def data_dir(self) -> Path:
        return Path(self.server.data_dir).expanduser().resolve()

    @property
    def smtp_inflight_bytes(self) -> int:
        """The in-flight budget: the setting, or four times the largest message."""
        return self.smtp.max_inflight_bytes or 4 * self.smtp.max_message_size

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite+aiosqlite:///{self.data_dir / 'barid.db'}"

    @property
    def keys_dir(self) -> Path:
        return (
            Path(self.keys.dir).expanduser().resolve() if self.keys.dir else self.data_dir / "keys"
        )

    @property
    def tls_cert(self) -> Path:
        return (
            Path(self.tls.cert).expanduser()
            if self.tls.cert
            else self.data_dir / "tls" / "cert.pem"
        )

    @property
    def tls_key(self) -> Path:
        return (
            Path(self.tls.key).expanduser() if self.tls.key else self.data_dir / "tls" / "key.pem"
        )

    @property
    def policy_file(self) -> Path:
        return (
            Path(self.policy.file).expanduser()
            if self.policy.file
            else self.data_dir / "policies.yaml"
        )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_toml(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> str:
    """The documented configuration file: every setting, its doc line and default.

    `config/barid.toml` is this with no overrides (a test keeps them equal);
    `barid init` writes it with the data directory filled in.
    """
    overrides = overrides or {}
    lines = [
        "# Barid configuration. Every key is shown with its default.",
        "# Any key can be overridden from the environment as BARID_<SECTION>__<KEY>,",
        "# e.g. BARID_SMTP__SUBMISSION_PORT=15870. Relative paths are relative to this file.",
    ]
    for section, model in _SECTIONS.items():
        lines += ["", f"[{section}]"]
        for key, info in model.model_fields.items():
            value = overrides.get(section, {}).get(key, info.default)
            lines.append(f"# {info.description}")
            lines.append(f"{key} = {_toml_value(value)}")
    lines += [
        "",
        "# Federation peers: one table per peer gateway (file only, no environment override).",
        "# [peers.region]",
        '# domains = ["region.gov.example"]',
        '# host = "transfer.region.gov.example"   # its transfer listener',
        "# port = 2525",
        '# tls_trust = "peers/region.pem"          # its certificate (pinned) or its CA, PEM',
        "# tls_fingerprints = []                   # optional SHA-256 pins (then only these)",
        '# tls_server_name = ""                    # checked in a CA-issued certificate',
        '# dkim_domain = ""                        # d= of its signatures; default: domains',
        '# dkim_keys = "peers/region-dkim.txt"     # its `barid dkim dns` output; empty: DNS',
        '# classification_map = { restricted = "confidential" }   # its label -> ours',
        "",
        "# Agencies with their own IMAP server (copies are appended there; file only).",
        "# [mailservers.moh]",
        '# agencies = ["MOH"]',
        '# host = "imap.moh.gov.example"',
        "# port = 993",
        '# tls = "implicit"                        # or "starttls"; never plaintext',
        '# tls_ca = ""                             # PEM trust anchors; empty: the system\'s',
        '# login = "{address}*barid"               # e.g. a Dovecot master user',
        '# password_file = "secrets/moh-imap"      # the password, alone in a 0600 file',
        '# folder = "INBOX"',
    ]
    for name, peer in overrides.get("peers", {}).items():
        lines += [
            "",
            f"[peers.{name}]",
            f"domains = [{', '.join(_toml_value(d) for d in peer['domains'])}]",
        ]
    return "\n".join(lines) + "\n"


class ConfigError(Exception):
    """A setting is unknown, of the wrong type or impossible. The message names it."""


_SECTIONS: dict[str, type[_Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
    if name not in ("peers", "mailservers")
}


def _coerce_env(section: str, key: str, raw: str) -> Any:
    """Turn an environment string into the type the field declares (strict models)."""
    model = _SECTIONS[section]
    field = model.model_fields.get(key)
    if field is None:
        raise ConfigError(
            f"{ENV_PREFIX}{section.upper()}__{key.upper()}: unknown key {section}.{key}"
        )
    annotation = field.annotation
    try:
        if annotation is bool:
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes", "on"}
        if annotation is int:
            return int(raw)
        if annotation is float:
            return float(raw)
    except ValueError:
        raise ConfigError(
            f"{ENV_PREFIX}{section.upper()}__{key.upper()}: {section}.{key} expects"
            f" {getattr(annotation, '__name__', annotation)}, got {raw!r}"
        ) from None
    return raw


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "BARID_CONFIG" or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in _SECTIONS:
            raise ConfigError(f"{name}: unknown section {section!r}")
        out.setdefault(section, {})[key] = _coerce_env(section, key, raw)
    return out


def _format_error(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        kind = item["type"]
        if kind == "extra_forbidden":
            parts.append(f"{where}: unknown key")
        else:
            parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def load_settings(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from `path` (or $BARID_CONFIG), then apply environment overrides.

    Raises ConfigError naming the file and key on any unknown key, wrong type or
    impossible value; relative paths inside the file resolve against its folder.
    """
    env = os.environ if environ is None else environ
    chosen = path if path is not None else env.get("BARID_CONFIG") or None
    data: dict[str, Any] = {}
    base: Path | None = None
    if chosen is not None:
        file = Path(chosen)
        try:
            with file.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{file}: configuration file not found") from None
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read ({exc.strerror})") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{file}: not valid TOML ({exc})") from None
        base = file.resolve().parent
    for section, values in _env_overrides(env).items():
        current = data.setdefault(section, {})
        if not isinstance(current, dict):
            raise ConfigError(f"{section}: must be a table")
        current.update(values)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        where = f"{chosen}: " if chosen is not None else ""
        raise ConfigError(where + _format_error(exc)) from None
    return _anchor_paths(settings, base)


def _anchor_paths(settings: Settings, base: Path | None) -> Settings:
    if base is None:
        return settings

    def anchored(value: str) -> str:
        if not value:
            return value
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else base / p)

    db_url = settings.database.url
    prefix = "sqlite+aiosqlite:///"
    if db_url.startswith(prefix) and not db_url[len(prefix) :].startswith("/"):
        db_url = prefix + anchored(db_url[len(prefix) :])
    return settings.model_copy(
        update={
            "server": settings.server.model_copy(
                update={"data_dir": anchored(settings.server.data_dir)}
            ),
            "database": settings.database.model_copy(update={"url": db_url}),
            "tls": settings.tls.model_copy(
                update={"cert": anchored(settings.tls.cert), "key": anchored(settings.tls.key)}
            ),
            "policy": settings.policy.model_copy(update={"file": anchored(settings.policy.file)}),
            "keys": settings.keys.model_copy(update={"dir": anchored(settings.keys.dir)}),
            "peers": {
                name: peer.model_copy(
                    update={
                        "tls_trust": anchored(peer.tls_trust),
                        "dkim_keys": anchored(peer.dkim_keys),
                    }
                )
                for name, peer in settings.peers.items()
            },
            "mailservers": {
                name: server.model_copy(
                    update={
                        "tls_ca": anchored(server.tls_ca),
                        "password_file": anchored(server.password_file),
                    }
                )
                for name, server in settings.mailservers.items()
            },
        }
    )
