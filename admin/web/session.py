"""Who is using a web admin page, in which language, and whether a form is genuine.

Owns: the language choice (`?lang=` remembered in a cookie, Arabic by default),
the signed-in session behind the admin session cookie (the same cookie and
session service as the API's POST /api/v1/session), and the CSRF rule for forms:
every POST carries a token in the `csrf` field, the session's CSRF secret once
signed in, before that a random token also held in a SameSite=Strict cookie;
and reading a posted form within its size limit (16 KiB unless a route asks for
more, e.g. `LARGE_FORM` for a policy or a CSV), URL-encoded or multipart (a file
input's content is kept as bytes in `Fields.files`).
Must not: render pages or run use cases.

Failure behaviour: `NoSession` for no or an ended session (`ended` says whether a
cookie was sent, so the page can say the session expired); `FormRefused` for a
missing or wrong CSRF token or an unreadable form; `FormTooLarge` for a body over
the route's limit (nothing past the limit kept, nothing parsed). No detail of
why a session ended is given.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from urllib.parse import parse_qs

from fastapi import Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from admin.api.auth import (
    SESSION_COOKIE,
    Authenticator,
    NotAuthenticated,
    SessionActor,
    client_address,
)
from gateway.presentation.catalogue import Lang

LANG_COOKIE = "barid_admin_lang"
FORM_COOKIE = "barid_admin_form"  # the sign-in form's CSRF token, before a session exists
CSRF_FIELD = "csrf"
MAX_FORM = 16 * 1024
LARGE_FORM = 1024 * 1024  # a policy, a case table, a CSV import, a key or certificate
MAX_FILES = 4
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


class NoSession(Exception):
    def __init__(self, ended: bool) -> None:
        super().__init__("no session")
        self.ended = ended


class FormRefused(Exception):
    """A POST without the right CSRF token, or a form that cannot be read."""


class FormTooLarge(Exception):
    """A posted body over the route's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__("form too large")
        self.limit = limit


class Fields(dict[str, str]):
    """A form's text fields (first value of each); uploaded files' bytes in `files`
    (a file input left empty is absent)."""

    def __init__(self, text: dict[str, str], files: dict[str, bytes] | None = None) -> None:
        super().__init__(text)
        self.files: dict[str, bytes] = files or {}

    def text_or_file(self, name: str, file_name: str) -> bytes:
        """An uploaded file's bytes if one was chosen, else the text field's (UTF-8)."""
        return self.files.get(file_name) or self.get(name, "").encode("utf-8")


@dataclass(frozen=True)
class Choice:
    lang: Lang
    remember: bool  # the request chose it with ?lang=; set the cookie


def language(request: Request) -> Choice:
    asked = request.query_params.get("lang")
    if asked in ("ar", "en"):
        return Choice(asked, True)  # type: ignore[arg-type]
    kept = request.cookies.get(LANG_COOKIE)
    return Choice("en" if kept == "en" else "ar", False)


def remember_language(response: Response, choice: Choice) -> None:
    if choice.remember:
        response.set_cookie(LANG_COOKIE, choice.lang, max_age=365 * 86400, path="/admin",
                            secure=True, httponly=True, samesite="lax")  # fmt: skip


async def current_session(request: Request) -> SessionActor:
    """The signed-in session of this request, or NoSession."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise NoSession(ended=False)
    authenticator: Authenticator = request.app.state.authenticator
    try:
        return await authenticator.by_session(cookie, client_address(request))
    except NotAuthenticated:
        raise NoSession(ended=True) from None


async def _body(request: Request, limit: int) -> bytes:
    """The request body; FormTooLarge past `limit` bytes. Nothing past the limit is
    kept, but the rest is read and dropped (the listener's own body cap bounds it)
    so that the browser, still sending, receives the 413 page."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
    if size > limit:
        raise FormTooLarge(limit)
    return b"".join(chunks)


async def _multipart(request: Request, body: bytes, limit: int) -> Fields:
    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=MAX_FILES, max_fields=100,
                             max_part_size=limit)  # fmt: skip
    try:
        parsed = await parser.parse()
    except MultiPartException:
        raise FormRefused from None
    text: dict[str, str] = {}
    files: dict[str, bytes] = {}
    try:
        for name, value in parsed.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read()
                if content and name not in files:
                    files[name] = content
            elif name not in text:
                text[name] = value
    finally:
        await parsed.close()
    return Fields(text, files)


async def form(request: Request, max_bytes: int = MAX_FORM) -> Fields:
    """The posted form's fields, URL-encoded or multipart; FormRefused if unreadable,
    FormTooLarge if its body is over `max_bytes`."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in (URLENCODED, MULTIPART):
        raise FormRefused
    body = await _body(request, max_bytes)
    if kind == MULTIPART:
        return await _multipart(request, body, max_bytes)
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused from None
    return Fields({name: values[0] for name, values in fields.items()})


def check_csrf(fields: dict[str, str], expected: str | None) -> None:
    sent = fields.get(CSRF_FIELD, "")
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise FormRefused


def form_token(request: Request) -> tuple[str, bool]:
    """The sign-in form's token, and whether it is new (to be set as a cookie)."""
    kept = request.cookies.get(FORM_COOKIE)
    if kept and 20 <= len(kept) <= 100:
        return kept, False
    return secrets.token_urlsafe(32), True


def set_form_token(response: Response, token: str) -> None:
    response.set_cookie(FORM_COOKIE, token, path="/admin", secure=True, httponly=True,
                        samesite="strict")  # fmt: skip
