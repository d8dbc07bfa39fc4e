"""pymap's response formatting without runtime Protocol checks.

Owns: `install()`, which replaces `pymap.bytes.BytesFormat.__mod__` with an
equivalent that asks the value's type for `__bytes__` / `__index__` instead of
`isinstance(value, SupportsBytes)` and `isinstance(value, SupportsIndex)`. On
Python 3.11 each of those runtime-checkable Protocol checks walks the protocol's
attributes again (`typing._get_protocol_attrs`); a FETCH of 1,000 headers makes
about 6,000 of them, a fifth of the FETCH's CPU in the benchmark's profile.
Must not: change what is written: the same three cases (one value, an iterable
of values, anything else refused) in the same order as pymap 0.36.

Failure behaviour: `install()` is idempotent and only touches `BytesFormat`; if
pymap's class no longer has the method it patches, it leaves pymap alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pymap.bytes import BytesFormat

_INSTALLED = "_barid_fast_mod"


def _is_single(value: object) -> bool:
    """pymap's `isinstance(v, SupportsIndex) or has_bytes(v)`, without Protocols."""
    if isinstance(value, (bytes, int)):
        return True
    kind = type(value)
    return getattr(kind, "__bytes__", None) is not None or (
        getattr(kind, "__index__", None) is not None
    )


def _mod(self: BytesFormat, other: Any) -> bytes:
    if _is_single(other):
        return self.format([other])
    if isinstance(other, Iterable):
        return self.format(other)
    raise NotImplementedError()


def install() -> None:
    """Replace BytesFormat.__mod__ (once)."""
    if getattr(BytesFormat, _INSTALLED, False) or "__mod__" not in vars(BytesFormat):
        return
    BytesFormat.__mod__ = _mod  # type: ignore[method-assign]
    setattr(BytesFormat, _INSTALLED, True)
