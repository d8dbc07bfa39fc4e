"""`barid keys rotate` on one node of a cluster: every running node signs and verifies
with the new key within seconds, without a restart; old tokens keep verifying."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import secrets
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from admin.context import open_app, settings_from
from gateway.model.message import Stamp, StampedCopy
from gateway.store.messages import MessageStore
from keys.tokens import issue_token
from testkit.admin_use_cases import MOH_DOCTOR, MOH_NURSE, _submission, seed
from testkit.cli import ok
from testkit.ports import free_port
from tests.cluster.conftest import Cluster, serve

VISIBLE_WITHIN = 5.0


def get_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return dict(json.loads(resp.read()))


def wait_up(proc: Any, port: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read().decode()
        try:
            get_json(f"http://127.0.0.1:{port}/healthz")
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("not up in time")


async def accept_signed(config: Path, *, first: bool = False) -> str:
    """Accept one message on the node of `config`, its token signed by that node's
    current key (as the gateway's stamper does); returns the token."""
    async with open_app(settings_from(str(config))) as app:
        if first:
            await seed(app)
        sub = _submission(MOH_DOCTOR, "MOH", MOH_NURSE)
        # A message of its own (the store answers a resent one with its first token).
        sub = dataclasses.replace(sub, raw=sub.raw + secrets.token_hex(8).encode())

        def stamp(registry: str, issued_at: Any) -> Stamp:
            agency, year, serial = registry.split("/")
            token = issue_token(app.keys.signing_key, app.keys.signing_key_id, agency=agency,
                                year=int(year), serial=int(serial), issued_at=issued_at,
                                document_sha256=[d.sha256 for d in sub.documents])  # fmt: skip
            copies = tuple(
                StampedCopy(r.address, secrets.token_hex(8), b"", b"") for r in sub.recipients
            )
            return Stamp(registry, issued_at, token, "https://v.example/v/" + token, copies)

        store = MessageStore(app.sessions, app.keys.master_key, app.audit_key)
        try:
            accepted = await store.accept(sub, stamp, actor="smtp:submission")
        finally:
            await store.close()
    return accepted.token


def verdict(port: int, token: str) -> dict[str, Any]:
    return get_json(f"http://127.0.0.1:{port}/api/v1/verify/{token}")


def current_kid(port: int) -> str:
    keys = get_json(f"http://127.0.0.1:{port}/.well-known/barid/keys.json")["keys"]
    return str(next(k["kid"] for k in keys if k["status"] == "current"))


def test_rotation_on_one_node_reaches_the_other_without_restart(
    cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = tmp_path / "b"
    ok(cluster.join(b, "node-b"))
    monkeypatch.setenv("BARID_DATABASE__URL", cluster.pg_url)
    a_config = cluster.first / "barid.toml"
    old_token = asyncio.run(accept_signed(a_config, first=True))
    ports = {"a": free_port(), "b": free_port()}
    procs = {
        "a": serve(cluster.first, BARID_DATABASE__URL=cluster.pg_url,
                   BARID_HTTP__PORT=str(ports["a"]), BARID_SERVER__NODE_ID="node-a"),
        "b": serve(b, BARID_HTTP__PORT=str(ports["b"])),
    }  # fmt: skip
    try:
        for name, proc in procs.items():
            wait_up(proc, ports[name])
        before = current_kid(ports["a"])
        assert current_kid(ports["b"]) == before
        rotated = ok(cluster.a("--json", "keys", "rotate"))
        assert rotated["retired"] == before
        new_token = asyncio.run(accept_signed(a_config))
        started = time.monotonic()
        # Node B answers for a token of the new key at once (an unknown key id makes
        # it re-read the set), and both nodes publish the new key within seconds.
        assert verdict(ports["b"], new_token)["status"] == "valid"
        while {current_kid(ports["a"]), current_kid(ports["b"])} != {rotated["current"]}:
            assert time.monotonic() - started < VISIBLE_WITHIN, "rotation not seen in time"
            time.sleep(0.2)
        seen_after = time.monotonic() - started
        for port in ports.values():
            assert verdict(port, old_token)["status"] == "valid"
            assert verdict(port, new_token)["status"] == "valid"
            assert verdict(port, new_token)["key_id"] == rotated["current"]
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            proc.communicate(timeout=30)
    print(f"rotation seen by both nodes after {seen_after:.2f} s")
    assert all(proc.returncode == 0 for proc in procs.values())
