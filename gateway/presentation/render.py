"""Rendering templates: HTML with autoescape for pages and mail parts, and plain text.

Owns: the Jinja2 environments over `templates/` (HTML autoescaped, every value
escaped as Python's `html.escape` writes it; `.txt` templates unescaped), and how a
`Value` appears in each (a left-to-right value isolated with <bdi>, a link, a
catalogue key). Must not: decide what a page or a part says; callers pass values.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from gateway.presentation.catalogue import (
    LANGS,
    Lang,
    classification_words,
    direction,
    say,
    word,
    words,
)

Style = Literal["key", "ltr", "user", "link", "plain", "classification"]
# The inline style that lets a long link or digest break on a phone (mail clients
# often drop <style> elements, so mail parts carry their styles inline).
WRAP_STYLE = "overflow-wrap:anywhere;word-break:break-all"


@dataclass(frozen=True, slots=True)
class Value:
    """A value in a sentence or a row, and how to show it.

    key: `text` is a catalogue key, worded per language; ltr: a code, address,
    time or digest, always left to right; user: a person's text in any script;
    link: an http(s) URL; plain: our own fixed text; classification: a label
    ("confidential") as a reader of the language names it.
    """

    text: str
    style: Style = "ltr"


def escape(value: object) -> Markup:
    """`value` as HTML text: markup stays, anything else is escaped like html.escape."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))  # noqa: S704 (escaped just here)


# Our own markup around an escaped value (the only HTML written outside templates).
_LINK = '<bdi dir="ltr"><a href="{0}" style="' + WRAP_STYLE + '">{0}</a></bdi>'
_HTML_STYLES: dict[Style, Markup] = {
    "ltr": Markup('<bdi dir="ltr">{0}</bdi>'),
    "user": Markup("<bdi>{0}</bdi>"),  # any script: the reader's text chooses its direction
    "link": Markup(_LINK),  # noqa: S704 (constant markup)
    "key": Markup("{0}"),
    "plain": Markup("{0}"),
    "classification": Markup("<bdi>{0}</bdi>"),
}


def _text_value(lang: Lang, value: Value) -> str:
    if value.style == "key":
        return word(lang, value.text)
    if value.style == "classification":
        return classification_words(lang, value.text)
    return value.text


def _html_value(lang: Lang, value: Value) -> Markup:
    return _HTML_STYLES[value.style].format(escape(_text_value(lang, value)))


def _html_say(lang: Lang, key: str, **values: object) -> Markup:
    shown = {name: _html_shown(lang, v) for name, v in values.items()}
    return escape(word(lang, key)).format(**shown)


def _html_shown(lang: Lang, value: object) -> Markup:
    return _html_value(lang, value) if isinstance(value, Value) else escape(value)


def _text_say(lang: Lang, key: str, **values: object) -> str:
    shown = {n: _text_value(lang, v) if isinstance(v, Value) else str(v) for n, v in values.items()}
    return say(lang, key, **shown)


def _filter(style: Style, html_output: bool) -> Callable[[object], object]:
    if not html_output:
        return str
    template = _HTML_STYLES[style]
    return lambda value: template.format(escape(value))


def _environment(*, html_output: bool, newline: str) -> Environment:
    env = Environment(
        loader=PackageLoader("gateway.presentation", "templates"),
        # .html escaped, .txt (plain-text mail parts) written as is.
        autoescape=select_autoescape(enabled_extensions=("html",), disabled_extensions=("txt",)),
        finalize=escape if html_output else None,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        newline_sequence=newline,  # type: ignore[arg-type]
        auto_reload=False,
    )
    show: Callable[[Lang, Value], object] = _html_value if html_output else _text_value
    # Filters for the hot templates (the cover is rendered inside the acceptance
    # transaction): `x|ltr`, `x|bidi`, `x|link` show a value as Value(x, style) does.
    filters: tuple[tuple[Style, str], ...] = (("ltr", "ltr"), ("user", "bidi"), ("link", "link"))
    for style, name in filters:
        env.filters[name] = _filter(style, html_output)
    env.globals.update(
        words=words,
        langs=LANGS,
        direction=direction,
        t=_html_say if html_output else _text_say,
        show=show,
        classification=classification_words,
        Value=Value,
    )
    return env


@cache
def _page_env() -> Environment:
    return _environment(html_output=True, newline="\n")


@cache
def _mail_html_env() -> Environment:
    return _environment(html_output=True, newline="\r\n")


@cache
def _mail_text_env() -> Environment:
    return _environment(html_output=False, newline="\r\n")


def render_page(name: str, **context: Any) -> str:
    """An HTML page served over HTTP (LF line ends)."""
    return _page_env().get_template(name).render(**context)


def render_mail_html(name: str, **context: Any) -> str:
    """A text/html mail part (CRLF line ends, RFC 2046 §4.1.1)."""
    return _mail_html_env().get_template(name).render(**context)


def render_mail_text(name: str, **context: Any) -> str:
    """A text/plain mail part, unescaped (CRLF line ends)."""
    return _mail_text_env().get_template(name).render(**context)
