"""The web admin's word catalogue: every sentence of its pages in Arabic and English.

Owns: loading `templates/words.yaml` once, checked by the same rules as the public
pages' catalogue (gateway.presentation.catalogue), and looking a key up. Must not:
escape or lay anything out (admin.web.render does).

Failure behaviour: a malformed file or a missing key raises CatalogueError.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import resources

import yaml

from gateway.presentation.catalogue import CatalogueError, Lang, checked_words

_FILE = "words.yaml"


@cache
def catalogue() -> Mapping[str, Mapping[Lang, str]]:
    text = resources.files("admin.web").joinpath("templates", _FILE).read_text("utf-8")
    return checked_words(yaml.safe_load(text), _FILE)


def word(lang: Lang, key: str) -> str:
    """The wording of `key` in `lang`, placeholders unfilled."""
    try:
        return catalogue()[key][lang]
    except KeyError:
        raise CatalogueError(f"no admin wording for {key!r} in {lang!r}") from None
