"""The admin API's frame over real HTTP: who is calling, CSRF, problem details, limits.

The accounts service is not under test here: a fixed table of credentials stands
in for it (the accounts tests drive the real one).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator

import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Depends
from pydantic import BaseModel

from admin.api.app import create_admin_app
from admin.api.auth import SESSION_COOKIE, NotAuthenticated, SessionActor, current_actor
from admin.api.paging import Cursors
from admin.api.problems import ApiProblem
from admin.services.actor import Actor, Area, Role, require

ADMIN = Actor("root@gov.example", Role.SYSTEM_ADMIN, client="127.0.0.1", channel="api")
MOF_ADMIN = Actor("a@mof.example", Role.AGENCY_ADMIN, agency="MOF", channel="api")


class _Table:
    async def by_token(self, secret: str, client: str) -> Actor:
        if secret == "tok-admin":
            return ADMIN
        if secret == "tok-mof":
            return MOF_ADMIN
        raise NotAuthenticated

    async def by_session(self, session_id: str, client: str) -> SessionActor:
        if session_id == "sess-1":
            return SessionActor(ADMIN, csrf_secret="csrf-1")
        raise NotAuthenticated


class Note(BaseModel):
    text: str
    count: int


def _router() -> APIRouter:
    router = APIRouter()

    @router.post("/notes", tags=["test"])
    async def add(note: Note, actor: Actor = Depends(current_actor)) -> Note:  # noqa: B008
        return note

    @router.get("/agencies/{code}", tags=["test"])
    async def agency(code: str, actor: Actor = Depends(current_actor)) -> dict[str, str]:  # noqa: B008
        require(actor, Area.DIRECTORY, write=False, agency_path=["GOV", code])
        return {"code": code}

    @router.delete("/policy", tags=["test"])
    async def policy(actor: Actor = Depends(current_actor)) -> dict[str, str]:  # noqa: B008
        require(actor, Area.POLICY, write=True, agency_path=None)
        return {}

    @router.get("/boom", tags=["test"])
    async def boom() -> dict[str, str]:
        raise RuntimeError("secret internal detail /var/lib/barid")

    @router.get("/items", tags=["test"])
    async def items(cursor: str | None = None) -> dict[str, object]:
        cursors = Cursors(b"k" * 32)
        after = cursors.decode("items", cursor)
        return {"after": after, "next": cursors.encode("items", 7)}

    @router.get("/refuse", tags=["test"])
    async def refuse() -> dict[str, str]:
        raise ApiProblem(409, "Conflict", "already there", kind="conflict")

    return router


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = create_admin_app(
        authenticator=_Table(), cursor_key=b"c" * 32, routers=[_router()], max_body=4096
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = _Server(uvicorn.Config(app, log_config=None, lifespan="off", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def _problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    return dict(body)


async def test_no_or_unknown_credentials_are_401_with_a_bearer_challenge(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
            response = await client.get("/api/v1/whoami", headers=headers)
            _problem(response, 401)
            assert response.headers["www-authenticate"].startswith("Bearer")
        ok = await client.get("/api/v1/whoami", headers={"Authorization": "Bearer tok-mof"})
        assert ok.json() == {"account": "a@mof.example", "role": "agency-admin", "agency": "MOF"}


async def test_cookie_sessions_need_the_csrf_header_to_change_anything(base: str) -> None:
    note = {"text": "x", "count": 1}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        client.cookies.set(SESSION_COOKIE, "sess-1")
        assert (await client.get("/api/v1/whoami")).status_code == 200
        assert _problem(await client.post("/api/v1/notes", json=note), 403)["type"].endswith(
            ":csrf"
        )
        wrong = await client.post("/api/v1/notes", json=note, headers={"X-CSRF-Token": "no"})
        _problem(wrong, 403)
        right = await client.post("/api/v1/notes", json=note, headers={"X-CSRF-Token": "csrf-1"})
        assert right.status_code == 200
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:  # tokens need no CSRF
        response = await client.post(
            "/api/v1/notes", json=note, headers={"Authorization": "Bearer tok-admin"}
        )
        assert response.status_code == 200


async def test_scope_is_404_and_a_missing_right_is_403(base: str) -> None:
    mof = {"Authorization": "Bearer tok-mof"}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        assert (await client.get("/api/v1/agencies/MOF", headers=mof)).status_code == 200
        body = _problem(await client.get("/api/v1/agencies/MOH", headers=mof), 404)
        assert body["detail"] == "no such object"
        _problem(await client.delete("/api/v1/policy", headers=mof), 403)


async def test_bad_input_lists_every_problem_and_errors_hide_internals(base: str) -> None:
    admin = {"Authorization": "Bearer tok-admin"}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        bad = _problem(
            await client.post("/api/v1/notes", json={"count": "many"}, headers=admin), 422
        )
        fields = {error["field"] for error in bad["errors"]}  # type: ignore[attr-defined]
        assert fields == {"body.text", "body.count"}
        boom = await client.get("/api/v1/boom")
        assert "secret" not in boom.text and "/var/lib" not in boom.text
        _problem(boom, 500)
        _problem(await client.get("/api/v1/refuse"), 409)
        _problem(await client.get("/api/v1/nothing-here"), 404)


async def test_oversized_bodies_are_refused_before_they_are_read(base: str) -> None:
    admin = {"Authorization": "Bearer tok-admin"}
    big = {"text": "x" * 10_000, "count": 1}
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        _problem(await client.post("/api/v1/notes", json=big, headers=admin), 413)

    # Chunked, so no Content-Length to refuse early: cut off once 4096 bytes were read.
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/v1/notes HTTP/1.1\r\nhost: x\r\nauthorization: Bearer tok-admin\r\n"
            b"content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        )
        for _ in range(10):
            writer.write(b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), 10)
        assert status.startswith(b"HTTP/1.1 413"), status
    finally:
        writer.close()


async def test_cursors_are_tamper_evident(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        first = (await client.get("/api/v1/items")).json()
        again = (await client.get("/api/v1/items", params={"cursor": first["next"]})).json()
        assert again["after"] == 7
        forged = first["next"][:-2] + ("AA" if not first["next"].endswith("AA") else "BB")
        _problem(await client.get("/api/v1/items", params={"cursor": forged}), 400)
        _problem(await client.get("/api/v1/items", params={"cursor": "%%%"}), 400)


async def test_openapi_is_generated_and_no_docs_page_needs_outside_scripts(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        document = (await client.get("/api/v1/openapi.json")).json()
        assert document["openapi"].startswith("3.")
        assert "/api/v1/whoami" in document["paths"]
        assert (await client.get("/docs")).status_code == 404
        response = await client.get("/api/v1/openapi.json")
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
