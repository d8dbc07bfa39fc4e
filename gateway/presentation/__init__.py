"""What people read: the bilingual templates and the word catalogue behind them.

Owns: `templates/` (HTML pages and mail parts, plain-text parts, `words.yaml`), the
Arabic and English wording by key, and rendering with autoescape. Must not: know
where a page is served or how a message is encoded; callers pass plain values.
"""

from gateway.presentation.catalogue import LANGS, Lang, direction, say, word
from gateway.presentation.render import (
    Value,
    escape,
    render_mail_html,
    render_mail_text,
    render_page,
)

__all__ = [
    "LANGS",
    "Lang",
    "Value",
    "direction",
    "escape",
    "render_mail_html",
    "render_mail_text",
    "render_page",
    "say",
    "word",
]
