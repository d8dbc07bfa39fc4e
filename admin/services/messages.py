"""Official messages for administrators: tracking by registry number, and revocation.

Owns: `show_message` (every copy: target, state, attempts, delivered-at,
receipts; never the content), `sender_messages` (a sender's newest messages, at
most 50) and `revoke_message`, each taking the `Actor` first.
A message belongs to its issuing agency: scoped actors (agency-admin, registrar)
see, list and revoke only messages issued inside their subtree (a sender's
messages issued elsewhere are simply not listed). Must not: read message
content or write rows itself (gateway.store does).
"""

from __future__ import annotations

from dataclasses import asdict

from admin.context import App
from admin.services.actor import Actor, Area
from admin.services.errors import Conflict, InvalidInput, NotFound, Unavailable
from admin.services.model import Frozen
from admin.services.scope import acting, actor_subtree, check, home_path, tree
from gateway.store.directory.scope import message_agency
from gateway.store.errors import DATABASE_ERRORS, AlreadyRevoked, StoreUnavailable, UnknownMessage
from gateway.store.messages import MessageStore
from gateway.store.revocation import check_revoke_reason
from gateway.store.tracking import sender_messages as stored_sender_messages
from gateway.store.tracking import track_message

SENDER_LIST = 50
MAX_ADDRESS = 320


class Receipt(Frozen):
    kind: str
    recipient: str
    reason: str | None
    state: str
    event_at: str
    done_at: str | None


class CopyTracking(Frozen):
    recipient: str
    target: str
    trace_code: str
    state: str
    attempts: int
    delivered_at: str | None
    last_error: str | None
    queue_entry: int
    receipts: list[Receipt]


class MessageTracking(Frozen):
    registry: str
    agency: str
    sender: str
    classification: str
    size: int
    accepted_at: str
    status: str
    revoked_at: str | None
    revoked_reason: str | None
    receipts: list[Receipt]
    copies: list[CopyTracking]


class SentMessage(Frozen):
    registry: str
    agency: str
    classification: str
    accepted_at: str
    status: str
    copies: int


class Revocation(Frozen):
    registry: str
    reason: str


class RevocationResult(Frozen):
    registry: str
    status: str
    revoked_at: str | None
    reason: str | None


def unknown_message(registry: str) -> NotFound:
    return NotFound(f"no official message with registry number {registry.strip()}")


async def _message_path(app: App, registry: str) -> tuple[str, ...] | None:
    try:
        async with app.sessions() as session:
            code = await message_agency(session, registry)
        return (await tree(app)).path(code)
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None


async def show_message(actor: Actor, app: App, registry: str) -> MessageTracking:
    """The message's facts and every copy's delivery state and receipts (no content)."""
    path = await _message_path(app, registry)
    check(actor, Area.MESSAGES, write=False, path=path, missing=unknown_message(registry))
    try:
        async with app.sessions() as session:
            facts = await track_message(session, registry)
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    if facts is None:  # removed since the check: the same answer as never there
        raise unknown_message(registry)
    return MessageTracking.model_validate(asdict(facts))


def _sender_address(sender: str) -> str:
    address = sender.strip().lower()
    local, at, domain = address.partition("@")
    if not at or not local or not domain or len(address) > MAX_ADDRESS or " " in address:
        raise InvalidInput("sender: not an e-mail address")
    return address


async def sender_messages(
    actor: Actor, app: App, sender: str, *, limit: int = SENDER_LIST
) -> list[SentMessage]:
    """The newest messages (at most 50) sent by `sender`, newest first; a scoped
    actor sees only those issued inside its subtree (none is no error)."""
    address = _sender_address(sender)
    try:
        agencies = await tree(app)
        check(actor, Area.MESSAGES, write=False, path=home_path(actor, agencies))
        async with app.sessions() as session:
            found = await stored_sender_messages(
                session, address, agencies=actor_subtree(actor, agencies),
                limit=max(1, min(limit, SENDER_LIST)),
            )  # fmt: skip
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    return [SentMessage.model_validate(asdict(facts)) for facts in found]


async def revoke_message(
    actor: Actor, app: App, data: Revocation, *, existing_ok: bool = False
) -> RevocationResult:
    """Revoke an issued message: verification then reports it revoked, with the reason.

    A message revoked already is a `Conflict`, or with `existing_ok` the existing
    revocation (first reason and time kept; nothing written): a safe retry."""
    try:
        reason = check_revoke_reason(data.reason)
    except ValueError as exc:
        message = f"reason: {exc}"
        raise InvalidInput(message, problems=[message]) from None
    registry = data.registry.strip().upper()
    path = await _message_path(app, registry)
    check(actor, Area.MESSAGES, write=True, path=path, missing=unknown_message(registry))
    store = MessageStore(app.sessions, app.keys.master_key, app.audit_key)
    try:
        with acting(actor):
            stored = await store.revoke(registry, reason, actor=actor.audit_name)
    except UnknownMessage as exc:
        raise NotFound(str(exc)) from None
    except AlreadyRevoked as exc:
        if not existing_ok:
            raise Conflict(str(exc)) from None
        return await _existing_revocation(app, registry)
    except StoreUnavailable as exc:
        raise Unavailable(str(exc)) from None
    finally:
        await store.close()
    return RevocationResult(
        registry=stored.registry,
        status=stored.status,
        revoked_at=stored.revoked_at,
        reason=stored.revoked_reason,
    )


async def _existing_revocation(app: App, registry: str) -> RevocationResult:
    try:
        async with app.sessions() as session:
            facts = await track_message(session, registry)
    except DATABASE_ERRORS:
        raise Unavailable("the database is not reachable") from None
    if facts is None:
        raise unknown_message(registry)
    return RevocationResult(
        registry=facts.registry,
        status=facts.status,
        revoked_at=facts.revoked_at,
        reason=facts.revoked_reason,
    )
