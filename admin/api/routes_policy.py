"""Routes of the routing policy: the running version, history, diff, validate,
apply, explain, case tables and audit-mode rule hits.

Owns: the HTTP shape of admin.services.policy, .policy_versions and
.audit.policy_hits (bodies, response models, paging). Must not: validate,
evaluate or store a policy itself; the services check the role (only
system-admin changes the policy; scoped roles never reach it) and audit.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from admin.api.auth import current_actor
from admin.api.bodies import read_text, text_body_openapi
from admin.api.deps import context
from admin.api.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, page_of
from admin.context import App
from admin.services import audit, policy, policy_versions
from admin.services.actor import Actor
from gateway.store.policy_versions import VersionInfo
from policies.problems import Problem
from policies.render import case_report_json, explanation_json

router = APIRouter(tags=["policy"])
ACTOR = Depends(current_actor)
CONTEXT = Depends(context)
LIMIT = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
VERSION_ID = Path(ge=1, le=2**62)
HITS = "policy-hits"
VERSIONS = "policy-versions"


class ProblemOut(BaseModel):
    file: str
    line: int | None = Field(description="1-based; null when it concerns the whole text")
    rule: str | None
    severity: str
    message: str


class VersionSummary(BaseModel):
    id: int
    sha256: str
    source: str = Field(description='where it came from: "api", "cli" or "file:<path>"')
    applied_by: str
    applied_at: str
    role: str
    client: str


class VersionOut(VersionSummary):
    name: str | None = Field(description="the name it was applied under")
    text: str


class AppliedOut(BaseModel):
    created: bool = Field(description="false: the text was the running version's already")
    version: VersionOut
    warnings: list[ProblemOut]


class CheckOut(BaseModel):
    ok: bool
    sha256: str
    errors: int
    problems: list[ProblemOut]


class DiffOut(BaseModel):
    old: int
    new: int
    diff: str = Field(description="unified diff of the old version's text to the new one's")


class ExplainRequest(BaseModel):
    sender: str = Field(max_length=320)
    recipient: str = Field(max_length=320)
    classification: str | None = Field(default=None, max_length=32)
    size: int | None = Field(default=None, ge=0, le=2**40)
    recipient_count: int | None = Field(default=None, ge=1, le=1_000_000)
    policy_text: str | None = Field(
        default=None, max_length=1024 * 1024, description="a draft; the running policy if absent"
    )


class PolicyRef(BaseModel):
    file: str
    sha256: str


class ExplanationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    sender_address: str = Field(alias="from")
    recipient_address: str = Field(alias="to")
    sender: str = Field(description="the sender as the directory knows it")
    recipient: str = Field(description="the recipient as the directory knows it")
    facts: dict[str, Any]
    policy: PolicyRef
    decision: dict[str, Any]
    trace: list[dict[str, Any]]


class CaseReportOut(BaseModel):
    ok: bool
    cases_file: str
    policy: PolicyRef
    total: int
    failed: int
    problems: list[ProblemOut]
    failures: list[dict[str, Any]]


def _problems(problems: tuple[Problem, ...]) -> list[ProblemOut]:
    return [ProblemOut.model_validate(p.to_dict()) for p in problems]


def _summary(info: VersionInfo) -> VersionSummary:
    return VersionSummary(
        id=info.id, sha256=info.sha256, source=info.source, applied_by=info.applied_by,
        applied_at=info.applied_at, role=info.role, client=info.client,
    )  # fmt: skip


def _version(info: VersionInfo, name: str | None) -> VersionOut:
    return VersionOut(**_summary(info).model_dump(), name=name, text=info.text)


@router.get("/policy", response_model=VersionOut)
async def running_policy(actor: Actor = ACTOR, app: App = CONTEXT) -> VersionOut:
    """The running policy version (the newest), with its text."""
    found = await policy_versions.named_version(actor, app)
    return _version(found.version, found.name)


@router.put(
    "/policy", response_model=AppliedOut, status_code=201,
    responses={200: {"model": AppliedOut, "description": "unchanged: the running version"}},
    openapi_extra=text_body_openapi("the policy"),
)  # fmt: skip
async def apply_policy(
    request: Request, response: Response,
    name: str = Query("api", min_length=1, max_length=200),
    actor: Actor = ACTOR, app: App = CONTEXT,
) -> AppliedOut:  # fmt: skip
    """Validate the policy, then make it the running version of every node (201).

    Every problem is listed by line in a 422 problem and nothing changes. Text
    identical to the running version's answers 200 with that version and writes
    nothing, so a retry is safe (idempotent).
    """
    text = await read_text(request)
    applied = await policy_versions.apply_policy(actor, app, text, name=name)
    if not applied.created:
        response.status_code = 200
    found = await policy_versions.named_version(actor, app, applied.version.id)
    return AppliedOut(
        created=applied.created,
        version=_version(found.version, found.name),
        warnings=_problems(applied.warnings),
    )


@router.get("/policy/versions", response_model=Page[VersionSummary])
async def version_history(
    request: Request, limit: int = LIMIT, cursor: str | None = Query(None, max_length=200),
    actor: Actor = ACTOR, app: App = CONTEXT,
) -> Page[VersionSummary]:  # fmt: skip
    """Policy versions, newest first (without their text)."""
    cursors = request.app.state.cursors
    before = cursors.decode(VERSIONS, cursor)
    found = await policy_versions.policy_history(
        actor, app, limit=limit + 1, before=int(before) if before is not None else None
    )
    items = [_summary(info) for info in found]
    return page_of(items, lambda v: v.id, limit, VERSIONS, cursors)


@router.get("/policy/versions/{version_id}", response_model=VersionOut)
async def one_version(
    version_id: int = VERSION_ID, actor: Actor = ACTOR, app: App = CONTEXT
) -> VersionOut:
    """One policy version with its text."""
    found = await policy_versions.named_version(actor, app, version_id)
    return _version(found.version, found.name)


@router.get("/policy/versions/{version_id}/diff", response_model=DiffOut)
async def version_diff(
    version_id: int = VERSION_ID, against: int = Query(ge=1, le=2**62),
    actor: Actor = ACTOR, app: App = CONTEXT,
) -> DiffOut:  # fmt: skip
    """A unified diff from version `against` to this version."""
    diff = await policy_versions.policy_diff(actor, app, against, version_id)
    return DiffOut(old=against, new=version_id, diff=diff)


@router.post(
    "/policy/validate", response_model=CheckOut, openapi_extra=text_body_openapi("the policy")
)
async def validate_policy(request: Request, actor: Actor = ACTOR, app: App = CONTEXT) -> CheckOut:
    """Check a policy against the directory: every problem with its line. Changes nothing."""
    text = await read_text(request)
    source = policy.PolicySource(text=text, name="<text>")
    result = await policy.check_source(actor, app, source)
    return CheckOut(
        ok=result.ok, sha256=result.sha256, errors=result.errors,
        problems=_problems(result.problems),
    )  # fmt: skip


@router.post("/policy/explain", response_model=ExplanationOut, response_model_by_alias=True)
async def explain(body: ExplainRequest, actor: Actor = ACTOR, app: App = CONTEXT) -> ExplanationOut:
    """The decision for sender -> recipient under the running policy (or a draft
    sent as `policy_text`), with the rules considered. Changes nothing."""
    draft = None
    if body.policy_text is not None:
        draft = policy.PolicySource(text=body.policy_text, name="<draft>")
    query = policy.ExplainQuery(
        sender=body.sender, recipient=body.recipient, classification=body.classification,
        size=body.size, recipient_count=body.recipient_count, policy=draft,
    )  # fmt: skip
    explanation = await policy.explain_decision(actor, app, query)
    return ExplanationOut.model_validate(explanation_json(explanation))


@router.post(
    "/policy/cases", response_model=CaseReportOut,
    openapi_extra=text_body_openapi("the case table"),
)  # fmt: skip
async def run_cases(request: Request, actor: Actor = ACTOR, app: App = CONTEXT) -> CaseReportOut:
    """Run a case table (expected decisions) against the running policy; failures
    are in the report (200). Changes nothing."""
    text = await read_text(request)
    run = policy.CaseRun(policy=None, cases=policy.PolicySource(text=text, name="<cases>"))
    report = await policy.run_case_table(actor, app, run)
    return CaseReportOut.model_validate(case_report_json(report))


@router.get("/policy/hits", response_model=Page[audit.PolicyHit])
async def policy_hits(
    request: Request,
    rule: str | None = Query(None, max_length=100),
    since: str | None = Query(None, max_length=64, description="ISO 8601, or a span: 24h, 7d"),
    limit: int = LIMIT, cursor: str | None = Query(None, max_length=200),
    actor: Actor = ACTOR, app: App = CONTEXT,
) -> Page[audit.PolicyHit]:  # fmt: skip
    """Matches of audit-mode rules, newest first (a scoped role: its subtree's only)."""
    cursors = request.app.state.cursors
    before = cursors.decode(HITS, cursor)
    query = audit.PolicyHitQuery(
        rule=rule, since=since, limit=limit + 1, newest_first=True,
        before=int(before) if before is not None else None,
    )  # fmt: skip
    found = await audit.policy_hits(actor, app, query)
    return page_of(found, lambda hit: hit.event_id, limit, HITS, cursors)
