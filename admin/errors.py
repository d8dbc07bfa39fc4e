"""Errors the command line turns into a one-line reason and an exit status.

Owns: the mapping from failure kind to exit status. Must not: carry internal
exception text to the user; wrap it in a clear sentence first.
"""

from __future__ import annotations

from typing import Any

EXIT_FAILURE = 1
EXIT_USAGE = 2  # also: bad configuration (unknown key, wrong type, impossible value)


class CliError(Exception):
    """A failure to report as `barid: <message>` with `status`."""

    def __init__(
        self, message: str, status: int = EXIT_FAILURE, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.details = details or {}  # merged into the --json error object
