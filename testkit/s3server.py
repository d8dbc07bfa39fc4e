"""An S3-compatible server on loopback for the blob store tests: s3rver (npm).

s3rver is not part of the checkout: .ci/run installs it with npm into a cache
outside it (`npm install --prefix ~/.cache/barid-test/s3rver s3rver@3`), and
`BARID_S3RVER` may name another s3rver executable. `S3Server` starts it on a
free port with a data directory of its own and waits until it answers; a
missing executable skips the test (fails under BARID_REQUIRE_ALL=1).

What it is: a small Node.js server that implements the S3 REST API (buckets,
PUT/GET/HEAD/DELETE, ListObjectsV2) over files. Its limits matter to what the
tests prove: it parses but does not verify SigV4 signatures and does not check
Content-MD5, so the tests check the client's own verification (HEAD length and
ETag after each PUT, SHA-256 on each read) rather than the server's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from gateway.store.blobstore.s3 import S3BlobStore
from gateway.store.blobstore.sigv4 import Credentials
from testkit.ports import free_port
from testkit.tools import missing

S3RVER_ENV = "BARID_S3RVER"
DEFAULT_S3RVER = Path.home() / ".cache/barid-test/s3rver/node_modules/.bin/s3rver"
# s3rver's built-in account.
ACCESS_KEY = "S3RVER"
SECRET_KEY = "S3RVER"
BUCKET = "barid-test"
INLINE_MAX = 256  # the tests' [blobs] inline_max_bytes: ciphertexts over it go outside


class S3Server:
    """`start()` runs s3rver on 127.0.0.1 with `BUCKET` made; `stop()` ends it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, *, prefix: str = "") -> dict[str, str]:
        """The gateway environment of an s3 blob backend on this server."""
        return {
            "BARID_BLOBS__BACKEND": "s3",
            "BARID_BLOBS__S3_ENDPOINT": self.endpoint,
            "BARID_BLOBS__S3_BUCKET": BUCKET,
            "BARID_BLOBS__S3_PREFIX": prefix,
            "BARID_BLOBS__S3_CREDENTIALS_FILE": str(self.credentials_file),
        }

    @property
    def credentials_file(self) -> Path:
        """The keys in the form `[blobs] s3_credentials_file` reads (written by `start`)."""
        return self.directory.parent / f"{self.directory.name}.credentials"

    def blob_store(self, prefix: str) -> S3BlobStore:
        """A client of this server's bucket, its keys under `prefix`."""
        return S3BlobStore(
            self.endpoint, BUCKET, Credentials(ACCESS_KEY, SECRET_KEY), prefix=prefix
        )

    def start(self) -> None:
        exe = Path(os.environ.get(S3RVER_ENV) or DEFAULT_S3RVER)
        if not exe.exists():
            missing(f"s3rver is not installed at {exe} (npm install s3rver@3)")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.credentials_file.write_text(
            f"access_key = {ACCESS_KEY}\nsecret_key = {SECRET_KEY}\n", encoding="utf-8"
        )
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(exe), "-d", str(self.directory), "-a", "127.0.0.1", "-p", str(self.port),
             "-s", "--no-vhost-buckets", "--configure-bucket", BUCKET],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("s3rver did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
