"""The running policy as shared state: versions in the database, applied by
`barid policy apply`, taken by every running node within seconds, one audit
event each; the policy file imported once and applied again only when it changes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from admin.api.wiring import admin_app_for
from gateway.config import Settings, load_settings
from gateway.serve import Gateway
from gateway.store.models import AuditEvent, PolicyVersion
from testkit.gateway import tls_client

MOH = "minister@moh.gov.example"
MOF = "minister@mof.gov.example"
PORTS = {"BARID_SMTP__SUBMISSION_PORT": "0", "BARID_SMTP__SMTPS_PORT": "0", "BARID_SMTP__TRANSFER_PORT": "0",
         "BARID_IMAP__PORT": "0", "BARID_IMAP__IMAPS_PORT": "0", "BARID_HTTP__PORT": "0", "BARID_HTTP__ADMIN_PORT": "0",
         "BARID_SMTP__MIN_FREE_DISK_MB": "0",
         # The suite's PostgreSQL runs with fsync off for speed (tests/conftest.py).
         "BARID_DATABASE__ALLOW_UNSAFE_DURABILITY": "1"}  # fmt: skip
FREEZE = """rules:
  - id: test-freeze
    description: One pair of ministers may not write for the time of this test.
    sender: {address: minister@moh.gov.example}
    recipient: {address: minister@mof.gov.example}
    effect: deny
    reason:
      en: Frozen for this test.
      ar: مجمدة لهذا الاختبار.
"""


def _env(url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    if url:
        env["BARID_DATABASE__URL"] = url
    return env


def demo(data: Path, url: str | None = None) -> Settings:
    subprocess.run([sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve"],
                   check=True, capture_output=True, timeout=180, env=_env(url))  # fmt: skip
    extra = {"BARID_DATABASE__URL": url} if url else {}
    return load_settings(data / "barid.toml", environ={**extra, **PORTS})


def barid(data: Path, url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = _env(url) | {"BARID_CONFIG": str(data / "barid.toml")}
    return subprocess.run([sys.executable, "-m", "admin", *args], env=env, capture_output=True,
                          text=True, timeout=120)  # fmt: skip


def frozen_policy(settings: Settings, tmp: Path) -> Path:
    text = settings.policy_file.read_text(encoding="utf-8").replace("rules:\n", FREEZE, 1)
    path = tmp / "frozen.yaml"
    path.write_text(text, encoding="utf-8")
    return path


async def until(predicate: Any, seconds: float) -> float:
    """Seconds it took for predicate() to hold; fails after `seconds`."""
    start = time.monotonic()
    while not predicate():
        assert time.monotonic() - start < seconds, "not within the time allowed"
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def counts(gateway: Gateway) -> tuple[int, int]:
    async with gateway.sessions() as session:
        versions = await session.scalar(select(func.count()).select_from(PolicyVersion))
        applies = await session.scalar(
            select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "policy.apply")
        )
    return int(versions or 0), int(applies or 0)


def test_apply_refuses_a_broken_policy_with_every_line_and_writes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "d"
    demo(data)
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nrules:\n  - id: a\n    sender: {agency: NOPE}\n    effect: allow\n"
                   "  - id: a\n    effect: alow\n", encoding="utf-8")  # fmt: skip
    result = barid(data, None, "policy", "apply", str(bad), "--json")
    assert result.returncode == 1
    error = json.loads(result.stdout)
    lines = {problem["line"] for problem in error["problems"]}
    assert {4, 6, 7} <= lines, error
    log = json.loads(barid(data, None, "audit", "log", "--action", "policy.apply", "--json").stdout)
    assert log == []
    good = barid(data, None, "policy", "apply", str(data / "policies.yaml"), "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["version"] == 1
    log = json.loads(barid(data, None, "audit", "log", "--action", "policy.apply", "--json").stdout)
    assert len(log) == 1 and log[0]["actor"].startswith("cli:")
    assert log[0]["details"]["role"] == "system-admin" and log[0]["details"]["version"] == 1
    assert json.loads(barid(data, None, "audit", "verify", "--json").stdout)["ok"]


async def test_a_running_node_takes_an_applied_version_and_keeps_it(tmp_path: Path) -> None:
    data = tmp_path / "d"
    settings = demo(data)
    gateway = Gateway(settings)
    await gateway.start()
    try:
        assert gateway.policy is not None
        assert gateway.policy.version_id == 1  # the file, imported at the first start
        assert gateway.policy.holder.decide(MOH, MOF).allowed
        frozen = frozen_policy(settings, tmp_path)
        result = await asyncio.to_thread(barid, data, None, "policy", "apply", str(frozen))
        assert result.returncode == 0, result.stderr
        policy = gateway.policy
        await until(lambda: not policy.holder.decide(MOH, MOF).allowed, 5)
        assert policy.version_id == 2
        assert await counts(gateway) == (2, 2)
    finally:
        await gateway.stop()
    # A restart keeps the applied version: the unchanged file is not imported again.
    gateway = Gateway(settings)
    await gateway.start()
    try:
        assert gateway.policy is not None and gateway.policy.version_id == 2
        assert not gateway.policy.holder.decide(MOH, MOF).allowed
        assert await counts(gateway) == (2, 2)
    finally:
        await gateway.stop()
    # The file edited while the gateway was stopped: applied as a new version at start.
    with settings.policy_file.open("a", encoding="utf-8") as file:
        file.write("\n# reviewed\n")
    gateway = Gateway(settings)
    await gateway.start()
    try:
        assert gateway.policy is not None and gateway.policy.version_id == 3
        assert gateway.policy.holder.decide(MOH, MOF).allowed
    finally:
        await gateway.stop()


@pytest.mark.postgres
async def test_a_version_applied_on_one_node_decides_on_the_other_within_5s(
    pg_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "d"
    settings = demo(data, pg_url)
    node_a, node_b = Gateway(settings), Gateway(settings)
    await node_a.start()
    await node_b.start()
    try:
        assert node_a.policy is not None and node_b.policy is not None
        assert node_a.policy.version_id == node_b.policy.version_id == 1
        before = await counts(node_a)
        frozen = frozen_policy(settings, tmp_path)
        result = await asyncio.to_thread(barid, data, pg_url, "policy", "apply", str(frozen))
        assert result.returncode == 0, result.stderr
        b_policy = node_b.policy
        await until(lambda: not b_policy.holder.decide(MOH, MOF).allowed, 5)
        a_policy = node_a.policy
        await until(lambda: not a_policy.holder.decide(MOH, MOF).allowed, 5)
        assert await counts(node_a) == (before[0] + 1, before[1] + 1)  # one audit event
    finally:
        await node_b.stop()
        await node_a.stop()


@pytest.mark.postgres
async def test_a_version_applied_through_the_api_on_one_node_decides_on_the_other_within_5s(
    pg_url: str, tmp_path: Path
) -> None:
    """PUT /api/v1/policy on node A's admin listener (real TLS, a real API token);
    node B, sharing the PostgreSQL database, decides with it within 5 s; one audit event."""
    data = tmp_path / "d"
    settings = demo(data, pg_url)
    made = barid(data, pg_url, "admin", "token", "create", "--role", "system-admin",
                 "--name", "policy pipeline", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    secret = json.loads(made.stdout)["secret"]
    node_a, node_b = Gateway(settings, admin_app_for), Gateway(settings)
    await node_a.start()
    await node_b.start()
    try:
        assert node_b.policy is not None and node_b.policy.holder.decide(MOH, MOF).allowed
        before = await counts(node_a)
        frozen = frozen_policy(settings, tmp_path).read_text(encoding="utf-8")
        async with httpx.AsyncClient(
            base_url=f"https://127.0.0.1:{node_a.admin_port}", verify=tls_client(settings.tls_cert),
            headers={"Authorization": f"Bearer {secret}"}, timeout=30,
        ) as api:  # fmt: skip
            applied = await api.put("/api/v1/policy", json={"text": frozen})
            assert applied.status_code == 201, applied.text
            b_policy = node_b.policy
            await until(lambda: not b_policy.holder.decide(MOH, MOF).allowed, 5)
            assert b_policy.version_id == applied.json()["version"]["id"]
            assert await counts(node_a) == (before[0] + 1, before[1] + 1)  # one audit event
            again = await api.put("/api/v1/policy", json={"text": frozen})  # a retry
            assert again.status_code == 200 and again.json()["created"] is False
            assert await counts(node_a) == (before[0] + 1, before[1] + 1)
    finally:
        await node_b.stop()
        await node_a.stop()
