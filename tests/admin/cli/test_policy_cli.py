"""`barid policy ...` on the demo directory, and policy reloads in a running gateway."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.ports import EPHEMERAL_PORTS_ENV

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "config" / "policies.yaml"
CASES = ROOT / "config" / "policies.cases.yaml"


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo") / "d"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    subprocess.run(
        [sys.executable, "-m", "admin", "demo", "--data-dir", str(data), "--no-serve"],
        check=True, capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    return data


@pytest.fixture
def demo(demo_template: Path, tmp_path: Path, make_cli: Any) -> Iterator[tuple[Any, Path]]:
    data = tmp_path / "d"
    shutil.copytree(demo_template, data)
    yield make_cli({"BARID_CONFIG": str(data / "barid.toml")}), data


def test_check_accepts_the_shipped_policy(demo: tuple[Any, Path]) -> None:
    cli, _ = demo
    result = cli("policy", "check", str(SHIPPED), "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["ok"] is True


def test_check_reports_every_problem_with_file_and_line(
    demo: tuple[Any, Path], tmp_path: Path
) -> None:
    cli, _ = demo
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\n"
        "rules:\n"
        "  - id: a\n"
        "    sender: {agency: NOPE}\n"  # line 4: unknown agency
        "    effect: allow\n"
        "  - id: a\n"  # line 6: duplicate id
        "    effect: alow\n"  # line 7: bad effect
        "    colour: red\n",  # line 8: unknown key
        encoding="utf-8",
    )
    result = cli("policy", "check", str(bad))
    assert result.code == 1
    for line in ["bad.yaml:4", "bad.yaml:6", "bad.yaml:7", "bad.yaml:8"]:
        assert line in result.err, (line, result.err)
    assert result.err.strip().splitlines()[-1].startswith("barid: ")
    as_json = json.loads(cli("policy", "check", str(bad), "--json").out)
    assert as_json["ok"] is False and len(as_json["problems"]) >= 4
    assert {p["line"] for p in as_json["problems"]} >= {4, 6, 7, 8}


def test_explain_shows_decision_and_trace(demo: tuple[Any, Path]) -> None:
    cli, _ = demo
    result = cli("policy", "explain", "minister@moh.gov.example", "minister@mof.gov.example",
                 "--classification", "secret", "--json")  # fmt: skip
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["decision"]["allowed"] is True
    assert data["decision"]["rule"] == "ministries-to-ministries"
    assert any(step["rule"] == "ministries-to-ministries" for step in data["trace"])
    text = cli("policy", "explain", "planning.clerk@moh.gov.example", "minister@mof.gov.example",
               "--classification", "internal")  # fmt: skip
    assert "DENY by rule clearance" in text.out
    assert cli("policy", "explain", "a@x", "b@y", "--classification", "ultra").code == 2


def test_policy_test_runs_the_shipped_table_and_fails_with_a_diff(
    demo: tuple[Any, Path], tmp_path: Path
) -> None:
    cli, _ = demo
    result = cli("policy", "test", str(SHIPPED), str(CASES))
    assert result.code == 0, result.out + result.err
    wrong = tmp_path / "cases.yaml"
    wrong.write_text(
        "- from: minister@moh.gov.example\n  to: minister@mof.gov.example\n  expect: deny\n",
        encoding="utf-8",
    )
    result = cli("policy", "test", str(SHIPPED), str(wrong))
    assert result.code == 1
    assert "expected deny" in result.out.lower() or "expected: deny" in result.out.lower(), (
        result.out
    )
    assert "ministries-to-ministries" in result.out


def test_reload_refuses_a_broken_file_and_records_it(demo: tuple[Any, Path]) -> None:
    cli, data = demo
    (data / "policies.yaml").write_text("version: 1\nrules: [\n", encoding="utf-8")
    result = cli("policy", "reload")
    assert result.code == 1 and "running policy stays" in result.err
    log = json.loads(cli("audit", "log", "--action", "policy.reload-request", "--json").out)
    assert log[-1]["outcome"] == "refused"
    shutil.copyfile(SHIPPED, data / "policies.yaml")
    result = cli("policy", "reload", "--json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["signalled"] is None  # no gateway running


def wait_for(predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_running_gateway_reloads_on_sighup_and_file_change_and_keeps_old_on_error(
    demo: tuple[Any, Path], port_factory: Any
) -> None:
    cli, data = demo
    port = port_factory()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env |= {**EPHEMERAL_PORTS_ENV, "BARID_CONFIG": str(data / "barid.toml"),
            "BARID_HTTP__PORT": str(port), "BARID_HTTP__ADMIN_PORT": "0", "BARID_ALLOW_ROOT": "1"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "admin", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip

    def applied() -> list[dict[str, Any]]:
        return list(json.loads(cli("audit", "log", "--action", "policy.apply", "--json").out))

    def refused() -> list[dict[str, Any]]:
        return list(json.loads(cli("audit", "log", "--action", "policy.reload", "--json").out))

    try:
        wait_for(lambda: (data / "barid.pid").exists() and applied())
        assert applied()[-1]["actor"] == "start"
        first_hash = applied()[-1]["details"]["sha256"]
        # A broken file offered by SIGHUP: refused, the old policy keeps deciding.
        (data / "policies.yaml").write_text("version: 1\nrules: [\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_for(refused)
        assert refused()[-1]["outcome"] == "refused"
        assert len(applied()) == 1
        # A valid change through `barid policy reload`: applied by the gateway.
        text = SHIPPED.read_text(encoding="utf-8") + "\n# reviewed\n"
        (data / "policies.yaml").write_text(text, encoding="utf-8")
        result = cli("policy", "reload", "--json")
        assert json.loads(result.out)["signalled"] == proc.pid
        wait_for(lambda: len(applied()) >= 2)
        assert applied()[-1]["details"]["sha256"] != first_hash
        # An edit alone is noticed too.
        (data / "policies.yaml").write_text(text + "# again\n", encoding="utf-8")
        wait_for(lambda: len(applied()) >= 3)
        assert applied()[-1]["actor"] == "file-change"
        assert json.loads(cli("audit", "verify", "--json").out)["ok"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    assert not (data / "barid.pid").exists()


def test_gateway_refuses_to_start_on_a_broken_policy(
    demo: tuple[Any, Path], port_factory: Any
) -> None:
    _, data = demo
    (data / "policies.yaml").write_text("version: 1\nrules:\n  - id: x\n    effect: maybe\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BARID_")}
    env |= {**EPHEMERAL_PORTS_ENV, "BARID_CONFIG": str(data / "barid.toml"),
            "BARID_HTTP__PORT": str(port_factory()), "BARID_HTTP__ADMIN_PORT": "0", "BARID_ALLOW_ROOT": "1"}  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "admin", "serve"], env=env, capture_output=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 1
    last = done.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("barid: routing policy") and "policies.yaml:3" in last
