"""Routes of agencies: list, tree, show, add, change, move, retire, trust a CA.

Owns: the HTTP shape of the agency use cases of `admin.services.directory`
(request bodies with length limits, paging, status codes). Must not: check
permissions or scope, or change anything itself: each route makes one service
call, whose refusals become problem details (outside the caller's subtree: 404,
a role's missing right: 403, bad input: 422 listing every problem).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel, Field

from admin.api.auth import current_actor
from admin.api.deps import context, cursors
from admin.api.paging import DEFAULT_LIMIT, MAX_LIMIT, Cursors, Page, page_after
from admin.context import App
from admin.services import directory
from admin.services.actor import Actor
from admin.services.directory import AgencyDetail, AgencyNode, AgencyView, TrustedCaResult
from admin.services.model import Existing

router = APIRouter(tags=["agencies"])
ACTOR = Depends(current_actor)
CONTEXT = Depends(context)
CURSORS = Depends(cursors)
Code = Annotated[str, Path(pattern=r"^[A-Za-z0-9-]{1,80}$", description="the agency code")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=512)]
CODE_LEN, NAME_LEN, DOMAIN_LEN = 80, 200, 253


class NewAgency(BaseModel):
    code: str = Field(max_length=CODE_LEN)
    name_en: str = Field(max_length=NAME_LEN)
    name_ar: str = Field(default="", max_length=NAME_LEN, description="default: name_en")
    kind: str = Field(max_length=32, description="ministry|entity|governorate|directorate|...")
    domain: str = Field(max_length=DOMAIN_LEN)
    parent: str | None = Field(default=None, max_length=CODE_LEN, description="None: a root")


class AgencyEdit(BaseModel):
    """The fields to change; a field left out stays as it is."""

    name_en: str | None = Field(default=None, max_length=NAME_LEN)
    name_ar: str | None = Field(default=None, max_length=NAME_LEN)
    kind: str | None = Field(default=None, max_length=32)


class NewParent(BaseModel):
    parent: str | None = Field(max_length=CODE_LEN, description="None: make it a root")


class CaCertificate(BaseModel):
    pem: str = Field(max_length=directory.MAX_KEY_FILE, description="a PEM X.509 CA certificate")


@router.get("/agencies", response_model=Page[AgencyView])
async def list_agencies(
    limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None, actor: Actor = ACTOR,
    app: App = CONTEXT, signer: Cursors = CURSORS,
) -> Page[AgencyView]:  # fmt: skip
    """Agencies the caller may see (an agency administrator: its subtree), by code."""
    rows = await directory.list_agencies(actor, app)
    return page_after(rows, lambda a: a.code, cursor=cursor, limit=limit,
                      listing="agencies", cursors=signer)  # fmt: skip


@router.get("/agencies/tree", response_model=list[AgencyNode])
async def agency_tree(actor: Actor = ACTOR, app: App = CONTEXT) -> list[AgencyNode]:
    """The agency tree as nested nodes: every root, or the caller's own subtree."""
    return await directory.agency_tree(actor, app)


@router.get("/agencies/{code}", response_model=AgencyDetail)
async def show_agency(code: Code, actor: Actor = ACTOR, app: App = CONTEXT) -> AgencyDetail:
    """An agency with its ancestors (nearest first), subtree, staff count, trusted CAs."""
    return await directory.show_agency(actor, app, code)


@router.post(
    "/agencies", response_model=AgencyView, status_code=201,
    responses={200: {"model": AgencyView, "description": "the same agency existed already"}},
)  # fmt: skip
async def add_agency(
    body: NewAgency, response: Response, actor: Actor = ACTOR, app: App = CONTEXT
) -> AgencyView:
    """Add an agency under its parent (a root: system administrators only).

    Safe to retry: when the same active agency exists already (every field equal,
    same parent) the answer is 200 with it and nothing changes; another agency
    with that code (or one differing only in hyphens) is 409.
    """
    data = directory.AgencyAdd(**body.model_dump())
    view, created = await directory.add_agency_once(actor, app, data)
    if not created:
        response.status_code = 200
    return view


@router.patch("/agencies/{code}", response_model=AgencyView)
async def change_agency(
    code: Code, body: AgencyEdit, actor: Actor = ACTOR, app: App = CONTEXT
) -> AgencyView:
    """Change an agency's names or kind (idempotent: the same change twice changes nothing)."""
    data = directory.AgencyChange(code=code, **body.model_dump(exclude_none=True))
    return await directory.change_agency(actor, app, data)


@router.post("/agencies/{code}/move", response_model=AgencyView)
async def move_agency(
    code: Code, body: NewParent, actor: Actor = ACTOR, app: App = CONTEXT
) -> AgencyView:
    """Move an agency under another (both in the caller's scope); a cycle is 422."""
    return await directory.move_agency(
        actor, app, directory.AgencyMove(code=code, parent=body.parent)
    )


@router.post("/agencies/{code}/retire", response_model=AgencyView)
async def retire_agency(code: Code, actor: Actor = ACTOR, app: App = CONTEXT) -> AgencyView:
    """Retire (suspend) an agency: it takes no new employees.
    An agency administrator may not retire its own agency (403).

    Safe to retry: an agency retired already answers 200 with it and nothing
    changes (no audit event).
    """
    return await directory.retire_agency(actor, app, code, existing_ok=True)


@router.post(
    "/agencies/{code}/trusted-cas", response_model=TrustedCaResult, status_code=201,
    responses={200: {"model": TrustedCaResult, "description": "the CA was trusted already"}},
)  # fmt: skip
async def trust_ca(
    code: Code, body: CaCertificate, response: Response, actor: Actor = ACTOR, app: App = CONTEXT
) -> TrustedCaResult:
    """Trust a CA to issue S/MIME certificates for the agency and those below it.

    Safe to retry: a CA the agency trusts already answers 200 with it and nothing
    changes (no audit event).
    """
    data = directory.TrustCa(code=code, pem=body.pem.encode("utf-8"), source="pem")
    result = await directory.trust_ca(actor, app, data, existing_ok=True)
    if isinstance(result, Existing):
        response.status_code = 200
    return result
