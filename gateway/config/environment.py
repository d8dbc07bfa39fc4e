"""Environment overrides: `BARID_<SECTION>__<KEY>=value` turned into typed settings.

Owns: the variable name scheme and turning a string into the type the key
declares (the models are strict). Must not: apply the values (loading does) or
accept a key the schema does not know.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config.errors import ConfigError
from gateway.config.settings import SECTIONS

ENV_PREFIX = "BARID_"


def _coerce_env(section: str, key: str, raw: str) -> Any:
    """Turn an environment string into the type the field declares (strict models)."""
    model = SECTIONS[section]
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


def env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "BARID_CONFIG" or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in SECTIONS:
            raise ConfigError(f"{name}: unknown section {section!r}")
        out.setdefault(section, {})[key] = _coerce_env(section, key, raw)
    return out
