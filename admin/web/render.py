"""Rendering the web admin's pages: one Jinja2 environment over `templates/`.

Owns: the environment (autoescape on, undefined names an error), the page
globals (`t` says a catalogue key in the page's language with its values
escaped, `lang`, `dir`, `other_lang`) and `render`. Must not: decide what a page
shows; routes pass the figures the services computed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from admin.web.catalogue import word
from gateway.presentation.catalogue import Lang, direction


def _sayer(lang: Lang) -> Any:
    def say(key: str, **values: object) -> Markup:
        shown = {name: escape(value) for name, value in values.items()}
        return escape(word(lang, key)).format(**shown)

    return say


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("admin.web", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "svg"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


def render(name: str, lang: Lang, **context: Any) -> str:
    """The page `name` in `lang` (its direction set), over `context`."""
    other: Lang = "en" if lang == "ar" else "ar"
    page = {"lang": lang, "dir": direction(lang), "other_lang": other, "t": _sayer(lang)}
    return _environment().get_template(name).render(**page, **context)
