"""The analysis stays roughly linear and quick: a 100 KB PGP/MIME message in about 1 ms."""

from __future__ import annotations

import time

from gateway.mime import Analysis, MimeLimits, analyze
from testkit.mime_samples import attachment, entity, message, multipart, pdf_bytes, text_part

SIGNATURE = (
    b"-----BEGIN PGP SIGNATURE-----\r\n\r\niHUEARYIAB0WIQQ=\r\n-----END PGP SIGNATURE-----\r\n"
)


def hundred_kb_message() -> bytes:
    inner = multipart(
        "mixed", [text_part("Please find the letter.\n" * 20), attachment("letter.pdf", pdf_bytes(72_000))],
        "inner-b",
    )  # fmt: skip
    signature = entity(
        [("Content-Type", 'application/pgp-signature; name="OpenPGP_signature.asc"')], SIGNATURE
    )
    return message(multipart("signed", [inner, signature], "outer-b",
                             '; protocol="application/pgp-signature"; micalg=pgp-sha256'))  # fmt: skip


def best_of(raw: bytes, rounds: int = 7, calls: int = 50) -> float:
    limits = MimeLimits()
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            analyze(raw, limits)
        best = min(best, (time.perf_counter() - started) / calls)
    return best


def test_hundred_kb_pgp_mime_is_fast() -> None:
    raw = hundred_kb_message()
    assert 95_000 < len(raw) < 105_000
    result = analyze(raw, MimeLimits())
    assert isinstance(result, Analysis) and len(result.documents) == 1
    # About 0.7 ms on a development machine; the bound leaves room for slow CI.
    assert best_of(raw) < 0.010


def test_near_miss_delimiter_flood_stays_linear() -> None:
    head = b"From: a@b.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
    raw = head + b"--bx\r\n" * 200_000 + b"\r\n--b--\r\n"
    assert best_of(raw, rounds=3, calls=3) < 0.5
