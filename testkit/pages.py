"""Helpers for the verification page tests: a gateway with one valid and one revoked
letter (a hostile document name on the valid one), and tokens for the unknown and
forged pages."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from gateway.store.db import transaction
from gateway.store.models import Message, MessageDocument
from testkit.verification import flip, send_letter, token_for

HOSTILE_NAME = '<script>alert("x")</script>&.pdf'
VALID_DOCUMENT = b"%PDF-1.4\n" + b"a decree of the minister\n" * 50 + b"%%EOF\n"
REVOKED_DOCUMENT = b"%PDF-1.4\n" + b"a withdrawn circular\n" * 50 + b"%%EOF\n"
REVOKED_AT = "2026-04-01T08:15:30.123456Z"
REVOKED_REASON = "issued in error <b>"

# What a person must read on each page, by status and language.
STATUS_WORDS = {
    ("valid", "ar"): "صادر أصولاً",
    ("valid", "en"): "Genuinely issued",
    ("revoked", "ar"): "مُلغاة",
    ("revoked", "en"): "Revoked",
    ("unknown", "ar"): "غير موجودة في سجل هذه البوابة",
    ("unknown", "en"): "Not found in this gateway's registry",
    ("forged", "ar"): "مزوَّر أو تالف",
    ("forged", "en"): "Forged or damaged",
}
HTTP_STATUS = {"valid": 200, "revoked": 200, "unknown": 404, "forged": 400}


@dataclass(frozen=True)
class Letters:
    valid_registry: str
    revoked_registry: str
    tokens: dict[str, str]  # by status: valid, revoked, unknown, forged


async def stored_token(live: Any, registry: str) -> str:
    message = await live.gateway.store.message_by_registry(registry)
    assert message is not None
    return str(message.token)


async def prepare_letters(live: Any, gnupghome: Path) -> Letters:
    """One valid letter (its document renamed to HOSTILE_NAME in the database: the
    token covers digests, not names) and one revoked in the database."""
    valid = await send_letter(live, gnupghome, VALID_DOCUMENT, "decree.pdf")
    revoked = await send_letter(live, gnupghome, REVOKED_DOCUMENT, "circular.pdf")
    async with transaction(live.gateway.sessions) as session:
        message_id = await session.scalar(
            select(Message.id).where(Message.registry_number == valid)
        )
        await session.execute(
            update(MessageDocument)
            .where(MessageDocument.message_id == message_id)
            .values(name=HOSTILE_NAME)
        )
        await session.execute(
            update(Message)
            .where(Message.registry_number == revoked)
            .values(status="revoked", revoked_at=REVOKED_AT, revoked_reason=REVOKED_REASON)
        )
    valid_token = await stored_token(live, valid)
    tokens = {
        "valid": valid_token,
        "revoked": await stored_token(live, revoked),
        # Signed with the gateway's own key, for a registry number never stored.
        "unknown": token_for(live.gateway_keys.signing_key, serial=424_242),
        "forged": flip(valid_token, 30),
    }
    return Letters(valid, revoked, tokens)
