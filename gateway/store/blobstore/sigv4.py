"""AWS Signature Version 4 for S3 requests (header signing, path-style URLs).

Owns: the canonical request, the string to sign and the Authorization header.
Must not: send anything, or log the secret key or a signature.

Reference: the S3 "Signature Version 4 signing process" (canonical request of
method, URI, query, signed headers and payload hash; key derived by HMAC-SHA256
over date, region, service and "aws4_request").
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str = field(repr=False)
    region: str = "us-east-1"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def encode_path(path: str) -> str:
    """S3's canonical URI: each segment percent-encoded once, slashes kept."""
    return "/".join(quote(seg, safe="-_.~") for seg in path.split("/"))


def canonical_query(params: Mapping[str, str]) -> str:
    return "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
    )


def sign(
    creds: Credentials,
    method: str,
    host: str,
    path: str,
    params: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """The headers to send: `headers` plus host, x-amz-date, x-amz-content-sha256
    and Authorization. `path` is already encoded (see `encode_path`)."""
    now = now or dt.datetime.now(dt.UTC)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    day = stamp[:8]
    out = {k.lower(): v.strip() for k, v in headers.items()}
    out.update({"host": host, "x-amz-date": stamp, "x-amz-content-sha256": payload_sha256})
    names = sorted(out)
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query(params),
            "".join(f"{n}:{out[n]}\n" for n in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{creds.region}/{SERVICE}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(("AWS4" + creds.secret_key).encode(), day)
    for part in (creds.region, SERVICE, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["authorization"] = (
        f"{ALGORITHM} Credential={creds.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return out
