"""Configuration sections: the settings of each part of the gateway, their defaults and limits.

Owns: one pydantic model per `[section]` of barid.toml, the one-line documentation
of every key (rendered into the file) and per-key validation. Must not: read
files or the environment (gateway.config.loading does), nor derive paths.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.config import proxies

Port = Annotated[int, Field(ge=0, le=65535)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _f(default: Any, doc: str, **limits: Any) -> Any:
    """A setting with its default and the one-line documentation rendered into barid.toml."""
    return Field(default=default, description=doc, **limits)


class ServerSettings(Section):
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

    # PROXY protocol (docs/OPERATIONS.md "Behind a load balancer").
    trusted_proxies: list[str] = _f([], proxies.TRUSTED_DOC)
    proxy_header_timeout_seconds: float = _f(5.0, proxies.TIMEOUT_DOC, gt=0, le=60)
    _proxies = field_validator("trusted_proxies", mode="before")(proxies.networks)

    node_id: str = _f("", "This node's name in audit events, the access trail and log lines"
                      " (empty: this machine's host name).", max_length=64, pattern=r"^\S*$")


class DatabaseSettings(Section):
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


class SmtpSettings(Section):
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


class ImapSettings(Section):
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


class LoginSettings(Section):
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


class AdminSettings(Section):
    """Administrators' sign-in sessions and API tokens (docs/ADMIN.md)."""

    session_idle_minutes: int = _f(
        15, "A signed-in admin session unused this long has ended.", ge=1, le=1440
    )
    session_absolute_hours: int = _f(
        8, "No admin session lives longer than this, however busy.", ge=1, le=168
    )
    token_max_days: int = _f(
        366, "The longest lifetime an API token may be given, in days.", ge=1, le=3660
    )


class HttpSettings(Section):
    listen: str = _f("127.0.0.1", "Address the HTTP listener binds to.")
    port: Port = _f(
        8080,
        "Public listener: verification (/v/, /api/v1/verify), client set-up, /healthz.",
    )
    admin_address: str = _f(
        "127.0.0.1", "Address the admin listener (HTTPS only: the admin REST API) binds to."
    )
    admin_port: Port = _f(8443, "Admin listener port: TLS only, never served on the public one.")
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


class TlsSettings(Section):
    cert: str = _f(
        "", "Certificate chain (PEM); empty: the development certificate in <data_dir>/tls."
    )
    key: str = _f("", "Private key (PEM); empty: the development key in <data_dir>/tls.")


class PolicySettings(Section):
    file: str = _f("", "Routing policy (YAML); empty: <data_dir>/policies.yaml.")


class KeysSettings(Section):
    dir: str = _f("", "Gateway keys (signing, DKIM, master); empty: <data_dir>/keys.")
    dkim_selector: str = _f(
        "barid", "DKIM selector prefix (records <prefix>-rsa, <prefix>-ed25519)."
    )
    openpgp_backend: Literal["sequoia", "gnupg"] = _f(
        "sequoia", "OpenPGP verification: sequoia (in-process) or gnupg (runs gpg per check)."
    )


class DeliverySettings(Section):
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
