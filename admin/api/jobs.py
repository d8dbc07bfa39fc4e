"""Background jobs of the admin API: in-process asyncio tasks with their progress.

Owns: the registry of jobs this process started (a bounded number kept, oldest
finished dropped first), each job's state (queued, running, done, failed), its
progress counter and its outcome, who may see it (the account that started
it, or a system administrator), and the `Idempotency-Key` a job was started
with (per account, with the request's fingerprint; forgotten with the job).
Must not: hold a use case (a job runs a service function handed to it) or
outlive the process (jobs are not persisted).

Failure behaviour: a job that fails with a service refusal keeps that refusal's
message (safe to show by contract); any other failure is logged and shown as a
fixed text. A job that is unknown, dropped, or another account's reads as
unknown (`UnknownJob`). When every kept job is still unfinished, no new job is
started (`JobsBusy`). A key the account used for another request is refused
(`KeyReused`) and starts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from admin.services.actor import Actor, Role
from admin.services.errors import SERVICE_ERRORS

log = logging.getLogger("barid.admin.api.jobs")

DEFAULT_KEEP = 100
FAILED_TEXT = "the job could not be completed"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobProgress(BaseModel):
    done: int
    total: int


class JobView(BaseModel):
    id: str
    kind: str
    state: JobState
    progress: JobProgress
    result: dict[str, Any] | None = None
    error: str | None = None


class UnknownJob(LookupError):
    """No such job for this caller."""


class JobsBusy(Exception):
    """Every kept job is unfinished; a new one is not started."""


class KeyReused(Exception):
    """The idempotency key was used by this account for another request."""


@dataclass(frozen=True)
class Retry:
    """What a job was started for: the caller's idempotency key and the request's
    fingerprint (a hash of everything that defines the request)."""

    key: str
    fingerprint: str


@dataclass
class Job:
    id: str
    kind: str
    owner: str
    state: JobState = JobState.QUEUED
    done: int = 0
    total: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    retry: Retry | None = field(default=None, repr=False)
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    def counter(self, total: int) -> Callable[[int], None]:
        """A progress hook: told the total once, returns the function counting rows done."""
        self.total = total

        def advance(count: int) -> None:
            self.done = min(self.total, self.done + count) if self.total else self.done + count

        return advance

    @property
    def finished(self) -> bool:
        return self.state in (JobState.DONE, JobState.FAILED)

    def view(self) -> JobView:
        return JobView(
            id=self.id, kind=self.kind, state=self.state,
            progress=JobProgress(done=self.done, total=self.total),
            result=self.result, error=self.error,
        )  # fmt: skip


Work = Callable[[Job], Awaitable[BaseModel]]


class Jobs:
    """The jobs of one admin app (kept in `app.state.jobs`)."""

    def __init__(self, keep: int = DEFAULT_KEEP) -> None:
        self._keep = keep
        self._jobs: dict[str, Job] = {}

    def start(self, actor: Actor, kind: str, work: Work, *, retry: Retry | None = None) -> Job:
        """Start `work` as a background task; the job is returned at once (queued).

        With `retry`, a job this account started with the same key and request is
        returned instead (nothing started); the same key for another request is
        `KeyReused`.
        """
        if retry is not None and (earlier := self.find(actor, kind, retry)) is not None:
            return earlier
        self._make_room()
        job = Job(id=secrets.token_urlsafe(12), kind=kind, owner=actor.account, retry=retry)
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, work), name=f"admin-job-{kind}")
        return job

    def get(self, actor: Actor, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None or (actor.role is not Role.SYSTEM_ADMIN and job.owner != actor.account):
            raise UnknownJob(job_id)
        return job

    def find(self, actor: Actor, kind: str, retry: Retry) -> Job | None:
        """The kept job this account started with `retry.key`, if it asked for the same
        request; `KeyReused` when the key went with another request (or kind)."""
        for job in self._jobs.values():
            if job.owner == actor.account and job.retry and job.retry.key == retry.key:
                if job.kind != kind or job.retry.fingerprint != retry.fingerprint:
                    raise KeyReused
                return job
        return None

    def _make_room(self) -> None:
        while len(self._jobs) >= self._keep:
            oldest = next((j for j in self._jobs.values() if j.finished), None)
            if oldest is None:
                raise JobsBusy
            del self._jobs[oldest.id]

    async def _run(self, job: Job, work: Work) -> None:
        job.state = JobState.RUNNING
        try:
            outcome = await work(job)
        except SERVICE_ERRORS as exc:
            job.state, job.error = JobState.FAILED, str(exc) or FAILED_TEXT
            return
        except Exception as exc:
            log.error("admin job %s (%s) failed", job.id, job.kind, exc_info=exc)
            job.state, job.error = JobState.FAILED, FAILED_TEXT
            return
        job.result = outcome.model_dump(mode="json")
        if job.total:
            job.done = job.total
        job.state = JobState.DONE
