"""The gateway's Prometheus exposition as a scraper would read it, for tests that
check counters of an in-process gateway (the `/metrics` route itself is on the
admin listener and tested there)."""

from __future__ import annotations

from prometheus_client import generate_latest

from gateway import metrics


def exposition() -> str:
    return generate_latest(metrics.REGISTRY).decode()
