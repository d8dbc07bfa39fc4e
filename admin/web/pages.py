"""What every signed-in web admin page shares: the frame, the navigation, and the
way a page meets the session, its form and a service's refusal.

Owns: `page` (render a template in the request's language, remembering it),
`to` (a 303 redirect), `signed_in` (the session's actor and CSRF token, or the
redirect to sign-in), `posted` (the same for a form post, with the CSRF field
checked), `refusal` (a service refusal as a short bilingual page, never its
internal text) and `NAV` (the main navigation: an entry is shown only to roles
that may read its area, so controls a role cannot use are absent).

Call order for a page handler: `frame = await signed_in(request)` (a Response
means: return it), call one service function with `frame.actor`, render with
`page(request, name, frame=frame, ...)`. For a form post: `posted(request)`
instead of `signed_in`, which also returns the form's fields (`max_bytes=
session.LARGE_FORM` for a form that carries a policy, a CSV or a key).
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from admin.context import App
from admin.services.actor import Actor, Area, Forbidden, OutOfScope, may
from admin.services.errors import InvalidInput, NotFound, ServiceError, Unavailable
from admin.web import session
from admin.web.render import render

PREFIX = "/admin"


@dataclass(frozen=True)
class NavEntry:
    path: str
    key: str  # catalogue key of its label
    area: Area | None  # shown to roles that may read this area (None: everyone)


NAV: tuple[NavEntry, ...] = (
    NavEntry(f"{PREFIX}/dashboard", "site.dashboard", None),
    NavEntry(f"{PREFIX}/directory", "dir.nav", Area.DIRECTORY),
    NavEntry(f"{PREFIX}/policy", "site.policy", Area.POLICY),
    NavEntry(f"{PREFIX}/messages", "site.messages", Area.MESSAGES),
    NavEntry(f"{PREFIX}/security", "site.security", Area.AUDIT),
    NavEntry(f"{PREFIX}/account", "account.nav", None),
)


@dataclass(frozen=True)
class Frame:
    """The signed-in caller of one request."""

    actor: Actor
    csrf: str
    app: App

    def nav(self) -> list[NavEntry]:
        """The entries this caller may follow (a scoped role: inside its own subtree)."""
        home = [self.actor.agency] if self.actor.agency else None
        return [
            entry
            for entry in NAV
            if entry.area is None or may(self.actor, entry.area, write=False, agency_path=home)
        ]


def page(
    request: Request, name: str, status: int = 200, /, frame: Frame | None = None, **context: object
) -> HTMLResponse:
    """Template `name` in the request's language; with `frame`, the signed-in frame."""
    choice = session.language(request)
    if frame is not None:
        context |= {"actor": frame.actor, "csrf": frame.csrf, "nav": frame.nav()}
    body = render(name, choice.lang, here=request.url.path, **context)
    response = HTMLResponse(body, status_code=status)
    session.remember_language(response, choice)
    return response


def to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _to_sign_in(exc: session.NoSession) -> RedirectResponse:
    return to(f"{PREFIX}/sign-in" + ("?m=expired" if exc.ended else ""))


async def signed_in(request: Request) -> Frame | Response:
    """The caller's frame, or the redirect to sign-in (saying the session ended)."""
    try:
        current = await session.current_session(request)
    except session.NoSession as exc:
        return _to_sign_in(exc)
    return Frame(current.actor, current.csrf_secret, request.app.state.context)


async def posted(
    request: Request, max_bytes: int = session.MAX_FORM, back: str | None = None
) -> tuple[Frame, session.Fields] | Response:
    """A form post's frame and fields, its CSRF field checked; else the answer to give
    (a body over `max_bytes`: 413, nothing read further or done)."""
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        fields = await session.form(request, max_bytes)
        session.check_csrf(fields, frame.csrf)
    except session.FormTooLarge as exc:
        return page(request, "message.html", 413, frame=frame, message="form.too_large",
                    args={"size": _size(exc.limit)}, back=back)  # fmt: skip
    except session.FormRefused:
        return page(request, "message.html", 403, frame=frame, message="signin.form_expired",
                    back=None)  # fmt: skip
    return frame, fields


def _size(limit: int) -> str:
    mib, rest = divmod(limit, 1024 * 1024)
    return f"{mib} MiB" if mib and not rest else f"{limit // 1024} KiB"


# Service refusals as pages: (catalogue key, status). The service's own message is
# safe to show (admin.services.errors) and is passed as `detail`.
_REFUSALS: list[tuple[type[Exception], str, int]] = [
    (Forbidden, "page.forbidden", 403),
    (OutOfScope, "page.not_found", 404),
    (NotFound, "page.not_found", 404),
    (InvalidInput, "page.invalid", 422),
    (Unavailable, "page.unavailable", 503),
    (ServiceError, "page.refused", 409),
]


def refusal(
    request: Request, frame: Frame, exc: Exception, back: str | None = None
) -> HTMLResponse:
    """A refusal page for `exc` (one of the service layer's refusals)."""
    for kind, key, status in _REFUSALS:
        if isinstance(exc, kind):
            detail = str(exc) if isinstance(exc, ServiceError) else None
            problems = exc.problems if isinstance(exc, ServiceError) else []
            return page(request, "message.html", status, frame=frame, message=key,
                        detail=detail, problems=problems, back=back)  # fmt: skip
    raise exc
