"""Configuration: `config/barid.toml` defaults, a TOML file, `BARID_<SECTION>__<KEY>`.

Owns: the public face of the settings (import from here). Must not: create files
or open sockets; a bad setting raises `ConfigError` naming the key (exit 2).
Precedence (lowest first): built-in defaults, the TOML file, the environment.
Parts: sections (per-section models), remote (peers, mail servers), settings
(the root and derived paths), environment, loading, render (the documented file).
"""

from __future__ import annotations

from gateway.config.environment import ENV_PREFIX
from gateway.config.errors import ConfigError
from gateway.config.loading import load_settings
from gateway.config.remote import MailServerSettings, PeerSettings
from gateway.config.render import render_toml
from gateway.config.sections import (
    AdminSettings,
    DatabaseSettings,
    DeliverySettings,
    HttpSettings,
    ImapSettings,
    KeysSettings,
    LoginSettings,
    PolicySettings,
    Port,
    ServerSettings,
    SmtpSettings,
    TlsSettings,
)
from gateway.config.sections_trail import AlertsSettings
from gateway.config.settings import Settings

__all__ = [
    "ENV_PREFIX",
    "AdminSettings",
    "AlertsSettings",
    "ConfigError",
    "DatabaseSettings",
    "DeliverySettings",
    "HttpSettings",
    "ImapSettings",
    "KeysSettings",
    "LoginSettings",
    "MailServerSettings",
    "PeerSettings",
    "PolicySettings",
    "Port",
    "ServerSettings",
    "Settings",
    "SmtpSettings",
    "TlsSettings",
    "load_settings",
    "render_toml",
]
