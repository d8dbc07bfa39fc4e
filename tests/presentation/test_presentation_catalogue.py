"""The word catalogue and the templates: every key worded in Arabic and English with
the same placeholders, every key a template names exists, HTML escapes every value
(as html.escape writes it) while plain text shows it as written."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from gateway.presentation import LANGS, Value, render_mail_html, render_mail_text, say
from gateway.presentation.catalogue import CatalogueError, catalogue, checked_words, word
from gateway.stamping.cover import CoverDocument, CoverFacts, cover_html, cover_text
from policies.directory import Clearance

TEMPLATES = resources.files("gateway.presentation").joinpath("templates")
HOSTILE = '<script>alert("x")</script>&\'.pdf'


def test_every_key_has_arabic_and_english() -> None:
    words = catalogue()
    assert len(words) > 90
    for key, entry in words.items():
        assert set(entry) == set(LANGS), key
        assert entry["ar"] != entry["en"] or entry["ar"] in ("-",), key
    assert say("en", "receipt.accepted", registry="R", accepted="T").startswith("Your message")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"k": {"ar": "x"}}, "exactly 'ar' and 'en'"),
        ({"k": {"ar": "x", "en": ""}}, "empty"),
        ({"k": {"ar": "{a}", "en": "{b}"}}, "different values"),
        (["k"], "must map"),
    ],
)
def test_a_malformed_catalogue_is_refused(raw: object, message: str) -> None:
    with pytest.raises(CatalogueError, match=message):
        checked_words(raw)


def test_every_key_named_by_a_template_exists() -> None:
    named: set[str] = set()
    for entry in TEMPLATES.iterdir():
        if entry.name.endswith((".html", ".txt")):
            text = entry.read_text("utf-8")
            named |= set(re.findall(r"""t\((?:lang|'ar'|'en'), ["']([a-z_.-]+)["']""", text))
            named |= set(re.findall(r"""w\[["']([a-z_.-]+)["']\]""", text))
            named |= set(re.findall(r"""words\('(?:ar|en)'\)\['([a-z_.-]+)'\]""", text))
    assert len(named) > 40
    missing = named - set(catalogue()) - {"page.status_"}  # + "valid" or "revoked"
    assert {"page.status_valid", "page.status_revoked"} <= set(catalogue())
    assert not missing
    with pytest.raises(CatalogueError, match="no wording"):
        word("en", "no.such.key")


def _facts(name: str) -> CoverFacts:
    return CoverFacts(
        registry="MOH/2026/000042", agency_code="MOH", agency_name_ar="وزارة <الصحة>",
        agency_name_en="Ministry & Health", sender_name_ar="أحمد", sender_name_en='Ahmad "A"',
        sender_code="MOH-000042-K", recipient="a@b.gov.xx", classification=Clearance.SECRET,
        trace_code="ABCDE-FGHIJ", issued_at="2026-03-01 10:15:30 UTC",
        verify_url='https://v.gov.xx/v/"><script>', documents=(CoverDocument(name, "ab" * 32, 1),),
    )  # fmt: skip


def test_html_escapes_every_value_and_text_shows_it_as_written() -> None:
    page = cover_html(_facts(HOSTILE), 'qr"><x', 340)
    assert "<script" not in page and "<x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#x27;.pdf" in page
    assert "Ministry &amp; Health" in page and "Ahmad &quot;A&quot;" in page
    assert 'href="https://v.gov.xx/v/&quot;&gt;&lt;script&gt;"' in page
    assert 'src="cid:qr&quot;&gt;&lt;x"' in page
    assert "سرّي للغاية (secret)" in page
    text = cover_text(_facts(HOSTILE))
    assert f"  - {HOSTILE}\r\n" in text and 'Ahmad "A"' in text
    assert "\n" not in text.replace("\r\n", "")  # CRLF only


def test_values_show_per_language() -> None:
    html = render_mail_html("mail_base.html", title="<t>")
    assert "<title>&lt;t&gt;</title>" in html and html.endswith("</html>\r\n")
    assert render_mail_text("cover.txt", f=_facts("a.pdf"), original_name="o.eml",
                            certificate_name="c.json").count("\r\n") > 30  # fmt: skip
    assert Value("x").style == "ltr"
