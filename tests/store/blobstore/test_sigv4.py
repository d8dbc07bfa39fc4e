"""SigV4 request signing against the worked examples of the S3 documentation
("Signature Calculations for the Authorization Header: Transferring Payload in a
Single Chunk", examples GET Object and GET Bucket (List Objects)). The S3 server
of the tests does not verify signatures, so these known answers are what prove
the signing itself."""

from __future__ import annotations

import datetime as dt

from gateway.store.blobstore.sigv4 import Credentials, sign

EXAMPLE = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
WHEN = dt.datetime(2013, 5, 24, tzinfo=dt.UTC)
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
HOST = "examplebucket.s3.amazonaws.com"


def test_get_object_example() -> None:
    headers = sign(EXAMPLE, "GET", HOST, "/test.txt", {}, {"Range": "bytes=0-9"},
                   EMPTY_SHA256, WHEN)  # fmt: skip
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )
    assert headers["x-amz-date"] == "20130524T000000Z"


def test_list_objects_example_with_a_query() -> None:
    headers = sign(EXAMPLE, "GET", HOST, "/", {"max-keys": "2", "prefix": "J"}, {},
                   EMPTY_SHA256, WHEN)  # fmt: skip
    assert headers["authorization"].endswith(
        "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )
