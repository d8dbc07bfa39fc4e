"""What the IMAP backend's parts share: the listener settings, the service context, errors.

Owns: `BaridImapConfig` (login only over TLS), `ImapContext` (store,
authenticator, access recorder, selected sets), the store-error-to-IMAP mapping
(`guard`: `NO [UNAVAILABLE]` or a short `NO`) and flag conversions. Must not:
read sockets (gateway.imap.server) or know SQL.
"""

from __future__ import annotations

import contextlib
from argparse import Namespace
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from ssl import SSLContext
from typing import TypeVar

from pymap.concurrent import Subsystem
from pymap.config import BackendCapability, IMAPConfig
from pymap.context import socket_info
from pymap.exceptions import ResponseError
from pymap.parsing.response import ResponseCode, ResponseNo
from pymap.parsing.specials.flag import Flag
from pymap.selected import SelectedSet
from pysasl import SASLAuth
from pysasl.hashing import BuiltinHash

from gateway.imap.access import AccessRecorder
from gateway.intake.login import Authenticator
from gateway.store.blobs import BlobIntegrityError
from gateway.store.mailbox.store import (
    MailboxError,
    MailboxStore,
    NoSuchMailbox,
    StoreUnavailable,
)
from gateway.store.mailbox.store import MailboxNameError as _NameError

# Mails larger than this are parsed in a worker thread, off the event loop.
PARSE_IN_THREAD_BYTES = 256 * 1024
MAX_SELECTED_SETS = 10_000
_T = TypeVar("_T")


class Unavailable(ResponseError):
    """The store is unavailable: `NO [UNAVAILABLE]`, try again later (RFC 5530)."""

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(
            tag, b"Mail store temporarily unavailable.", ResponseCode.of(b"UNAVAILABLE")
        )


class Refused(ResponseError):
    """A refused mailbox operation: `NO` with a short, safe reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self._reason = reason.encode("ascii", "replace")

    def get_response(self, tag: bytes) -> ResponseNo:
        return ResponseNo(tag, self._reason.capitalize() + b".")


async def guard(call: Awaitable[_T]) -> _T:
    """Store errors as IMAP answers."""
    try:
        return await call
    except StoreUnavailable:  # the database or a blob store (BlobUnavailable)
        raise Unavailable() from None
    except BlobIntegrityError:
        # Tampered or foreign bytes: the command fails, the session goes on.
        raise Refused("message cannot be read: it failed its integrity check") from None
    except (NoSuchMailbox, KeyError):
        raise
    except (MailboxError, _NameError) as exc:
        raise Refused(str(exc)) from None


def flag_names(flags: Iterable[Flag]) -> frozenset[str]:
    return frozenset(bytes(f).decode("ascii") for f in flags)


def to_flags(names: Iterable[str]) -> frozenset[Flag]:
    return frozenset(Flag(name.encode("ascii")) for name in names)


# ---- configuration ----------------------------------------------------------------------


class BaridImapConfig(IMAPConfig):
    """pymap settings for one listener. `starttls=False` means implicit TLS: the
    connection is encrypted from the first byte, so login is offered at once.
    Login is never offered on a connection without TLS, loopback included."""

    def __init__(
        self,
        *,
        ssl_context: SSLContext,
        starttls: bool,
        max_append_size: int,
        greeting: str,
    ) -> None:
        args = Namespace(passlib_cfg=None, proxy_protocol=None, inherited_sockets=None)
        # Built once: SASLAuth.named looks the mechanisms up among installed packages.
        self._tls_auth = SASLAuth.named([b"PLAIN"])
        super().__init__(
            args,
            host=None,
            port=0,
            ssl_context=ssl_context,
            tls_enabled=starttls,
            max_append_len=max_append_size,
            bad_command_limit=None,  # counted by gateway.imap.server, which says BYE
            hash_context=BuiltinHash(),
            cpu_subsystem=Subsystem.for_asyncio(),
            reject_dnsbl=False,
            invalid_user_sleep=0.0,
            admin_key=b"",
        )
        self._greeting = greeting.encode("ascii", "replace")

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(
            idle=True, object_id=False, multi_append=True, custom=[b"SPECIAL-USE"]
        )

    @property
    def tls_auth(self) -> SASLAuth:
        return self._tls_auth

    @property
    def greeting(self) -> bytes:
        return self._greeting


# ---- shared state of one IMAP service ----------------------------------------------------


@dataclass
class ImapContext:
    store: MailboxStore
    authenticator: Authenticator
    access: AccessRecorder
    employee_id: Callable[[str], Awaitable[int | None]]
    selected_sets: dict[int, SelectedSet] = field(default_factory=dict)

    def selected_set(self, mailbox_id: int) -> SelectedSet:
        """The in-process sessions that have `mailbox_id` selected (pymap tracks them
        weakly inside the set); sets nobody uses are dropped now and then."""
        found = self.selected_sets.get(mailbox_id)
        if found is None:
            if len(self.selected_sets) >= MAX_SELECTED_SETS:
                for key, value in list(self.selected_sets.items()):
                    if value.any_selected is None:
                        del self.selected_sets[key]
            found = self.selected_sets[mailbox_id] = SelectedSet()
        return found


def client_address() -> str:
    info = socket_info.get()
    with contextlib.suppress(Exception):
        ip = info.peername_ip
        if ip is not None:
            return str(ip)
    return "unknown"
