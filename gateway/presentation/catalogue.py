"""The word catalogue: every sentence a person reads, in Arabic and English, by key.

Owns: loading `templates/words.yaml` once (each key with a non-empty `ar` and `en`),
looking a key up for a language, and the direction of each language. Must not:
escape or lay anything out; templates (gateway.presentation.render) do that.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Literal

import yaml

Lang = Literal["ar", "en"]
LANGS: tuple[Lang, ...] = ("ar", "en")  # the order a bilingual part shows them
_FILE = "words.yaml"


class CatalogueError(ValueError):
    """The catalogue file is malformed, or a key is missing."""


def direction(lang: Lang) -> Literal["rtl", "ltr"]:
    return "rtl" if lang == "ar" else "ltr"


def _placeholders(text: str) -> frozenset[str]:
    return frozenset(name for _, name, _, _ in string.Formatter().parse(text) if name)


def checked_words(raw: object, name: str = _FILE) -> Mapping[str, Mapping[Lang, str]]:
    """A parsed catalogue file (`name` for messages) checked: every key with a
    non-empty `ar` and `en` naming the same placeholders; CatalogueError if not."""
    if not isinstance(raw, dict):
        raise CatalogueError(f"{name} must map keys to {{ar, en}}")
    words: dict[str, Mapping[Lang, str]] = {}
    for key, entry in raw.items():
        if not isinstance(entry, dict) or set(entry) != set(LANGS):
            raise CatalogueError(f"{name}: {key!r} must have exactly 'ar' and 'en'")
        texts = {lang: entry[lang] for lang in LANGS}
        if not all(isinstance(text, str) and text.strip() for text in texts.values()):
            raise CatalogueError(f"{name}: {key!r} has an empty or non-text wording")
        if _placeholders(texts["ar"]) != _placeholders(texts["en"]):
            raise CatalogueError(f"{name}: {key!r} names different values in ar and en")
        words[str(key)] = MappingProxyType(texts)
    return MappingProxyType(words)


@cache
def catalogue() -> Mapping[str, Mapping[Lang, str]]:
    """Every key's wordings, loaded and checked once."""
    text = resources.files("gateway.presentation").joinpath("templates", _FILE).read_text("utf-8")
    return checked_words(yaml.safe_load(text))


@cache
def words(lang: Lang) -> Mapping[str, str]:
    """Every key's wording in `lang` (placeholders unfilled), for templates: `w[key]`."""
    return MappingProxyType({key: entry[lang] for key, entry in catalogue().items()})


def word(lang: Lang, key: str) -> str:
    """The wording of `key` in `lang`, with its {placeholders} unfilled."""
    try:
        return catalogue()[key][lang]
    except KeyError:
        raise CatalogueError(f"no wording for {key!r} in {lang!r}") from None


def say(lang: Lang, key: str, **values: str) -> str:
    """`key` in `lang` with its placeholders filled, as plain text."""
    return word(lang, key).format(**values)


def classification_words(lang: Lang, label: str) -> str:
    """A classification as a reader of `lang` sees it: "سرّي (confidential)" in Arabic,
    the label itself in English; a label the catalogue does not know stays as it is."""
    key = f"classification.{label}"
    if lang == "en" or key not in catalogue():
        return label
    return f"{word(lang, key)} ({label})"
