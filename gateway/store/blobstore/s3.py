"""S3-compatible object storage as a blob store (path-style requests, SigV4, httpx).

Owns: PUT with Content-MD5 and a signed SHA-256 of the payload, then a HEAD
that checks the stored length and ETag; GET, DELETE and ListObjectsV2. Must not:
log credentials, signatures or object bytes.

Failure behaviour: any transport error or unexpected status becomes
BlobStoreError naming the operation, key and HTTP status only; a 404 on GET is
BlobStoreMissing. A PUT that the server cannot confirm is an error: the caller
has not committed anything yet, so the submission is answered 451 and retried.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

import httpx
from defusedxml import ElementTree

from gateway.store.blobstore.base import BlobStoreError, BlobStoreMissing, StoredObject
from gateway.store.blobstore.sigv4 import Credentials, encode_path, sign

MAX_OBJECT_BYTES = 5 * 1024**3  # one PUT
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TIMEOUT = httpx.Timeout(60.0, connect=10.0)


def _parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _strip_namespaces(root: Element) -> Element:
    """Servers differ in the listing's XML namespace: compare local names only."""
    for element in root.iter():
        element.tag = element.tag.rpartition("}")[2]
    return root


class S3BlobStore:
    """Objects in `bucket` at `endpoint`, under `prefix` (e.g. "barid/")."""

    scheme = "s3"
    max_object_bytes = MAX_OBJECT_BYTES

    def __init__(self, endpoint: str, bucket: str, creds: Credentials, *, prefix: str = "") -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("the S3 endpoint is an http(s) URL")
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._host = parts.netloc
        self.bucket = bucket
        self.prefix = prefix
        self._creds = creds
        self._client = httpx.AsyncClient(timeout=TIMEOUT)

    def __repr__(self) -> str:
        return f"S3BlobStore({self._base!r}, bucket={self.bucket!r})"

    async def _send(
        self,
        method: str,
        key: str | None,
        *,
        params: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        payload_sha256: str | None = None,
    ) -> httpx.Response:
        path = encode_path(f"/{self.bucket}" + (f"/{self.prefix}{key}" if key else ""))
        params = dict(params or {})
        signed = sign(
            self._creds,
            method,
            self._host,
            path,
            params,
            headers or {},
            payload_sha256 or hashlib.sha256(body).hexdigest(),
        )
        try:
            return await self._client.request(
                method, self._base + path, params=params, content=body, headers=signed
            )
        except httpx.HTTPError as exc:
            raise BlobStoreError(f"S3 {method} {key or ''}: {type(exc).__name__}") from None

    async def put(self, key: str, data: bytes, sha256: str) -> None:
        md5 = hashlib.md5(data, usedforsecurity=False)
        headers = {
            "content-md5": base64.b64encode(md5.digest()).decode(),
            "content-type": "application/octet-stream",
        }
        resp = await self._send("PUT", key, body=data, headers=headers, payload_sha256=sha256)
        if resp.status_code != 200:
            raise BlobStoreError(f"S3 PUT {key}: HTTP {resp.status_code}")
        head = await self._send("HEAD", key, payload_sha256=EMPTY_SHA256)
        etag = head.headers.get("etag", "").strip('"')
        length = head.headers.get("content-length")
        if head.status_code != 200 or length != str(len(data)) or etag != md5.hexdigest():
            raise BlobStoreError(f"S3 PUT {key}: the stored object does not match")

    async def get(self, key: str) -> bytes:
        resp = await self._send("GET", key, payload_sha256=EMPTY_SHA256)
        if resp.status_code == 404:
            raise BlobStoreMissing(f"object {key} is missing")
        if resp.status_code != 200:
            raise BlobStoreError(f"S3 GET {key}: HTTP {resp.status_code}")
        return resp.content

    async def delete(self, key: str) -> None:
        resp = await self._send("DELETE", key, payload_sha256=EMPTY_SHA256)
        if resp.status_code not in (200, 204, 404):
            raise BlobStoreError(f"S3 DELETE {key}: HTTP {resp.status_code}")

    async def list(self) -> AsyncIterator[StoredObject]:
        token: str | None = None
        while True:
            params = {"list-type": "2", "max-keys": "1000", "prefix": self.prefix}
            if token:
                params["continuation-token"] = token
            resp = await self._send("GET", None, params=params, payload_sha256=EMPTY_SHA256)
            if resp.status_code != 200:
                raise BlobStoreError(f"S3 list: HTTP {resp.status_code}")
            root = _strip_namespaces(ElementTree.fromstring(resp.content))
            for item in root.iter("Contents"):
                key = item.findtext("Key", "")
                when = item.findtext("LastModified", "")
                if key.startswith(self.prefix) and when:
                    yield StoredObject(key[len(self.prefix) :], _parse_time(when))
            token = root.findtext("NextContinuationToken")
            if root.findtext("IsTruncated") != "true" or not token:
                return

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (tests and first setup)."""
        resp = await self._send("HEAD", None, payload_sha256=EMPTY_SHA256)
        if resp.status_code == 200:
            return
        made = await self._send("PUT", None, payload_sha256=EMPTY_SHA256)
        if made.status_code not in (200, 409):
            raise BlobStoreError(f"S3 create bucket: HTTP {made.status_code}")

    async def close(self) -> None:
        await self._client.aclose()
