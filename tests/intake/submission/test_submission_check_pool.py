"""The submission checks in a child process (`[server] check_workers = 1`,
gateway.checks.pool): the same verdicts as the thread path, a policy edit reaches
the child on the next message, a child killed mid-check loses nothing, and the
graceful stop ends the child."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import pickle
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from test_submission_e2e import MOF, MOH, MOH_REGISTRAR, accepted, code_of, refused, stored

from gateway.checks.check_worker import (
    LENGTH,
    MESSAGE_FIELDS,
    RAISED,
    SHARED_FIELDS,
    STALE,
    frame,
    serve,
)
from gateway.checks.facts import Inputs
from gateway.checks.pool import CheckPool, Result, workers_for
from gateway.checks.submission import check_submission
from gateway.model.message import Submission
from testkit.gateway import running
from testkit.messages import pgp_mime, unsigned

POOL = {"BARID_SERVER__CHECK_WORKERS": "1"}


@pytest.fixture
async def pooled(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]]
) -> AsyncIterator[Any]:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    async with running(data, credentials, POOL) as live:
        yield live


def child_pid(live: Any) -> int:
    pool = live.gateway.check_pool
    assert isinstance(pool, CheckPool)
    process = pool._children[0].process
    assert process is not None and process.returncode is None
    return int(process.pid)


def recording(live: Any) -> list[tuple[Inputs, Result]]:
    """Every message's inputs and what the pool answered for them."""
    seen: list[tuple[Inputs, Result]] = []
    pool = live.gateway.check_pool

    async def checks(inputs: Inputs) -> Result:
        result = await pool(inputs)
        seen.append((inputs, result))
        return result

    live.gateway.pipeline._checks = checks
    return seen


def test_workers_setting() -> None:
    assert workers_for(0) == 0 and workers_for(3) == 3
    assert workers_for(-1) == (1 if len(os.sched_getaffinity(0)) >= 2 else 0)


def test_every_input_crosses_the_pipe() -> None:
    """A new field of `Inputs` must be sent, per version or per message."""
    names = [f.name for f in dataclasses.fields(Inputs)]
    assert sorted(names) == sorted(SHARED_FIELDS + MESSAGE_FIELDS)


def test_the_child_answers_stale_values_and_raising_checks_with_a_status() -> None:
    requests = [("check", 1, {}), ("shared", 1, {}), ("check", 1, {}), ("check", 2, {})]
    sink = io.BytesIO()
    serve(io.BytesIO(b"".join(frame(pickle.dumps(r)) for r in requests)), sink)
    answers, out = [], sink.getvalue()
    while out:
        size = LENGTH.unpack(out[1 : 1 + LENGTH.size])[0]
        answers.append((out[0], out[1 + LENGTH.size : 1 + LENGTH.size + size]))
        out = out[1 + LENGTH.size + size :]
    # no values yet; the checks raised (the class name only); values of another version
    assert answers == [(STALE, b"stale"), (RAISED, b"TypeError"), (STALE, b"stale")]


async def test_the_pool_gives_the_thread_verdicts(pooled: Any, gnupghome: Path) -> None:
    live = pooled
    first = child_pid(live)
    seen = recording(live)
    good = pgp_mime(gnupghome, MOH, MOH, [MOF, MOH_REGISTRAR], extra=code_of(live, MOH))
    registry = await accepted(live, MOH, [MOF, MOH_REGISTRAR], good)
    await refused(live, MOH, [MOF], unsigned(MOH, [MOF], extra=code_of(live, MOH)), 550, "5.7.1")
    tampered = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH), tamper=True)
    await refused(live, MOH, [MOF], tampered, 554, "5.7.5")
    other_code = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOF))
    await refused(live, MOH, [MOF], other_code, 550, "5.7.1", "employee code")
    signed_by_other = pgp_mime(gnupghome, MOF, MOH, [MOF], extra=code_of(live, MOH))
    await refused(live, MOH, [MOF], signed_by_other, 550, "5.7.1")
    assert len(seen) == 5
    for inputs, from_pool in seen:
        assert from_pool == await asyncio.to_thread(check_submission, inputs)
    accepted_one = seen[0][1][0]
    assert isinstance(accepted_one, Submission) and accepted_one.raw == good
    assert child_pid(live) == first  # one child did every check
    assert (live.gateway.check_pool.answered, live.gateway.check_pool.in_thread) == (5, 0)
    assert registry
    # disk nearly full is answered before any check
    live.gateway.pipeline._min_free = 1 << 62
    code, text = await live.send(MOH, [MOF], good)
    assert (code, text.split()[0]) == (452, "4.3.1")


async def test_a_policy_edit_reaches_the_child(pooled: Any, gnupghome: Path) -> None:
    live = pooled
    pool = live.gateway.check_pool
    await accepted(live, MOH, [MOF], pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH)))
    version = pool._version
    policy = live.data / "policies.yaml"
    policy.write_text(policy.read_text().replace("size: {at_least: 50MiB}",
                                                 "size: {at_least: 1KiB}"))  # fmt: skip
    result = await live.gateway.policy.reload("test")
    assert result.ok, result.problems
    raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
    # the size is known only at the end of data: the child decides with the new policy
    await refused(live, MOH, [MOF], raw, 550, "5.7.1", "(policy message-size)")
    assert pool._version == version + 1  # sent once, for the new policy
    assert (pool.answered, pool.in_thread) == (2, 0)


async def test_a_child_killed_mid_check_loses_nothing(
    demo_template: Path, tmp_path: Path, credentials: dict[str, dict[str, Any]], gnupghome: Path
) -> None:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    async with running(data, credentials, POOL) as live:
        raw = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
        first = await accepted(live, MOH, [MOF], raw)
        pid = child_pid(live)
        os.kill(pid, signal.SIGSTOP)  # the next request waits in its pipe
        sending = asyncio.create_task(
            live.send(MOH, [MOF], pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH)))
        )
        await asyncio.sleep(1.0)
        assert not sending.done()
        os.kill(pid, signal.SIGKILL)  # mid-check: re-checked in a thread, then committed
        code, text = await asyncio.wait_for(sending, 30)
        assert code == 250, (code, text)
        second = text.split()[-1]
        again = pgp_mime(gnupghome, MOH, MOH, [MOF], extra=code_of(live, MOH))
        third = await accepted(live, MOH, [MOF], again)  # a new child checks this one
        assert child_pid(live) != pid
        serials = [int(r.rsplit("/", 1)[1]) for r in (first, second, third)]
        assert serials == list(range(serials[0], serials[0] + 3))  # no gap, none twice
        assert (await stored(live))[0] == 3
        assert (live.gateway.check_pool.answered, live.gateway.check_pool.in_thread) == (2, 1)
        child = live.gateway.check_pool._children[0].process
    assert child is not None and child.returncode is not None  # the graceful stop ended it
