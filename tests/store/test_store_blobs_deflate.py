"""Blobs sealed with `deflate`: smaller ciphertext, the same bytes back, checked as before."""

from __future__ import annotations

import os
import zlib

import pytest

from gateway.store.blobs import (
    BLOB_KEK_PURPOSE,
    BlobCipher,
    BlobIntegrityError,
    blob_aad,
    open_blob,
    seal_blob,
)
from keys.gateway_keys import derive_key

CIPHER = BlobCipher(derive_key(b"m" * 32, BLOB_KEK_PURPOSE))
COVER = ("<p dir='rtl'>نص الغلاف</p><p>cover text</p>\r\n" * 200).encode()


def test_text_is_stored_smaller_and_read_back_whole() -> None:
    blob = seal_blob(CIPHER, COVER, purpose="copy-prefix", deflate=True)
    assert blob.size == len(COVER) and len(blob.ciphertext) < len(COVER) // 5
    assert open_blob(CIPHER, blob) == COVER
    plain = seal_blob(CIPHER, COVER, purpose="copy-prefix")
    assert len(plain.ciphertext) > len(COVER) and open_blob(CIPHER, plain) == COVER


def test_what_does_not_shrink_is_stored_as_it_is() -> None:
    noise = os.urandom(4096)
    blob = seal_blob(CIPHER, noise, purpose="copy-suffix", deflate=True)
    assert len(blob.ciphertext) == len(noise) + 16  # the GCM tag
    assert open_blob(CIPHER, blob) == noise


@pytest.mark.parametrize(
    "payload", [zlib.compress(COVER + b"more"), zlib.compress(COVER)[:-5], b"\x78\x9cnot deflate"]
)
def test_a_payload_that_does_not_inflate_to_the_row_is_refused(payload: bytes) -> None:
    blob = seal_blob(CIPHER, COVER, purpose="copy-prefix", deflate=True)
    blob.nonce, blob.wrapped_key, blob.ciphertext = CIPHER.seal(
        payload, blob_aad(blob.id, blob.purpose)
    )
    with pytest.raises(BlobIntegrityError):
        open_blob(CIPHER, blob)
