"""The admin API's job registry: states, progress, safe errors, who sees a job, bounds."""

from __future__ import annotations

import asyncio
import logging

import pytest
from pydantic import BaseModel

from admin.api.jobs import FAILED_TEXT, Job, Jobs, JobsBusy, JobState, UnknownJob
from admin.services.actor import Actor, Role
from admin.services.errors import InvalidInput

ADMIN = Actor("root@gov.example", Role.SYSTEM_ADMIN)
ALICE = Actor("alice@mof.example", Role.AGENCY_ADMIN, agency="MOF")
BOB = Actor("bob@mof.example", Role.AGENCY_ADMIN, agency="MOF")


class Done(BaseModel):
    rows: int


async def _finish(job: Job) -> None:
    assert job.task is not None
    await job.task


async def test_a_job_reports_progress_and_its_result_to_its_owner() -> None:
    jobs, gate = Jobs(), asyncio.Event()

    async def work(job: Job) -> Done:
        advance = job.counter(4)
        advance(3)
        await gate.wait()
        advance(1)
        return Done(rows=4)

    job = jobs.start(ALICE, "test", work)
    assert job.view().state is JobState.QUEUED
    await asyncio.sleep(0)
    seen = jobs.get(ALICE, job.id).view()
    assert seen.state is JobState.RUNNING and (seen.progress.done, seen.progress.total) == (3, 4)
    gate.set()
    await _finish(job)
    done = jobs.get(ADMIN, job.id).view()  # a system administrator sees every job
    assert done.state is JobState.DONE and done.result == {"rows": 4} and done.error is None
    with pytest.raises(UnknownJob):
        jobs.get(BOB, job.id)
    with pytest.raises(UnknownJob):
        jobs.get(ALICE, "nope")


async def test_a_failure_shows_a_refusal_or_a_fixed_text_never_internals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    jobs = Jobs()

    async def refused(job: Job) -> Done:
        raise InvalidInput("import: line 2: bad row", problems=["line 2: bad row"])

    async def broken(job: Job) -> Done:
        raise RuntimeError("secret internal detail /var/lib/barid")

    first, second = jobs.start(ALICE, "a", refused), jobs.start(ALICE, "b", broken)
    with caplog.at_level(logging.ERROR, logger="barid.admin.api.jobs"):
        await _finish(first)
        await _finish(second)
    assert first.view().error == "import: line 2: bad row"
    assert second.view().state is JobState.FAILED and second.view().error == FAILED_TEXT
    assert "secret internal detail" in caplog.text  # in the log, not in the answer


async def test_the_oldest_finished_job_makes_room_and_a_full_registry_of_running_ones_refuses() -> (
    None
):
    jobs, gate = Jobs(keep=2), asyncio.Event()

    async def quick(job: Job) -> Done:
        return Done(rows=0)

    async def slow(job: Job) -> Done:
        await gate.wait()
        return Done(rows=1)

    old = jobs.start(ADMIN, "quick", quick)
    await _finish(old)
    running = [jobs.start(ADMIN, "slow", slow), jobs.start(ADMIN, "slow", slow)]
    with pytest.raises(UnknownJob):
        jobs.get(ADMIN, old.id)
    with pytest.raises(JobsBusy):
        jobs.start(ADMIN, "slow", slow)
    gate.set()
    for job in running:
        await _finish(job)
    last = jobs.start(ADMIN, "quick", quick)
    await _finish(last)
    assert last.view().state is JobState.DONE
