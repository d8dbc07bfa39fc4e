"""Headless Chromium for layout tests, driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`: JSON messages ending in NUL on file descriptors 3 and
4), so no browser-automation package is needed: open a page at a window width,
measure it with JavaScript, save a full-page screenshot."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WIDTHS = (360, 412, 1280)  # small and common phones, a desktop window
_HEIGHT = 900

_MEASURE = """
(async (selectors) => {
  await document.fonts.ready;
  const boxes = {};
  for (const [name, selector] of Object.entries(selectors)) {
    const element = document.querySelector(selector);
    if (!element) { boxes[name] = null; continue; }
    const r = element.getBoundingClientRect();
    const style = getComputedStyle(element);
    boxes[name] = {left: r.left, right: r.right, top: r.top + scrollY, width: r.width,
                   height: r.height, shown: style.visibility !== 'hidden' && style.display !== 'none',
                   text: (element.innerText || '').slice(0, 2000)};
  }
  const images = Array.from(document.images).map(i => i.complete && i.naturalWidth > 0);
  return JSON.stringify({
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    height: document.documentElement.scrollHeight,
    images, boxes,
  });
})
"""


@dataclass(frozen=True)
class Box:
    left: float
    right: float
    top: float
    width: float
    height: float
    shown: bool
    text: str


@dataclass(frozen=True)
class Layout:
    scroll_width: int
    inner_width: int
    height: int
    images_loaded: tuple[bool, ...]
    boxes: dict[str, Box | None]

    def visible(self, name: str) -> Box:
        """The named element's box, asserted non-empty and inside the window's width."""
        box = self.boxes[name]
        assert box is not None, f"{name}: no such element"
        assert box.shown and box.width > 0 and box.height > 0, (name, box)
        assert box.left >= -0.5 and box.right <= self.inner_width + 0.5, (name, box, self)
        return box


class ChromiumError(RuntimeError):
    pass


class Chromium:
    """One headless browser; `layout` opens a URL in a new tab at a given width."""

    def __init__(self, binary: str, profile: Path, timeout: float = 30.0) -> None:
        profile.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        to_browser, self._commands = os.pipe()
        self._replies, from_browser = os.pipe()
        args = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-extensions", "--hide-scrollbars", "--remote-debugging-pipe",
                f"--user-data-dir={profile}", "about:blank"]  # fmt: skip
        with (profile / "chromium.log").open("wb") as log:
            self._process = subprocess.Popen(
                ["/bin/bash", "-c", f'exec "$@" 3<&{to_browser} 4>&{from_browser}', "bash", *args],
                pass_fds=(to_browser, from_browser),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        os.close(to_browser)
        os.close(from_browser)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    # ------------------------------------------------------------ protocol

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ChromiumError("chromium did not answer in time")
            ready, _, _ = select.select([self._replies], [], [], remaining)
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise ChromiumError("chromium closed its DevTools pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:  # fmt: skip
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            command["sessionId"] = session
        os.write(self._commands, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + self._timeout
        while True:
            message = self._read_message(deadline)
            if message.get("id") != self._next_id:
                self._events.append(message)
                continue
            if "error" in message:
                raise ChromiumError(f"{method}: {message['error']}")
            result: dict[str, Any] = message.get("result", {})
            return result

    def _wait_event(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            for event in self._events:
                if event.get("method") == method and event.get("sessionId") == session:
                    self._events.remove(event)
                    return
            self._events.append(self._read_message(deadline))

    # ------------------------------------------------------------ use

    def layout(self, url: str, width: int, selectors: dict[str, str],
               screenshot: Path | None = None) -> Layout:  # fmt: skip
        """Open `url` in a window `width` CSS pixels wide (a phone's when under 1000),
        wait for it to load, measure `selectors` and save a full-page screenshot."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        try:
            self.send("Page.enable", session=session)
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": _HEIGHT, "deviceScaleFactor": 1,
                       "mobile": width < 1000}, session)  # fmt: skip
            self.send("Page.navigate", {"url": url}, session)
            self._wait_event("Page.loadEventFired", session)
            result = self.send("Runtime.evaluate",
                               {"expression": f"({_MEASURE})({json.dumps(selectors)})",
                                "awaitPromise": True, "returnByValue": True}, session)  # fmt: skip
            if "exceptionDetails" in result:
                raise ChromiumError(str(result["exceptionDetails"]))
            data = json.loads(result["result"]["value"])
            if screenshot is not None:
                clip = {"x": 0, "y": 0, "width": width,
                        "height": max(_HEIGHT, data["height"]), "scale": 1}  # fmt: skip
                shot = self.send("Page.captureScreenshot",
                                 {"format": "png", "clip": clip, "captureBeyondViewport": True},
                                 session)  # fmt: skip
                screenshot.write_bytes(base64.b64decode(shot["data"]))
        finally:
            self.send("Target.closeTarget", {"targetId": target})
        boxes = {name: Box(**box) if box else None for name, box in data["boxes"].items()}
        return Layout(data["scrollWidth"], data["innerWidth"], data["height"],
                      tuple(data["images"]), boxes)  # fmt: skip

    def close(self) -> None:
        with contextlib.suppress(ChromiumError, OSError):
            self.send("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        os.close(self._commands)
        os.close(self._replies)


def screenshot_dir(base: Path) -> Path:
    """Where a test run keeps its screenshots: `screenshots/` in pytest's base
    temporary directory (printed by the tests that write there)."""
    path = base / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path
