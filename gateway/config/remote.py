"""Configuration of the other servers this gateway talks to: federation peers and
agencies' own IMAP servers (`[peers.<name>]`, `[mailservers.<name>]`, file only).

Owns: their models, validation and the peer's classification mapping. Must not:
read the files they name (trust anchors, DKIM keys, passwords); their users do.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.config.sections import Port, Section

_LABELS = ("public", "internal", "confidential", "secret")


def _mail_domain(value: str) -> str:
    d = value.strip().lower().rstrip(".")
    if not d or " " in d or "." not in d:
        raise ValueError(f"not a mail domain: {value!r}")
    return d


class PeerSettings(Section):
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


class MailServerSettings(Section):
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
