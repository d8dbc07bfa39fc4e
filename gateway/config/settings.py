"""The whole configuration: every section, the peers and mail servers, and derived values.

Owns: `Settings` (the root model), the paths derived from it (data directory,
database URL, keys, TLS, policy) and `SECTIONS`, the sections an environment
variable may override. Must not: read files or the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from gateway.config.blobs import BlobsSettings, check_message_size
from gateway.config.marking import MarkingSettings
from gateway.config.remote import MailServerSettings, PeerSettings
from gateway.config.sections import (
    AdminSettings,
    DatabaseSettings,
    DeliverySettings,
    HttpSettings,
    ImapSettings,
    KeysSettings,
    LoginSettings,
    PolicySettings,
    ReceiptsSettings,
    Section,
    ServerSettings,
    SmtpSettings,
    TlsSettings,
)
from gateway.config.sections_trail import AlertsSettings, AuditSettings


class Settings(Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    imap: ImapSettings = ImapSettings()
    login: LoginSettings = LoginSettings()
    admin: AdminSettings = AdminSettings()
    http: HttpSettings = HttpSettings()
    tls: TlsSettings = TlsSettings()
    policy: PolicySettings = PolicySettings()
    keys: KeysSettings = KeysSettings()
    delivery: DeliverySettings = DeliverySettings()
    receipts: ReceiptsSettings = ReceiptsSettings()
    audit: AuditSettings = AuditSettings()
    alerts: AlertsSettings = AlertsSettings()
    marking: MarkingSettings = MarkingSettings()
    peers: dict[str, PeerSettings] = Field(default_factory=dict)
    mailservers: dict[str, MailServerSettings] = Field(default_factory=dict)
    blobs: BlobsSettings = BlobsSettings()

    @model_validator(mode="after")
    def _message_fits_blob_store(self) -> Settings:
        check_message_size(self.blobs, self.smtp.max_message_size)
        return self

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
    def blobs_dir(self) -> Path:
        return Path(self.blobs.path).expanduser() if self.blobs.path else self.data_dir / "blobs"

    @property
    def policy_file(self) -> Path:
        return (
            Path(self.policy.file).expanduser()
            if self.policy.file
            else self.data_dir / "policies.yaml"
        )


# The `[section]` tables with fixed keys (peers and mail servers are named tables).
SECTIONS: dict[str, type[Section]] = {
    name: info.annotation  # type: ignore[misc]
    for name, info in Settings.model_fields.items()
    if name not in ("peers", "mailservers")
}
