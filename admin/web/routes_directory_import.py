"""The directory import pages of the web admin: paste a CSV, see every bad row, or
follow the import job to its end.

Owns: the HTTP shape of the import (the form with the pasted or uploaded CSV, up
to 1 MiB; the check of
every row before anything starts; the job started in the admin app's job
registry, as the API's POST /api/v1/directory/imports does; the job's page, which
refreshes itself every 2 s while the job runs). Must not: parse, check or import
rows itself (admin.services.bulk_import does) or read the database.

Failure behaviour: bad rows -> the form again (422) with every row's problem by
line and the pasted text kept, nothing imported; a role that may not change the
directory -> 403; too many jobs running -> 503 and nothing started; a job that is
unknown or another account's -> 404.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from admin.api.jobs import Job, Jobs, JobsBusy, JobState, UnknownJob
from admin.services import bulk_import
from admin.services.errors import SERVICE_ERRORS, InvalidInput
from admin.web.pages import PREFIX, Frame, page, posted, refusal, signed_in, to
from admin.web.routes_directory import HOME, may_write
from admin.web.session import LARGE_FORM

router = APIRouter(include_in_schema=False)
IMPORT = f"{HOME}/import"
KIND = "directory-import"
REFRESH_SECONDS = 2


def _form(request: Request, frame: Frame, status: int = 200, text: str = "",
          problems: list[str] | None = None, summary: str = "") -> Response:  # fmt: skip
    return page(request, "directory_import.html", status, frame=frame, text=text,
                problems=problems or [], summary=summary)  # fmt: skip


@router.get(IMPORT)
async def import_page(request: Request) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    if not may_write(frame.actor, [frame.actor.agency] if frame.actor.agency else None):
        return page(request, "message.html", 403, frame=frame, message="page.forbidden",
                    back=HOME)  # fmt: skip
    return _form(request, frame)


@router.post(IMPORT)
async def start_import(request: Request) -> Response:
    got = await posted(request, LARGE_FORM, back=IMPORT)
    if isinstance(got, Response):
        return got
    frame, fields = got
    raw = fields.text_or_file("csv", "csv_file")
    text = raw.decode("utf-8", errors="replace")
    data = bulk_import.DirectoryImport(data=raw, source="import")
    actor, app = frame.actor, frame.app
    try:
        await bulk_import.check_import(actor, app, data)
    except InvalidInput as bad:
        lines = [str(p) for p in bad.details.get("problems", bad.problems)]
        return _form(request, frame, 422, text=text, problems=lines, summary=str(bad))
    except SERVICE_ERRORS as exc:
        return refusal(request, frame, exc, back=HOME)

    async def work(job: Job) -> bulk_import.ImportResult:
        return await bulk_import.import_directory(actor, app, data, progress=job.counter)

    registry: Jobs = request.app.state.jobs
    try:
        job = registry.start(actor, KIND, work)
    except JobsBusy:
        return page(request, "message.html", 503, frame=frame, message="page.unavailable",
                    back=IMPORT)  # fmt: skip
    return to(f"{IMPORT}/{job.id}")


@router.get(f"{IMPORT}/{{job_id}}")
async def job_page(request: Request, job_id: str) -> Response:
    frame = await signed_in(request)
    if isinstance(frame, Response):
        return frame
    registry: Jobs = request.app.state.jobs
    try:
        job = registry.get(frame.actor, job_id)
        if job.kind != KIND:
            raise UnknownJob(job_id)
    except UnknownJob:
        return page(request, "message.html", 404, frame=frame, message="page.not_found",
                    back=IMPORT)  # fmt: skip
    view = job.view()
    running = view.state in (JobState.QUEUED, JobState.RUNNING)
    return page(request, "directory_job.html", frame=frame, job=view, running=running,
                refresh=REFRESH_SECONDS if running else None, prefix=PREFIX)  # fmt: skip
