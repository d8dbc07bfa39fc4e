"""A copy's description made from its parts (the original parsed once) is the whole
copy's description, byte for byte; the parse process takes both kinds of request."""

from __future__ import annotations

import pytest

from gateway.delivery.parse_worker import COPY_MAGIC, copy_request
from gateway.delivery.pool import ParsePool
from gateway.imap.describe import describe
from gateway.imap.describe_copy import describe_copy, describe_job
from gateway.stamping import TRACE_KEY_PURPOSE, Stamper
from keys.gateway_keys import default_keys_dir, ensure_gateway_keys, load_gateway_keys
from testkit.stamp import ISSUED_AT, PUBLIC_URL, make_submission, plain_original

REGISTRY = "MOH/2025/000042"


@pytest.fixture(scope="module")
def stamper(tmp_path_factory: pytest.TempPathFactory) -> Stamper:
    directory = default_keys_dir(tmp_path_factory.mktemp("describekeys"))
    ensure_gateway_keys(directory)
    keys = load_gateway_keys(directory)
    return Stamper(keys, PUBLIC_URL, keys.derive(TRACE_KEY_PURPOSE))


def _copies(stamper: Stamper, original: bytes) -> list[tuple[bytes, bytes]]:
    submission = make_submission(original, recipients=("a@mof.gov.xx", "b@mof.gov.xx"))
    stamp = stamper.stamp(submission, REGISTRY, ISSUED_AT)
    return [(copy.prefix, copy.suffix) for copy in stamp.copies]


@pytest.mark.parametrize(
    "original",
    [
        plain_original(20_000),
        plain_original(300).rstrip(b"\r\n"),  # no final line break
        plain_original(300) + b"\r\n\r\n",
        b"Subject: bare\r\n\r\nno MIME at all\r\n",
    ],
    ids=["attachment", "no-final-crlf", "trailing-empty-lines", "bare"],
)
def test_copy_description_equals_the_whole_copys(stamper: Stamper, original: bytes) -> None:
    copies = _copies(stamper, original)
    for prefix, suffix in copies:  # the second copy takes the original from the cache
        whole = describe(prefix + original + suffix)
        assert describe_copy(prefix, original, suffix) == whole
        assert describe_job(copy_request(prefix, original, suffix)) == whole


def test_other_layouts_are_described_whole(stamper: Stamper) -> None:
    original = plain_original(500)
    prefix, suffix = _copies(stamper, original)[0]
    odd_suffix = b"trailing text, no delimiter\r\n" + suffix
    assert describe_copy(prefix, original, odd_suffix) == describe(prefix + original + odd_suffix)
    # A whole mail passes through describe_job unchanged; a cut request is refused.
    assert describe_job(original) == describe(original)
    with pytest.raises(ValueError):
        describe_job(COPY_MAGIC + b"\x00\x00")
    with pytest.raises(ValueError):
        describe_job(copy_request(b"a", b"bc", b"")[:-1])
    # A mail that opens like a request, sent as a copy with no parts around it.
    odd = COPY_MAGIC + original
    assert describe_job(copy_request(b"", odd, b"")) == describe(odd)


async def test_the_parse_process_describes_copy_requests(stamper: Stamper) -> None:
    original = plain_original(40_000)
    prefix, suffix = _copies(stamper, original)[0]
    pool = ParsePool("gateway.imap.describe_copy:describe_job", in_process_below=1024)
    try:
        request = copy_request(prefix, original, suffix)
        assert await pool(request) == describe(prefix + original + suffix)
        assert await pool(original) == describe(original)
    finally:
        await pool.close()
