"""Progress lines for long alert runs (`barid alerts scan` over a large backlog).

Owns: `Progress`, which passes a line on to its sink at most once every `every`
seconds and never during the first `every` seconds, so a short run prints
nothing and a long one says how far it is. Must not: decide the wording of the
lines (the scan and the mailer do) or where they go (the caller's sink).
Failure behaviour: none of its own; the sink's errors reach the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable

EVERY_SECONDS = 2.0


class Progress:
    """`note(text)`: `text` goes to `sink` when the last line is `every` seconds old."""

    def __init__(
        self,
        sink: Callable[[str], None],
        every: float = EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._every = every
        self._clock = clock
        self._last = clock()

    def note(self, text: str) -> None:
        now = self._clock()
        if now - self._last >= self._every:
            self._last = now
            self._sink(text)
