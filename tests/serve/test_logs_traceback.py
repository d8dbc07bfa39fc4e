"""JSON logs keep where an unexpected error happened (every frame of it and of the
error it came from) but never secrets: credentials in URLs, password=... texts and
the row values of a failed SQL statement stay out of the log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.logs import JsonFormatter
from gateway.store.db import create_engine

SECRET = "s3cret-Hunter2-value"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("barid.test.traceback")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def failing_step() -> None:
    raise ConnectionError(f"connect to postgresql+asyncpg://barid:{SECRET}@db:5432/barid failed")


def handle() -> None:
    try:
        failing_step()
    except ConnectionError as exc:
        raise RuntimeError(f"start-up failed, password={SECRET}") from exc


def test_traceback_frames_are_kept_and_secrets_are_not(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    try:
        handle()
    except RuntimeError:
        logger.exception("database unavailable at start-up")
    entry = json.loads(stream.getvalue())
    assert entry["exc_type"] == "RuntimeError"
    trace = "\n".join(entry["traceback"])
    assert "in failing_step" in trace and "in handle" in trace  # both errors' frames
    assert "test_logs_traceback.py" in trace
    assert "builtins.ConnectionError" in trace and "builtins.RuntimeError" in trace
    assert trace.index("failing_step") < trace.index("RuntimeError")  # cause first
    assert "barid:***@db" in trace and "password=***" in trace
    assert SECRET not in stream.getvalue()


async def test_a_failed_statement_logs_no_row_values(
    tmp_path: Path, captured: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, stream = captured
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (v TEXT NOT NULL UNIQUE)"))
            await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": SECRET})
            try:
                await conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": SECRET})
            except Exception:
                logger.exception("store failed")
    finally:
        await engine.dispose()
    entry = json.loads(stream.getvalue())
    assert entry["exc_type"] == "IntegrityError"
    assert any("UNIQUE constraint failed" in line for line in entry["traceback"])
    assert SECRET not in stream.getvalue()
