"""The shared frame of the web admin's pages: the catalogue split by area (a key
defined once), the navigation shown by role, and service refusals as pages that
show the service's safe message and problems but never an internal one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from starlette.requests import Request

from admin.services.actor import Actor, Area, Forbidden, Role
from admin.services.errors import InvalidInput
from admin.web import catalogue as catalogue_module
from admin.web import pages
from admin.web.pages import Frame, NavEntry
from gateway.presentation.catalogue import CatalogueError

ADMIN = Actor("root@gov.example", Role.SYSTEM_ADMIN)
MOF = Actor("a@mof.example", Role.AGENCY_ADMIN, agency="MOF")
AUDITOR = Actor("w@gov.example", Role.SECURITY_AUDITOR)
REGISTRAR = Actor("r@mof.example", Role.REGISTRAR, agency="MOF")


def _request() -> Request:
    scope = {"type": "http", "method": "GET", "path": "/admin/x", "headers": [],
             "query_string": b"", "app": None}  # fmt: skip
    return Request(scope)


def test_every_key_is_in_arabic_and_english_and_area_files_are_merged() -> None:
    words = catalogue_module.catalogue()
    assert all(set(entry) == {"ar", "en"} for entry in words.values())
    assert "page.not_found" in words and "site.dashboard" in words


def test_a_key_defined_in_two_files_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    (templates / "words").mkdir(parents=True)
    (templates / "words.yaml").write_text('a.b: {ar: "أ", en: "a"}\n', encoding="utf-8")
    (templates / "words" / "x.yaml").write_text('a.b: {ar: "ب", en: "b"}\n', encoding="utf-8")

    class Files:
        def joinpath(self, *parts: str) -> Path:
            return tmp_path.joinpath(*parts)

    monkeypatch.setattr(catalogue_module.resources, "files", lambda _name: Files())
    catalogue_module.catalogue.cache_clear()
    try:
        with pytest.raises(CatalogueError, match=r"words/x\.yaml: keys defined in another file"):
            catalogue_module.catalogue()
    finally:
        monkeypatch.undo()
        catalogue_module.catalogue.cache_clear()


def test_navigation_shows_only_what_the_role_may_read(monkeypatch: pytest.MonkeyPatch) -> None:
    nav = (
        NavEntry("/admin/dashboard", "site.dashboard", None),
        NavEntry("/admin/directory", "site.dashboard", Area.DIRECTORY),
        NavEntry("/admin/policy", "site.dashboard", Area.POLICY),
        NavEntry("/admin/security", "site.dashboard", Area.ALERTS),
    )
    monkeypatch.setattr(pages, "NAV", nav)
    app: Any = None

    def shown(actor: Actor) -> list[str]:
        return [entry.path for entry in Frame(actor, "csrf", app).nav()]

    assert shown(ADMIN) == [entry.path for entry in nav]
    assert shown(AUDITOR) == [entry.path for entry in nav]
    assert shown(MOF) == ["/admin/dashboard", "/admin/directory"]
    assert shown(REGISTRAR) == ["/admin/dashboard"]


def test_refusals_show_the_services_words_never_an_internal_error() -> None:
    frame = Frame(MOF, "csrf", None)  # type: ignore[arg-type]
    bad = InvalidInput("2 rows refused", problems=["line 2: bad code", "line 3: <b>x</b>"])
    page = pages.refusal(_request(), frame, bad)
    assert page.status_code == 422
    body = bytes(page.body).decode()
    assert "line 2: bad code" in body and "&lt;b&gt;x&lt;/b&gt;" in body
    assert pages.refusal(_request(), frame, Forbidden("role x may not")).status_code == 403
    with pytest.raises(RuntimeError):  # not a refusal: never shown, left to the error handler
        pages.refusal(_request(), frame, RuntimeError("/var/lib/barid secret"))
