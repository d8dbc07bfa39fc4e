"""Cursor paging for list endpoints: an opaque, tamper-evident `next` cursor.

Owns: encoding the position after the last item returned (a key such as an id
or a code) as a URL-safe token bound to the list it came from, and decoding it.
A cursor that was edited, or that belongs to another list, is refused (400).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Generic, TypeVar

from pydantic import BaseModel

from admin.api.problems import ApiProblem

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None


class Cursors:
    """Signs and reads cursors with a key the admin app holds (derived from the master key)."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, listing: str, body: bytes) -> bytes:
        return hmac.new(self._key, listing.encode() + b"\0" + body, hashlib.sha256).digest()[:12]

    def encode(self, listing: str, after: str | int) -> str:
        body = json.dumps({"a": after}, separators=(",", ":")).encode()
        token = self._mac(listing, body) + body
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, listing: str, cursor: str | None) -> str | int | None:
        if not cursor:
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            mac, body = raw[:12], raw[12:]
            if not hmac.compare_digest(mac, self._mac(listing, body)):
                raise ValueError("mac")
            after = json.loads(body)["a"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiProblem(
                400, "Bad Request", "the cursor is not valid", kind="bad-cursor"
            ) from exc
        if not isinstance(after, str | int):
            raise ApiProblem(400, "Bad Request", "the cursor is not valid", kind="bad-cursor")
        return after


def page_of(items: list[T], key_of: object, limit: int, listing: str, cursors: Cursors) -> Page[T]:
    """The first `limit` of `items` (fetched with limit + 1) and the cursor after them."""
    if len(items) <= limit:
        return Page[T](items=items)
    kept = items[:limit]
    assert callable(key_of)
    return Page[T](items=kept, next=cursors.encode(listing, key_of(kept[-1])))


def page_after(
    items: list[T], key_of: Callable[[T], str], *, cursor: str | None, limit: int,
    listing: str, cursors: Cursors,
) -> Page[T]:  # fmt: skip
    """One page of a whole list the service returned: sorted by `key_of`, the items
    after the cursor's key, at most `limit`, with the cursor after them."""
    after = cursors.decode(listing, cursor)
    ordered = sorted(items, key=key_of)
    if after is not None:
        ordered = [item for item in ordered if key_of(item) > str(after)]
    return page_of(ordered[: limit + 1], key_of, limit, listing, cursors)
