"""Encryption at rest: round trips, and tampering or swapping is refused."""

from __future__ import annotations

import os

import pytest
from sqlalchemy import select, update

from gateway.store.blobs import (
    BLOB_KEK_PURPOSE,
    BlobCipher,
    BlobIntegrityError,
    BlobNotFound,
    blob_aad,
    put_blob,
    read_blob,
)
from gateway.store.messages import MessageStore
from gateway.store.models import Blob, Message
from keys.gateway_keys import derive_key
from testkit.store import MASTER, stamper, store_env, submission

AUDIT = os.urandom(32)


def test_seal_open_round_trip_and_refusals() -> None:
    cipher = BlobCipher(os.urandom(32))
    aad = blob_aad("00" * 16, "original")
    for size in (0, 1, 100_000):
        data = os.urandom(size)
        nonce, wrapped, ct = cipher.seal(data, aad)
        assert len(nonce) == 12 and len(wrapped) == 12 + 32 + 16 and len(ct) == size + 16
        assert cipher.open(nonce, wrapped, ct, aad) == data
    nonce, wrapped, ct = cipher.seal(b"official letter", aad)
    flipped = bytes([ct[0] ^ 1]) + ct[1:]
    with pytest.raises(BlobIntegrityError):
        cipher.open(nonce, wrapped, flipped, aad)
    with pytest.raises(BlobIntegrityError):
        cipher.open(nonce, wrapped, ct, blob_aad("11" * 16, "original"))
    with pytest.raises(BlobIntegrityError):
        cipher.open(nonce, wrapped, ct, blob_aad("00" * 16, "copy-prefix"))
    with pytest.raises(BlobIntegrityError):
        cipher.open(nonce, wrapped[:20] + bytes([wrapped[20] ^ 1]) + wrapped[21:], ct, aad)
    with pytest.raises(BlobIntegrityError):
        BlobCipher(os.urandom(32)).open(nonce, wrapped, ct, aad)
    # Two seals of the same bytes share nothing.
    again = cipher.seal(b"official letter", aad)
    assert again[0] != nonce and again[1] != wrapped and again[2] != ct
    assert "kek_id" in repr(cipher) and len(cipher.kek_id) == 16


async def test_blob_rows_round_trip_and_tampering_is_refused(db_url: str) -> None:
    cipher = BlobCipher(os.urandom(32))
    async with store_env(db_url, seeded=False) as env:
        a_data, b_data = os.urandom(5000), os.urandom(5000)
        async with env.sessions() as s, s.begin():
            a = put_blob(s, cipher, a_data, purpose="original")
            b = put_blob(s, cipher, b_data, purpose="original")
        async with env.sessions() as s:
            assert await read_blob(s, cipher, a) == a_data
            assert await read_blob(s, cipher, b) == b_data
            stored = await s.get(Blob, a)
            assert stored is not None and a_data[:64] not in stored.ciphertext
            with pytest.raises(BlobNotFound):
                await read_blob(s, cipher, "ff" * 16)
            with pytest.raises(BlobIntegrityError):  # another master key
                await read_blob(s, BlobCipher(os.urandom(32)), a)

        async def rows() -> tuple[Blob, Blob]:
            async with env.sessions() as s:
                x, y = await s.get(Blob, a), await s.get(Blob, b)
                assert x is not None and y is not None
                return x, y

        async def refused(blob_id: str) -> None:
            async with env.sessions() as s:
                with pytest.raises(BlobIntegrityError):
                    await read_blob(s, cipher, blob_id)

        x, y = await rows()
        async with env.sessions() as s, s.begin():  # swap the two ciphertexts and key material
            for target, source in ((a, y), (b, x)):
                await s.execute(
                    update(Blob).where(Blob.id == target).values(
                        nonce=source.nonce, wrapped_key=source.wrapped_key,
                        ciphertext=source.ciphertext, sha256=source.sha256,
                    )
                )  # fmt: skip
        await refused(a)
        await refused(b)

        async with env.sessions() as s, s.begin():  # restore, then flip one byte
            await s.execute(update(Blob).where(Blob.id == a).values(
                nonce=x.nonce, wrapped_key=x.wrapped_key, ciphertext=x.ciphertext, sha256=x.sha256))  # fmt: skip
        async with env.sessions() as s:
            assert await read_blob(s, cipher, a) == a_data
        ct = bytearray(x.ciphertext)
        ct[len(ct) // 2] ^= 0x80
        async with env.sessions() as s, s.begin():
            await s.execute(update(Blob).where(Blob.id == a).values(ciphertext=bytes(ct)))
        await refused(a)
        async with env.sessions() as s, s.begin():  # relabelled purpose
            await s.execute(update(Blob).where(Blob.id == b).values(purpose="copy-prefix"))
        await refused(b)


async def test_swapped_message_originals_are_refused(db_url: str) -> None:
    async with store_env(db_url) as env:
        one, two = submission(), submission()
        m1 = await env.store.accept(one, stamper(one)[1], actor="t")
        m2 = await env.store.accept(two, stamper(two)[1], actor="t")
        async with env.sessions() as s:
            blobs = {
                mid: await s.scalar(select(Message.original_blob_id).where(Message.id == mid))
                for mid in (m1.message_id, m2.message_id)
            }
            first = await s.get(Blob, blobs[m1.message_id])
            assert first is not None
            stolen = (first.nonce, first.wrapped_key, first.ciphertext, first.sha256, first.size)
        async with env.sessions() as s, s.begin():
            await s.execute(
                update(Blob).where(Blob.id == blobs[m2.message_id]).values(
                    nonce=stolen[0], wrapped_key=stolen[1], ciphertext=stolen[2],
                    sha256=stolen[3], size=stolen[4],
                )
            )  # fmt: skip
        assert await env.store.load_original(m1.message_id) == one.raw
        with pytest.raises(BlobIntegrityError):
            await env.store.load_original(m2.message_id)
        copies = await env.store.copies_for(m2.message_id)
        with pytest.raises(BlobIntegrityError):
            await env.store.load_copy(copies[0].id)
        # Another gateway with another master key cannot read the first message.
        foreign = MessageStore(env.sessions, os.urandom(32), AUDIT)
        with pytest.raises(BlobIntegrityError):
            await foreign.load_original(m1.message_id)
        assert len(derive_key(MASTER, BLOB_KEK_PURPOSE)) == 32
