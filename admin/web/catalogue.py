"""The web admin's word catalogue: every sentence of its pages in Arabic and English.

Owns: loading `templates/words.yaml` and every `templates/words/*.yaml` (one file
per area of pages) once, checked by the same rules as the public pages' catalogue
(gateway.presentation.catalogue), a key defined in one file only, and looking a
key up. Must not:
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
    templates = resources.files("admin.web").joinpath("templates")
    files = [templates.joinpath(_FILE)]
    area_dir = templates.joinpath("words")
    if area_dir.is_dir():
        files += sorted((f for f in area_dir.iterdir() if f.name.endswith(".yaml")),
                        key=lambda f: f.name)  # fmt: skip
    words: dict[str, Mapping[Lang, str]] = {}
    for file in files:
        name = file.name if file.name == _FILE else f"words/{file.name}"
        part = checked_words(yaml.safe_load(file.read_text("utf-8")), name)
        twice = sorted(set(part) & set(words))
        if twice:
            raise CatalogueError(f"{name}: keys defined in another file too: {', '.join(twice)}")
        words.update(part)
    return words


def word(lang: Lang, key: str) -> str:
    """The wording of `key` in `lang`, placeholders unfilled."""
    try:
        return catalogue()[key][lang]
    except KeyError:
        raise CatalogueError(f"no admin wording for {key!r} in {lang!r}") from None
