"""Blob store fixtures: a directory store, and an S3 store on a loopback s3rver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.store.blobstore import BlobStore, BlobStores
from gateway.store.blobstore.filesystem import FilesystemBlobStore
from testkit.s3server import INLINE_MAX, S3Server


@pytest.fixture(scope="module")
def s3server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    server = S3Server(tmp_path_factory.mktemp("s3rver"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["filesystem", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    """An empty store of each kind (S3: a prefix of its own in the shared bucket)."""
    made: BlobStore
    if request.param == "filesystem":
        made = FilesystemBlobStore(tmp_path / "blobs")
    else:
        made = request.getfixturevalue("s3server").blob_store(f"{tmp_path.name}/")
    yield made
    await made.close()


@pytest.fixture
def stores(store: BlobStore) -> BlobStores:
    return BlobStores(write=store, inline_max=INLINE_MAX, by_scheme={store.scheme: store})
