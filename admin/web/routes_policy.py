"""The web admin's pages of the routing policy, under /admin/policy.

Owns: the HTTP shape of these pages: the running version and its text, the
editor (check shows every problem with its line and changes nothing; apply makes
a new version, then redirects to it), version history and a version's diff
against the one before, explain, case tables and audit-mode rule hits. Must not:
validate, evaluate or store a policy itself (admin.services.policy,
.policy_versions and .audit do, and check the role: only system-admin applies).

Failure behaviour: no session -> sign-in; a form without its CSRF field -> 403,
nothing done; a service refusal -> pages.refusal (a role refusal 403, an
unknown version 404); an invalid policy -> the editor again (422) with every
problem and the text as typed, nothing applied.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from admin.services import audit, policy, policy_versions
from admin.services.actor import Actor, Area, Forbidden, OutOfScope, may
from admin.services.errors import ServiceError
from admin.web.pages import PREFIX, Frame, page, posted, refusal, signed_in, to
from admin.web.session import LARGE_FORM
from policies.problems import Problem

router = APIRouter(include_in_schema=False)
HOME = f"{PREFIX}/policy"
REFUSED = (Forbidden, OutOfScope, ServiceError)
MAX_ID = 2**62
HISTORY = 50
HITS = 100
_NOTICES = {"applied": "policy.applied", "unchanged": "policy.unchanged"}


def may_apply(actor: Actor) -> bool:
    return may(actor, Area.POLICY, write=True, agency_path=None)


def diff_lines(diff: str) -> list[tuple[str, str]]:
    """A unified diff's lines as (kind, line): kind is head, hunk, add, del or same."""
    kinds = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            kinds.append(("head", line))
        elif line.startswith("@@"):
            kinds.append(("hunk", line))
        elif line.startswith("+"):
            kinds.append(("add", line))
        elif line.startswith("-"):
            kinds.append(("del", line))
        else:
            kinds.append(("same", line))
    return kinds


async def _running(frame: Frame) -> policy_versions.NamedVersion | None:
    try:
        return await policy_versions.named_version(frame.actor, frame.app)
    except policy_versions.VersionNotFound:
        return None


def _editor(request: Request, frame: Frame, running: policy_versions.NamedVersion | None,
            text: str, status: int = 200, **result: object) -> HTMLResponse:  # fmt: skip
    context: dict[str, object] = {"checked": None, "problems": (), "refused": None} | result
    return page(request, "policy_home.html", status, frame=frame, running=running, text=text,
                may_apply=may_apply(frame.actor), **context)  # fmt: skip


@router.get(HOME)
async def policy_home(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        running = await _running(frame)
    except REFUSED as exc:
        return refusal(request, frame, exc)
    return _editor(request, frame, running, running.version.text if running else "")


@router.post(HOME)
async def policy_edit(request: Request) -> Response:
    """The editor's two buttons: check (changes nothing) and apply."""
    answer = await posted(request, LARGE_FORM, back=HOME)
    if isinstance(answer, Response):
        return answer
    frame, fields = answer
    text = fields.get("text", "").replace("\r\n", "\n")
    try:
        running = await _running(frame)
        if fields.get("action") == "apply":
            applied = await policy_versions.apply_policy(frame.actor, frame.app, text, name="web")
            state = "applied" if applied.created else "unchanged"
            return to(f"{HOME}/versions/{applied.version.id}?m={state}")
        checked = await policy.check_source(
            frame.actor, frame.app, policy.PolicySource(text=text, name="web")
        )
    except policy_versions.PolicyInvalid as exc:
        return _editor(request, frame, running, text, 422, refused=True,
                       problems=_sorted(exc.policy_problems))  # fmt: skip
    except REFUSED as exc:
        return refusal(request, frame, exc, back=HOME)
    return _editor(request, frame, running, text, checked=checked,
                   problems=_sorted(checked.problems))  # fmt: skip


def _sorted(problems: tuple[Problem, ...]) -> list[Problem]:
    return sorted(problems, key=lambda p: (p.line or 0, p.message))


@router.get(f"{HOME}/versions")
async def versions(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    try:
        found = await policy_versions.policy_history(frame.actor, frame.app, limit=HISTORY)
    except REFUSED as exc:
        return refusal(request, frame, exc)
    return page(request, "policy_versions.html", frame=frame, versions=found)


@router.get(f"{HOME}/versions/{{version_id}}")
async def one_version(request: Request, version_id: str) -> Response:
    """A version, its text and its diff against the version before it."""
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    if not version_id.isdecimal() or not 0 < int(version_id) < MAX_ID:
        return page(request, "message.html", 404, frame=frame, message="page.not_found",
                    back=f"{HOME}/versions")  # fmt: skip
    number = int(version_id)
    try:
        found = await policy_versions.named_version(frame.actor, frame.app, number)
        older = await policy_versions.policy_history(frame.actor, frame.app, limit=1,
                                                     before=number)  # fmt: skip
        before = older[0] if older else None
        diff = "" if before is None else await policy_versions.policy_diff(
            frame.actor, frame.app, before.id, number)  # fmt: skip
    except REFUSED as exc:
        return refusal(request, frame, exc, back=f"{HOME}/versions")
    notice = _NOTICES.get(request.query_params.get("m", ""))
    return page(request, "policy_version.html", frame=frame, found=found, before=before,
                diff=diff_lines(diff), notice=notice)  # fmt: skip


def _explain_form(request: Request, frame: Frame, fields: dict[str, str],
                  status: int = 200, **result: object) -> HTMLResponse:  # fmt: skip
    context: dict[str, object] = {"explanation": None} | result
    return page(request, "policy_explain.html", status, frame=frame, fields=fields, **context)


@router.get(f"{HOME}/explain")
async def explain_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    if not may(frame.actor, Area.POLICY, write=False, agency_path=None):
        return refusal(request, frame, Forbidden("policy"))
    return _explain_form(request, frame, {})


@router.post(f"{HOME}/explain")
async def explain(request: Request) -> Response:
    """The decision for sender -> recipient under the running policy, and its trace."""
    answer = await posted(request)
    if isinstance(answer, Response):
        return answer
    frame, fields = answer
    kept = {name: fields.get(name, "").strip()[:320]
            for name in ("sender", "recipient", "classification")}  # fmt: skip
    query = policy.ExplainQuery(sender=kept["sender"], recipient=kept["recipient"],
                                classification=kept["classification"] or None)  # fmt: skip
    try:
        explanation = await policy.explain_decision(frame.actor, frame.app, query)
    except REFUSED as exc:
        return refusal(request, frame, exc, back=f"{HOME}/explain")
    return _explain_form(request, frame, kept, explanation=explanation)


@router.get(f"{HOME}/cases")
async def cases_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    if not may(frame.actor, Area.POLICY, write=False, agency_path=None):
        return refusal(request, frame, Forbidden("policy"))
    return page(request, "policy_cases.html", frame=frame, text="", report=None)


@router.post(f"{HOME}/cases")
async def run_cases(request: Request) -> Response:
    """Run a pasted case table against the running policy; the report (changes nothing)."""
    answer = await posted(request, LARGE_FORM, back=f"{HOME}/cases")
    if isinstance(answer, Response):
        return answer
    frame, fields = answer
    text = fields.get("text", "").replace("\r\n", "\n")
    run = policy.CaseRun(policy=None, cases=policy.PolicySource(text=text, name="cases"))
    try:
        report = await policy.run_case_table(frame.actor, frame.app, run)
    except REFUSED as exc:
        return refusal(request, frame, exc, back=f"{HOME}/cases")
    return page(request, "policy_cases.html", frame=frame, text=text, report=report)


@router.get(f"{HOME}/hits")
async def hits(request: Request) -> Response:
    """Matches of audit-mode rules, newest first."""
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    query = audit.PolicyHitQuery(limit=HITS, newest_first=True)
    try:
        found = await audit.policy_hits(frame.actor, frame.app, query)
    except REFUSED as exc:
        return refusal(request, frame, exc)
    return page(request, "policy_hits.html", frame=frame, hits=found)
