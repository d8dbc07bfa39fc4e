"""The Prometheus rules and the Grafana dashboard in config/: the rules pass
`promtool check rules` (skipped where promtool is missing, failed under
BARID_REQUIRE_ALL=1), and both name only metrics the gateway exports."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from gateway import metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "config" / "prometheus" / "barid-rules.yml"
DASHBOARD = ROOT / "config" / "grafana" / "barid-dashboard.json"
METRIC = re.compile(r"\bbarid_[a-z_]+\b")


SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def exported() -> set[str]:
    """Every series name the gateway's registry exports (whether observed yet or not)."""
    return {
        family.name + suffix
        for family in metrics.REGISTRY.collect()
        for suffix in SUFFIXES.get(family.type, ("",))
    }


def test_the_metric_names_are_read_right() -> None:
    assert {"barid_alerts_total", "barid_up", "barid_submission_seconds_bucket"} <= exported()
    assert "barid_alerts" not in exported() and "barid_nothing_total" not in exported()


def test_promtool_accepts_the_rules(need_tool: Callable[[str], str]) -> None:
    promtool = need_tool("promtool")
    done = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rules_name_only_exported_metrics() -> None:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    exprs = [rule["expr"] for group in groups for rule in group["rules"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert "barid_alerts_total" in used
    assert used <= exported(), used - exported()


def test_the_dashboard_names_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert {"barid_alerts_total", "barid_message_accesses_total"} <= used
    assert used <= exported(), used - exported()
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])
