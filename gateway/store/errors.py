"""The store's error types and the one way a database fault becomes one.

Owns: `StoreError` and its kinds (each message safe to show a client),
`DATABASE_ERRORS` (what a database fault raises) and `database_trouble`, which
logs a fault by class name and SQLSTATE only. Must not: run queries or log
SQLAlchemy's text (it can hold statement parameters: addresses, subjects, ciphertext).
"""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError, SQLAlchemyError

log = logging.getLogger("barid.store")

# What a database fault raises, for every store (messages, mailboxes, the access
# trail, delivery): caught and turned into `StoreUnavailable` by `database_trouble`.
DATABASE_ERRORS = (SQLAlchemyError, OSError, TimeoutError)


class StoreError(Exception):
    """A store operation that did not happen; the message is safe to show a client."""


class StoreUnavailable(StoreError):
    """The database could not complete the operation; nothing was stored. Reply 451 4.3.0."""

    def __init__(self) -> None:
        super().__init__("message store temporarily unavailable")


class UnknownSender(StoreError):
    """The sender's agency or employee is not (or no longer) in the directory."""


class UnknownMessage(StoreError):
    """No message or copy with that id."""


class AlreadyRevoked(StoreError):
    """The message was revoked before; `revoked_at` says when."""

    def __init__(self, registry: str, revoked_at: str | None) -> None:
        super().__init__(f"{registry} was already revoked at {revoked_at or 'an unknown time'}")
        self.registry = registry
        self.revoked_at = revoked_at


def database_trouble(operation: str, exc: BaseException) -> StoreUnavailable:
    """Log a database fault of `operation` (class names and SQLSTATE only) and
    return the `StoreUnavailable` to raise in its place (`from None`)."""
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    log.error(
        "database unavailable",
        extra={
            "operation": operation,
            "error": type(exc).__name__,
            "driver_error": type(orig).__name__ if orig is not None else None,
            "sqlstate": getattr(orig, "sqlstate", None),
        },
    )
    return StoreUnavailable()
