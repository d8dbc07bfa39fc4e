"""Loading the configuration: the TOML file, then the environment, then validation.

Owns: precedence (built-in defaults, the file, the environment), reporting a
validation failure as one `ConfigError` line naming file and key, and anchoring
relative paths of the file to its folder. Must not: create files or open sockets.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.environment import env_overrides
from gateway.config.errors import ConfigError
from gateway.config.settings import Settings


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
    for section, values in env_overrides(env).items():
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
            "blobs": settings.blobs.model_copy(
                update={
                    "path": anchored(settings.blobs.path),
                    "s3_credentials_file": anchored(settings.blobs.s3_credentials_file),
                }
            ),
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
