"""The optional alert webhook: each alert POSTed as JSON to one configured URL.

Owns: the POST (JSON body, a short timeout, run off the event loop in a thread)
and counting it in `barid_alert_webhooks_total{outcome}`. Must not: block or
fail the caller (deliveries run as background tasks; `drain` waits for them),
retry, or log the URL's query or the alert's subject (failures are logged by
class and status only).
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from gateway import metrics

log = logging.getLogger("barid.alerts")


def _post(url: str, body: bytes, timeout: float) -> int:
    if not url.startswith(("http://", "https://")):
        raise ValueError("the webhook URL must be http:// or https://")
    headers = {"Content-Type": "application/json", "User-Agent": "barid-alerts"}
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
        return int(reply.status)


class Webhook:
    """Deliver with `send(payload)` (returns at once); `await drain()` before exit."""

    def __init__(self, url: str, timeout: float) -> None:
        self._url = url
        self._timeout = timeout
        self._tasks: set[asyncio.Task[None]] = set()

    def send(self, payload: Mapping[str, Any]) -> None:
        body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        task = asyncio.create_task(self._deliver(body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, body: bytes) -> None:
        try:
            status = await asyncio.wait_for(
                asyncio.to_thread(_post, self._url, body, self._timeout), self._timeout + 1
            )
        except urllib.error.HTTPError as exc:
            log.warning("alert webhook refused", extra={"status": exc.code})
        except Exception as exc:
            log.warning("alert webhook failed", extra={"error": type(exc).__name__})
        else:
            if 200 <= status < 300:
                metrics.ALERT_WEBHOOKS.labels("delivered").inc()
                return
            log.warning("alert webhook refused", extra={"status": status})
        metrics.ALERT_WEBHOOKS.labels("failed").inc()

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
