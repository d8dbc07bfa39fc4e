"""Routes of background jobs: the directory import, and a job's state.

Owns: taking the CSV of a directory import as the request body, checking every
row before answering (bad rows: 422 listing each with its line, nothing
imported), starting the import as a job (202 with where to follow it; with an
`Idempotency-Key`, a retry answers the same job), and showing a job to the
account that started it (or a system administrator).
Must not: parse or import rows itself (`admin.services.bulk_import` does).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel

from admin.api.auth import current_actor
from admin.api.deps import context, jobs
from admin.api.idempotency import fingerprint, idempotency_key
from admin.api.jobs import Job, Jobs, JobsBusy, JobView, KeyReused, Retry, UnknownJob
from admin.api.problems import ApiProblem
from admin.context import App
from admin.services import bulk_import
from admin.services.actor import Actor

router = APIRouter(tags=["jobs"])
ACTOR = Depends(current_actor)
CONTEXT = Depends(context)
JOBS = Depends(jobs)
IDEMPOTENCY_KEY = Depends(idempotency_key)
JobId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
CSV_TYPES = ("text/csv", "application/csv")
CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "the directory CSV (UTF-8, header row; see `barid directory import`)",
    }
}


class JobStarted(BaseModel):
    job: str
    status_url: str


async def _csv_body(request: Request) -> bytes:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in CSV_TYPES:
        raise ApiProblem(415, "Unsupported Media Type", "send the CSV as text/csv",
                         kind="unsupported-media-type")  # fmt: skip
    return await request.body()


def _key_reused() -> ApiProblem:
    message = "this Idempotency-Key was used for another request; use a new key"
    return ApiProblem(422, "Unprocessable Content", message, kind="idempotency-key-reused",
                      errors=[{"field": "header.Idempotency-Key", "message": message}])  # fmt: skip


def _started(job: Job, response: Response) -> JobStarted:
    url = f"/api/v1/jobs/{job.id}"
    response.headers["Location"] = url
    return JobStarted(job=job.id, status_url=url)


@router.post(
    "/directory/imports", response_model=JobStarted, status_code=202,
    tags=["agencies", "employees"], openapi_extra=CSV_BODY,
)  # fmt: skip
async def import_directory(
    request: Request, response: Response, dry_run: Annotated[bool, Query()] = False,
    key: str | None = IDEMPOTENCY_KEY, actor: Actor = ACTOR, app: App = CONTEXT,
    registry: Jobs = JOBS,
) -> JobStarted:  # fmt: skip
    """Import agencies and employees from CSV as a background job: all rows or none.

    Every row is checked first: bad rows answer 422 listing each with its line
    number, and nothing is imported. A good file answers 202 with the job to
    follow at `status_url`. `dry_run` checks and counts inside a transaction that
    is rolled back.

    Safe to retry with an `Idempotency-Key`: the same key with the same body (and
    `dry_run`) answers 202 with the job it started, while that job is kept; the
    same key with another request is 422. Without the header each request starts
    a job.
    """
    body = await _csv_body(request)
    retry = None
    if key is not None:
        retry = Retry(key, fingerprint(b"dry_run=1" if dry_run else b"dry_run=0", body))
        try:
            earlier = registry.find(actor, "directory-import", retry)
        except KeyReused:
            raise _key_reused() from None
        if earlier is not None:
            return _started(earlier, response)
    data = bulk_import.DirectoryImport(data=body, source="import", dry_run=dry_run)
    await bulk_import.check_import(actor, app, data)

    async def work(job: Job) -> bulk_import.ImportResult:
        return await bulk_import.import_directory(actor, app, data, progress=job.counter)

    try:
        job = registry.start(actor, "directory-import", work, retry=retry)
    except KeyReused:
        raise _key_reused() from None
    except JobsBusy:
        raise ApiProblem(503, "Service Unavailable", "too many jobs are running; try later",
                         kind="busy", headers={"Retry-After": "30"}) from None  # fmt: skip
    return _started(job, response)


@router.get("/jobs/{job_id}", response_model=JobView)
async def show_job(job_id: JobId, actor: Actor = ACTOR, registry: Jobs = JOBS) -> JobView:
    """A job's state (queued, running, done, failed), progress, result or error.
    Only the account that started it (or a system administrator) sees it."""
    try:
        return registry.get(actor, job_id).view()
    except UnknownJob:
        raise ApiProblem(404, "Not Found", "no such job", kind="not-found") from None
