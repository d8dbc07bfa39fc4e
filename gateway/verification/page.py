"""The public verification page (docs/CONTRACT.md §6): `GET /v/{token}`, the address
in a copy's `Barid-Verify` header and QR code, and the document check form
(`GET`/`POST /v/check`), for a person with a phone.

Owns: what each page shows (Arabic by default, English with `?lang=en`; the
templates `page_*.html` lay it out, one self-contained document: an inline
stylesheet, no script, no external resource) and the page responses' security
headers. Must not: disclose more than the verdict holds, show any claim of a token
that was not verified (forged, unknown), or hold an uploaded document whole in memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.presentation import Lang, render_page
from gateway.verification.radar import Radar
from gateway.verification.service import (
    DocumentVerdict,
    Verdict,
    VerificationService,
    VerificationUnavailable,
)
from gateway.verification.upload import UploadProblem, multipart_upload

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


# A verdict's symbol, shown with its words (never colour alone).
SYMBOLS = {
    "valid": "✓",
    "revoked": "✗",
    "unknown": "?",
    "forged": "!",
    "match": "✓",
    "no-match": "?",
    "error": "!",
}


@dataclass(frozen=True, slots=True)
class Banner:
    """The verdict at the top of a page: its status, symbol and catalogue keys."""

    status: str
    detail_key: str | None

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.status]

    @property
    def title_key(self) -> str:
        return f"status.{self.status}.title"


def _banner(status: str, detail_key: str | None = None) -> Banner:
    return Banner(status, detail_key if detail_key is not None else f"status.{status}.detail")


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """What a valid or revoked token's page states, names in the page's language."""

    agency_name: str | None
    agency_code: str | None
    registry: str | None
    issued_at: str | None
    sender_name: str | None
    revoked: bool
    revoked_at: str | None
    revoked_reason: str | None
    documents: tuple[tuple[str, str], ...]  # (name, sha256)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A document check's result: its SHA-256 and the messages holding it."""

    sha256: str
    matches: tuple[tuple[str, str, str, str], ...]  # registry, agency name, code, status


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


def _switch(lang: Lang) -> str:
    """A relative link to the same page in the other language."""
    return "?lang=ar" if lang == "en" else "?lang=en"


def _render(template: str, lang: Lang, title_key: str, **context: object) -> str:
    return render_page(
        template,
        lang=lang,
        title_key=title_key,
        switch_href=_switch(lang),
        other_lang="en" if lang == "ar" else "ar",
        check_action=PAGE_CHECK_ROUTE + ("?lang=en" if lang == "en" else ""),
        **context,
    )


def _facts(verdict: Verdict, lang: Lang) -> TokenFacts:
    agency, sender, revoked = verdict.agency, verdict.sender, verdict.revoked
    arabic = lang == "ar"
    return TokenFacts(
        agency_name=None if agency is None else (agency.name_ar if arabic else agency.name_en),
        agency_code=None if agency is None else agency.code,
        registry=verdict.registry,
        issued_at=None if verdict.issued_at is None else utc_display(verdict.issued_at),
        sender_name=None if sender is None else (sender.name_ar if arabic else sender.name_en),
        revoked=revoked is not None,
        revoked_at=None if revoked is None else _stored_display(revoked.at),
        revoked_reason=None if revoked is None else (revoked.reason or None),
        documents=tuple((d.name, d.sha256) for d in verdict.documents),
    )


def token_page(verdict: Verdict, lang: Lang) -> str:
    """The page for one token's verdict; only a valid or revoked verdict shows facts."""
    shows_facts = verdict.status in ("valid", "revoked")
    return _render(
        "page_token.html",
        lang,
        "page.title",
        banner=_banner(verdict.status),
        facts=_facts(verdict, lang) if shows_facts else None,
    )


def check_page(result: DocumentVerdict | None, lang: Lang) -> str:
    """The document check: the form alone (`result` None), or a result with the form."""
    shown = None
    if result is not None:
        shown = CheckResult(
            result.sha256,
            tuple(
                (m.registry, m.agency.name_ar if lang == "ar" else m.agency.name_en,
                 m.agency.code, "valid" if m.status == "valid" else "revoked")
                for m in result.matches
            ),
        )  # fmt: skip
    banner = None if result is None else _banner(result.status)
    return _render("page_check.html", lang, "page.check_title", banner=banner, result=shown)


def message_page(lang: Lang, reason: str) -> str:
    """A failed check (a reason key under `page.`), with the form to try again."""
    banner = _banner("error", f"page.{reason}")
    return _render("page_check.html", lang, "page.check_title", banner=banner, result=None)


def html_response(page: str, status: int = 200) -> Response:
    return HTMLResponse(page, status_code=status, headers=PAGE_HEADERS)


# ---------------------------------------------------------------- routes


@dataclass(frozen=True, slots=True)
class _Upload:
    sha256: str | None  # None: no file, or an empty one
    lang: Lang


async def _read_upload(request: Request, limit: int, lang: Lang) -> _Upload | str:
    """The SHA-256 of the form's `file` and its `lang` field; a reason when
    it cannot be read (see verification.upload; worded under `page.`)."""
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
        wait = await radar.check(client, "token")
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
        wait = await radar.check(client, "document")
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
