"""The public verification page (DESIGN.md §6): `GET /v/{token}`, the address in
a copy's `Barid-Verify` header and QR code, and the document check form
(`GET`/`POST /v/check`), for a person with a phone.

Owns: the wording (Arabic by default, English with `?lang=en`), the layout (one
self-contained HTML page: inline CSS, no script, no external resource) and the
page responses' security headers. Must not: disclose more than the verdict holds,
show any claim of a token that was not verified (forged, unknown), show request
text unescaped, or hold an uploaded document whole in memory.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.verification.radar import Radar
from gateway.verification.service import (
    DocumentVerdict,
    Verdict,
    VerificationService,
    VerificationUnavailable,
)
from gateway.verification.upload import UploadProblem, multipart_upload

Lang = Literal["ar", "en"]
PAGE_PREFIX = "/v/"
PAGE_TOKEN_ROUTE = PAGE_PREFIX + "{token}"
PAGE_CHECK_ROUTE = PAGE_PREFIX + "check"
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # the status may change (revocation)
}
TOKEN_HTTP_STATUS = {"valid": 200, "revoked": 200, "unknown": 404, "forged": 400}


def page_lang(value: str | None) -> Lang:
    """English only when asked for; Arabic otherwise."""
    return "en" if value == "en" else "ar"


# ---------------------------------------------------------------- wording


@dataclass(frozen=True, slots=True)
class Status:
    """A status banner: a symbol and words (never colour alone) and its colours."""

    symbol: str
    title: str
    detail: str
    colour: str


STATUS: dict[Lang, dict[str, Status]] = {
    "ar": {
        "valid": Status("✓", "صادر أصولاً", "صدرت هذه الرسالة عن هذه البوابة وهي سارية.", "#0b6b2f"),
        "revoked": Status("✗", "مُلغاة", "صدرت هذه الرسالة عن هذه البوابة ثم أُلغيت.", "#a31515"),
        "unknown": Status(
            "?",
            "غير موجودة في سجل هذه البوابة",
            "لا توجد في سجل هذه البوابة رسالة بهذا الرمز. لا تعتمد على هذه الوثيقة.",
            "#8a4b00",
        ),
        "forged": Status(
            "!",
            "مزوَّر أو تالف",
            "لم تُصدر هذه البوابة هذا الرابط، أو أنه تلف (مثلاً خطأ في النسخ)."
            " لا تعتمد على هذه الوثيقة.",
            "#5c1010",
        ),
        "match": Status(
            "✓",
            "الوثيقة مطابقة",
            "وثيقة بهذه البايتات بالضبط ضمن رسائل صادرة عن هذه البوابة.",
            "#0b6b2f",
        ),
        "no-match": Status(
            "?",
            "لا توجد مطابقة",
            "لا تضم أي رسالة صادرة عن هذه البوابة وثيقة بهذه البايتات بالضبط.",
            "#8a4b00",
        ),
        "error": Status("!", "تعذّر الفحص", "", "#5c1010"),
    },
    "en": {
        "valid": Status(
            "✓",
            "Genuinely issued",
            "This message was issued by this gateway and is valid.",
            "#0b6b2f",
        ),
        "revoked": Status(
            "✗", "Revoked", "This message was issued by this gateway, then revoked.", "#a31515"
        ),
        "unknown": Status(
            "?",
            "Not found in this gateway's registry",
            "This gateway's registry holds no message with this code."
            " Do not rely on this document.",
            "#8a4b00",
        ),
        "forged": Status(
            "!",
            "Forged or damaged",
            "This gateway did not issue this link, or it was damaged (mistyped, for example)."
            " Do not rely on this document.",
            "#5c1010",
        ),
        "match": Status(
            "✓",
            "Document matches",
            "A document with exactly these bytes is in messages issued by this gateway.",
            "#0b6b2f",
        ),
        "no-match": Status(
            "?",
            "No match",
            "No message issued by this gateway holds a document with exactly these bytes.",
            "#8a4b00",
        ),
        "error": Status("!", "The check failed", "", "#5c1010"),
    },
}

WORDS: dict[Lang, dict[str, str]] = {
    "ar": {
        "title": "التحقّق من رسالة رسمية — بريد",
        "check_title": "فحص وثيقة — بريد",
        "heading": "التحقّق من رسالة رسمية",
        "other_lang": "English",
        "agency": "الجهة المُصدِرة",
        "registry": "رقم القيد",
        "issued_at": "تاريخ الإصدار (بالتوقيت العالمي UTC)",
        "sender": "المُرسِل",
        "documents": "الوثائق وبصماتها (SHA-256)",
        "revoked_at": "تاريخ الإلغاء (UTC)",
        "revoked_reason": "سبب الإلغاء",
        "not_given": "غير مذكور",
        "status": "الحالة",
        "status_valid": "سارية",
        "status_revoked": "مُلغاة",
        "sha256": "بصمة الوثيقة (SHA-256)",
        "proves_title": "ماذا تثبت هذه الصفحة؟",
        "proves": (
            "تثبت هذه الصفحة أن هذه البوابة أصدرت رسالة بهذا الرقم وفي هذا التاريخ، من هذه الجهة"
            " وهذا المُرسِل، تضم وثائق لها هذه البصمات بالضبط، وتبيّن ما إذا كانت لا تزال سارية."
        ),
        "not_proves": (
            "ولا تثبت محتوى النسخة التي بين يديك: للتأكد من أن ملفك هو الملف الصادر نفسه، قارن"
            " بصمة SHA-256 لملفك بالبصمة المذكورة هنا، أو افحصه بالنموذج أدناه."
        ),
        "unverified": (
            "لا تعرض هذه الصفحة أي معلومة يدّعيها رابط لم يثبت صدوره. إن كنت قد كتبت الرابط"
            " بنفسك فتحقّق منه، وإلا فاتصل بالجهة التي يُقال إنها أصدرته."
        ),
        "check_heading": "فحص وثيقة",
        "check_help": (
            "اختر ملف الوثيقة لمعرفة ما إذا كانت صادرة عن هذه البوابة بهذه البايتات بالضبط."
            " يُحسب بصمة الملف على الخادم ولا يُحفظ الملف."
        ),
        "file": "ملف الوثيقة",
        "submit": "افحص الوثيقة",
        "check_another": "فحص وثيقة أخرى",
        "check_proves": (
            "المطابقة تعني أن ملفك مطابق بايتًا ببايت لوثيقة في رسالة صادرة عن هذه البوابة؛"
            " ولا تعني أن الرسالة ما زالت سارية إلا إذا قالت حالتها ذلك."
        ),
        "unavailable": "خدمة التحقّق غير متاحة الآن، حاول مرة أخرى لاحقًا.",
        "too_many": "محاولات فاشلة كثيرة من هذا العنوان؛ حاول مرة أخرى لاحقًا.",
        "too_large": "الملف أكبر من الحد المسموح به.",
        "empty": "لم يُرسَل ملف، أو أن الملف فارغ.",
        "malformed": "تعذّرت قراءة النموذج المُرسَل.",
    },
    "en": {
        "title": "Verify an official message — Barid",
        "check_title": "Check a document — Barid",
        "heading": "Verify an official message",
        "other_lang": "العربية",
        "agency": "Issuing agency",
        "registry": "Registry number",
        "issued_at": "Issued (UTC)",
        "sender": "Sender",
        "documents": "Documents and their SHA-256",
        "revoked_at": "Revoked on (UTC)",
        "revoked_reason": "Reason",
        "not_given": "not given",
        "status": "Status",
        "status_valid": "valid",
        "status_revoked": "revoked",
        "sha256": "The document's SHA-256",
        "proves_title": "What does this page prove?",
        "proves": (
            "It proves that this gateway issued a message with this registry number, on this"
            " date, from this agency and sender, holding documents with exactly these SHA-256"
            " digests, and whether the message is still valid."
        ),
        "not_proves": (
            "It does not prove what your copy says: to be sure your file is the one issued,"
            " compare your file's SHA-256 with the one shown here, or check it with the form"
            " below."
        ),
        "unverified": (
            "This page shows nothing that an unverified link claims. If you typed the link,"
            " check it; otherwise contact the agency said to have issued it."
        ),
        "check_heading": "Check a document",
        "check_help": (
            "Choose the document's file to learn whether this gateway issued exactly these"
            " bytes. The file's SHA-256 is computed on the server; the file is not kept."
        ),
        "file": "Document file",
        "submit": "Check the document",
        "check_another": "Check another document",
        "check_proves": (
            "A match means that your file is byte for byte a document of a message issued by"
            " this gateway; the message is still valid only if its status says so."
        ),
        "unavailable": "Verification is unavailable now; please try again later.",
        "too_many": "Too many failed lookups from this address; please try again later.",
        "too_large": "The file is larger than allowed.",
        "empty": "No file was sent, or the file is empty.",
        "malformed": "The form sent could not be read.",
    },
}


# ---------------------------------------------------------------- rendering

_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:#f4f4f1;color:#1a1a1a;font-size:18px;line-height:1.6;
font-family:"Noto Naskh Arabic","Noto Sans Arabic","Noto Sans","DejaVu Sans",Tahoma,
Arial,sans-serif}
main{max-width:42rem;margin:0 auto;padding:1rem}
header{display:flex;justify-content:space-between;align-items:center;gap:1rem}
header h1{font-size:1.25rem;margin:0}
header a{font-size:1rem;padding:.4rem .8rem;border:1px solid #1d4f91;border-radius:.4rem;
color:#1d4f91;text-decoration:none;white-space:nowrap}
.banner{margin:1rem 0;padding:1rem 1.2rem;border-radius:.6rem;color:#fff;display:flex;
gap:1rem;align-items:center}
.banner .sym{font-size:2.6rem;font-weight:bold;line-height:1;border:3px solid #fff;
border-radius:50%;min-width:3.6rem;height:3.6rem;display:flex;align-items:center;
justify-content:center}
.banner strong{display:block;font-size:1.6rem;line-height:1.3}
.banner p{margin:.3rem 0 0}
section{background:#fff;border-radius:.6rem;padding:.8rem 1.2rem;margin:1rem 0;
border:1px solid #ddd}
section h2{font-size:1.15rem;margin:.2rem 0 .6rem}
dl{margin:0}
dt{font-weight:bold;color:#444;font-size:.95rem;margin-top:.6rem}
dd{margin:0;overflow-wrap:anywhere}
ul{margin:.2rem 0;padding-inline-start:1.2rem}
li{margin:.4rem 0}
code{font-family:"DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:.85rem;
word-break:break-all;direction:ltr;unicode-bidi:isolate;display:block;background:#f0f0f0;
padding:.2rem .4rem;border-radius:.3rem;text-align:left}
table{border-collapse:collapse;width:100%}
th,td{padding:.4rem;border-bottom:1px solid #ddd;text-align:start;vertical-align:top}
input[type=file]{font-size:1rem;max-width:100%;margin:.5rem 0}
button{font-size:1.05rem;padding:.6rem 1.2rem;border:0;border-radius:.4rem;background:#1d4f91;
color:#fff}
a{color:#1d4f91}
"""


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _ltr(value: str) -> str:
    """An escaped left-to-right value, isolated inside right-to-left text."""
    return f'<bdi dir="ltr">{_e(value)}</bdi>'


def utc_display(moment: dt.datetime) -> str:
    """YYYY-MM-DD HH:MM:SS UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _stored_display(text: str | None) -> str | None:
    """A verdict time (YYYY-MM-DDTHH:MM:SSZ) for people."""
    if not text:
        return None
    try:
        return utc_display(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))
    except ValueError:
        return None


def _banner(status: Status) -> str:
    detail = f"<p>{_e(status.detail)}</p>" if status.detail else ""
    return (
        f'<div class="banner" role="status" style="background:{status.colour}">'
        f'<span class="sym" aria-hidden="true">{_e(status.symbol)}</span>'
        f"<div><strong>{_e(status.title)}</strong>{detail}</div></div>"
    )


def _row(label: str, value_html: str) -> str:
    return f"<dt>{_e(label)}</dt><dd>{value_html}</dd>"


def _check_form(lang: Lang) -> str:
    w = WORDS[lang]
    action = PAGE_CHECK_ROUTE + ("?lang=en" if lang == "en" else "")
    return (
        f"<section><h2>{_e(w['check_heading'])}</h2><p>{_e(w['check_help'])}</p>"
        f'<form method="post" action="{_e(action)}" enctype="multipart/form-data">'
        f'<input type="hidden" name="lang" value="{lang}">'
        f'<label>{_e(w["file"])}<br><input type="file" name="file" required></label><br>'
        f'<button type="submit">{_e(w["submit"])}</button></form></section>'
    )


def _document(lang: Lang, *, title: str, switch_href: str, body: Iterable[str]) -> str:
    w = WORDS[lang]
    direction = "rtl" if lang == "ar" else "ltr"
    other: Lang = "en" if lang == "ar" else "ar"
    return "".join(
        (
            f'<!DOCTYPE html>\n<html lang="{lang}" dir="{direction}"><head>'
            '<meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="referrer" content="no-referrer">'
            '<meta name="robots" content="noindex">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>"
            f"<header><h1>{_e(w['heading'])}</h1>"
            f'<a href="{_e(switch_href)}" lang="{other}" hreflang="{other}">'
            f"{_e(w['other_lang'])}</a></header>\n",
            *body,
            "\n</main></body></html>\n",
        )
    )


def _switch(lang: Lang) -> str:
    """A relative link to the same page in the other language."""
    return "?lang=ar" if lang == "en" else "?lang=en"


def token_page(verdict: Verdict, lang: Lang) -> str:
    """The page for one token's verdict; only a valid or revoked verdict shows facts."""
    w = WORDS[lang]
    body = [_banner(STATUS[lang][verdict.status])]
    if verdict.status in ("valid", "revoked"):
        body.append(_facts(verdict, lang))
        body.append(
            f"<section><h2>{_e(w['proves_title'])}</h2><p>{_e(w['proves'])}</p>"
            f"<p>{_e(w['not_proves'])}</p></section>"
        )
    else:
        body.append(f"<section><p>{_e(w['unverified'])}</p></section>")
    body.append(_check_form(lang))
    return _document(lang, title=w["title"], switch_href=_switch(lang), body=body)


def _facts(verdict: Verdict, lang: Lang) -> str:
    w = WORDS[lang]
    rows = []
    if verdict.agency is not None:
        a = verdict.agency
        name = a.name_ar if lang == "ar" else a.name_en
        rows.append(_row(w["agency"], f"{_e(name)} ({_ltr(a.code)})"))
    if verdict.registry is not None:
        rows.append(_row(w["registry"], f"<strong>{_ltr(verdict.registry)}</strong>"))
    if verdict.issued_at is not None:
        rows.append(_row(w["issued_at"], _ltr(utc_display(verdict.issued_at))))
    if verdict.sender is not None:
        s = verdict.sender
        rows.append(_row(w["sender"], _e(s.name_ar if lang == "ar" else s.name_en)))
    if verdict.revoked is not None:
        at = _stored_display(verdict.revoked.at)
        reason = verdict.revoked.reason
        rows.append(_row(w["revoked_at"], _ltr(at) if at else _e(w["not_given"])))
        reason_html = f"<bdi>{_e(reason)}</bdi>" if reason else _e(w["not_given"])
        rows.append(_row(w["revoked_reason"], reason_html))
    if verdict.documents:
        items = "".join(
            f"<li>{_ltr(d.name)}<code>{_e(d.sha256)}</code></li>" for d in verdict.documents
        )
        rows.append(_row(w["documents"], f"<ul>{items}</ul>"))
    return f"<section><dl>{''.join(rows)}</dl></section>"


def check_page(result: DocumentVerdict | None, lang: Lang) -> str:
    """The document check: the form alone (`result` None), or a result with the form."""
    w = WORDS[lang]
    body: list[str] = []
    if result is not None:
        body.append(_banner(STATUS[lang][result.status]))
        parts = [f"<dl>{_row(w['sha256'], f'<code>{_e(result.sha256)}</code>')}</dl>"]
        if result.matches:
            head = "".join(f"<th>{_e(w[k])}</th>" for k in ("registry", "agency", "status"))
            lines = []
            for m in result.matches:
                name = m.agency.name_ar if lang == "ar" else m.agency.name_en
                status = w["status_valid"] if m.status == "valid" else w["status_revoked"]
                lines.append(
                    f"<tr><td>{_ltr(m.registry)}</td><td>{_e(name)} ({_ltr(m.agency.code)})</td>"
                    f"<td>{_e(status)}</td></tr>"
                )
            parts.append(f"<table><tr>{head}</tr>{''.join(lines)}</table>")
        body.append(f"<section>{''.join(parts)}<p>{_e(w['check_proves'])}</p></section>")
    body.append(_check_form(lang))
    return _document(lang, title=w["check_title"], switch_href=_switch(lang), body=body)


def message_page(lang: Lang, reason: str) -> str:
    """A failed check (a fixed reason from WORDS), with the form to try again."""
    w = WORDS[lang]
    status = STATUS[lang]["error"]
    body = [_banner(Status(status.symbol, status.title, w[reason], status.colour))]
    body.append(_check_form(lang))
    return _document(lang, title=w["check_title"], switch_href=_switch(lang), body=body)


def html_response(page: str, status: int = 200) -> Response:
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


# ---------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class _Upload:
    sha256: str | None  # None: no file, or an empty one
    lang: Lang


async def _read_upload(request: Request, limit: int, lang: Lang) -> _Upload | str:
    """The SHA-256 of the form's `file` and its `lang` field; a WORDS reason when
    it cannot be read (see verification.upload)."""
    upload = await multipart_upload(request, limit, text_fields=("lang",))
    if isinstance(upload, UploadProblem):
        return upload.value
    if "lang" in upload.fields:
        lang = page_lang(upload.fields["lang"])
    return _Upload(upload.sha256, lang)


def _too_many(lang: Lang, retry_after: int) -> Response:
    response = html_response(message_page(lang, "too_many"), 429)
    response.headers["Retry-After"] = str(retry_after)
    return response


def page_routes(
    service: VerificationService,
    max_document_bytes: int,
    radar: Radar,
    client_of: Callable[[Request], str],
) -> list[Route]:
    """`GET /v/{token}` and `GET`/`POST /v/check`; lookups go through the same radar
    (counting, throttling, alerts) as the JSON API's."""

    async def token_view(request: Request) -> Response:
        lang = page_lang(request.query_params.get("lang"))
        client = client_of(request)
        wait = radar.check(client, "token")
        if wait is not None:
            return _too_many(lang, wait)
        token = str(request.path_params["token"])
        try:
            verdict = await service.by_token(token)  # refuses a too long token itself
        except VerificationUnavailable:
            return html_response(message_page(lang, "unavailable"), 503)
        registries = [verdict.registry] if verdict.registry else []
        wait = await radar.record(client, "token", verdict.status, registries)
        if wait is not None:
            return _too_many(lang, wait)
        return html_response(token_page(verdict, lang), TOKEN_HTTP_STATUS[verdict.status])

    async def check_view(request: Request) -> Response:
        lang = page_lang(request.query_params.get("lang"))
        if request.method == "GET":
            return html_response(check_page(None, lang))
        client = client_of(request)
        wait = radar.check(client, "document")
        if wait is not None:
            return _too_many(lang, wait)
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_document_bytes:
            return html_response(message_page(lang, "too_large"), 413)
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            return html_response(message_page(lang, "malformed"), 400)
        upload = await _read_upload(request, max_document_bytes, lang)
        if isinstance(upload, str):
            return html_response(message_page(lang, upload), 413 if upload == "too_large" else 400)
        if upload.sha256 is None:
            return html_response(message_page(upload.lang, "empty"), 400)
        try:
            result = await service.by_sha256(upload.sha256)
        except VerificationUnavailable:
            return html_response(message_page(upload.lang, "unavailable"), 503)
        wait = await radar.record(
            client, "document", result.status, [m.registry for m in result.matches]
        )
        if wait is not None:
            return _too_many(upload.lang, wait)
        return html_response(check_page(result, upload.lang))

    return [
        # The check route comes first so that "check" is never taken for a token.
        Route(PAGE_CHECK_ROUTE, check_view, methods=["GET", "POST"]),
        Route(PAGE_TOKEN_ROUTE, token_view, methods=["GET"]),
    ]
