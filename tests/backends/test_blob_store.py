"""The BlobStore contract, run against every backend: local disk and S3 (SeaweedFS)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from dicom_file_service.errors import InsufficientStorage, StorageUnavailable
from dicom_file_service.settings import Settings
from dicom_file_service.storage import (
    BlobNotFound,
    BlobRenderCache,
    BlobStore,
    LocalBlobStore,
    MemoryRenderCache,
    open_blob_store,
)
from dicom_file_service.storage.ranged_reader import BLOCK, RangedReader
from tests.conftest import new_bucket_name
from tests.s3server import S3Server
from tests.tcp_proxy import TcpProxy


def s3_store(s3_server: S3Server, **overrides: str) -> BlobStore:
    """The S3 store alone (no local copies: ``copies_store`` keeps them), under a prefix of
    its own in a bucket the tests share: SeaweedFS gives every bucket volumes of its own, of
    which the test server has a bounded number."""
    prefix = f"{uuid.uuid4().hex[:12]}/x"
    env = s3_server.env("contract", prefix)
    env.update(overrides)
    return _store_from(env)


def copies_store(s3_server: S3Server, scratch: Path, **overrides: str) -> BlobStore:
    """The S3 store with copies of recent files in ``scratch``/copies, as the service has it."""
    return s3_store(
        s3_server, DICOM_FS_LOCAL_COPY_BYTES=str(64 << 20), DICOM_FS_SCRATCH_DIR=str(scratch)
    )


def _store_from(env: dict[str, str]) -> BlobStore:
    """The store ``env`` names (with no local copies unless it asks for them, and then in
    the scratch area it names)."""
    env = {"DICOM_FS_LOCAL_COPY_BYTES": "0", **env}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        return open_blob_store(Settings())


@pytest.fixture(params=["local", "s3", "s3+copies"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    server = request.getfixturevalue("s3_server")
    if request.param == "s3":
        yield s3_store(server)
        return
    store = copies_store(server, tmp_path / "scratch")
    yield store
    store.close()


def _file(tmp_path: Path, data: bytes) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path


def test_put_file_stores_the_file_under_the_key(store: BlobStore, tmp_path: Path) -> None:
    store.put_file("instances/ab/abcdef", _file(tmp_path, b"DICM" * 1000))
    assert store.exists("instances/ab/abcdef")
    with store.open_reader("instances/ab/abcdef") as f:
        assert f.read() == b"DICM" * 1000
    assert store.size("instances/ab/abcdef") == 4000


def test_a_put_that_overlaps_reads_leaves_its_source_readable_meanwhile(
    store: BlobStore, tmp_path: Path
) -> None:
    """Where ``remote`` (the service parses the file while it goes up), the source
    is read while it is sent and is still whole afterwards; elsewhere it may be consumed."""
    data = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB: sent in parts on S3
    source = _file(tmp_path, data)
    if not store.remote:
        store.put_file("instances/ov/overlap", source)
        assert store.size("instances/ov/overlap") == len(data)
        return
    with ThreadPoolExecutor(1) as pool:
        sending = pool.submit(store.put_file, "instances/ov/overlap", source)
        assert source.read_bytes() == data  # read while it is sent
        sending.result()
    assert source.read_bytes() == data
    assert b"".join(store.iter_range("instances/ov/overlap")) == data


def test_a_large_file_goes_up_whole(store: BlobStore, tmp_path: Path) -> None:
    """Above the multipart threshold on S3 (8 MiB parts): the object is the file, byte for byte."""
    data = bytes(range(256)) * (20 * 1024 * 4 + 7)  # 20 MiB and a bit
    store.put_file("instances/la/large", _file(tmp_path, data))
    assert store.size("instances/la/large") == len(data)
    assert store.read_range("instances/la/large", 9_000_000, 9_000_100) == data[9_000_000:9_000_100]
    assert b"".join(store.iter_range("instances/la/large")) == data


def test_put_bytes_then_read_ranges(store: BlobStore) -> None:
    data = bytes(range(256)) * 10
    store.put_bytes("renderings/x/y/z/k.png", data)
    assert store.get_bytes("renderings/x/y/z/k.png") == data
    assert b"".join(store.iter_range("renderings/x/y/z/k.png")) == data
    assert b"".join(store.iter_range("renderings/x/y/z/k.png", 10, 20)) == data[10:20]
    assert store.read_range("renderings/x/y/z/k.png", 2550, 2600) == data[2550:]
    assert store.read_range("renderings/x/y/z/k.png", 2560, 2600) == b""


def test_the_reader_seeks_and_reads_only_what_it_is_asked(store: BlobStore) -> None:
    data = bytes(range(256)) * 4096
    store.put_bytes("instances/rd/reader", data)
    with store.open_reader("instances/rd/reader") as f:
        f.seek(500_000)
        assert f.read(10) == data[500_000:500_010]
        f.seek(-5, 2)
        assert f.read() == data[-5:]
        assert f.tell() == len(data)


def test_async_ranges_are_the_ranges(store: BlobStore) -> None:
    data = bytes(range(256)) * 4096
    store.put_bytes("instances/as/async", data)

    async def ranges() -> list[bytes]:
        return [
            await store.read_range_async("instances/as/async", start, end)
            for start, end in [
                (0, BLOCK),
                (1000, 1010),
                (len(data) - 5, len(data) + 100),
                (len(data), len(data) + 10),
                (10, 10),
            ]
        ]

    assert asyncio.run(ranges()) == [data[:BLOCK], data[1000:1010], data[-5:], b"", b""]

    async def missing() -> bytes:
        return await store.read_range_async("instances/no/none", 0, 10)

    with pytest.raises(BlobNotFound):
        asyncio.run(missing())


def test_a_reader_given_the_head_reads_on_from_it(store: BlobStore) -> None:
    data = bytes(range(256)) * 4096
    store.put_bytes("instances/hd/head", data)
    with store.open_reader("instances/hd/head", len(data), head=data[:BLOCK]) as f:
        assert f.read(100) == data[:100]
        ranged = isinstance(f, RangedReader)  # reads are ranged: the head is not read again
        assert not ranged or f.requests == 0
        f.seek(BLOCK - 10)
        assert f.read(20) == data[BLOCK - 10 : BLOCK + 10]
        assert not ranged or f.bytes_fetched == BLOCK  # the second block alone
        f.seek(0)
        assert f.read() == data


def test_missing_objects_are_reported(store: BlobStore) -> None:
    assert not store.exists("instances/no/none")
    with pytest.raises(BlobNotFound):
        store.open_reader("instances/no/none")
    with pytest.raises(BlobNotFound):
        store.size("instances/no/none")
    with pytest.raises(BlobNotFound):
        store.get_bytes("instances/no/none")
    with pytest.raises(BlobNotFound):  # before the first chunk: a response has not started
        store.iter_range("instances/no/none")


def test_delete_and_delete_prefix_are_idempotent(store: BlobStore) -> None:
    store.put_bytes("renderings/a/b/id1/one.png", b"1")
    store.put_bytes("renderings/a/b/id1/two.png", b"2")
    store.put_bytes("renderings/a/b/id10/keep.png", b"3")
    store.delete_prefix("renderings/a/b/id1")
    assert not store.exists("renderings/a/b/id1/one.png")
    assert not store.exists("renderings/a/b/id1/two.png")
    assert store.exists("renderings/a/b/id10/keep.png")
    store.delete_prefix("renderings/a/b/id1")
    store.delete("renderings/a/b/id10/keep.png")
    store.delete("renderings/a/b/id10/keep.png")
    assert not store.exists("renderings/a/b/id10/keep.png")


def test_overwriting_a_key_is_atomic(store: BlobStore) -> None:
    store.put_bytes("k/v", b"old")
    store.put_bytes("k/v", b"new")
    assert store.get_bytes("k/v") == b"new"


def test_no_partial_object_is_visible_after_a_put_cut_half_way(
    s3_server: S3Server, tmp_path: Path
) -> None:
    """The connection to the store is cut after 12 MiB of a 24 MiB upload (a multipart upload
    of 8 MiB parts): the put fails, and the key is absent, never a torn object."""
    env = s3_server.env(new_bucket_name(), "p")
    port = int(env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    proxy = TcpProxy(("127.0.0.1", port), upload_budget=12 * 1024 * 1024)
    proxy.start()
    source = _file(tmp_path, bytes(range(256)) * (24 * 1024 * 4))
    try:
        cut = _store_from(
            {
                **env,
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{proxy.port}",
                "DICOM_FS_S3_TIMEOUT_SECONDS": "3",
            }
        )
        with pytest.raises(StorageUnavailable):
            cut.put_file("instances/pa/partial", source)
    finally:
        proxy.stop()
    direct = _store_from(env)
    assert not direct.exists("instances/pa/partial")
    assert list(direct.list_keys("instances")) == []


def test_no_partial_file_is_visible_after_a_copy_fails_half_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From another filesystem the local store copies before its atomic rename; a copy that
    fails half-way (the disk fills) leaves neither the key nor the half copy behind."""
    import shutil

    def half_then_full(src: Path, dst: Path) -> None:
        Path(dst).write_bytes(Path(src).read_bytes()[:1000])
        raise OSError(28, "No space left on device")

    _across_filesystems(monkeypatch, tmp_path / "elsewhere")
    monkeypatch.setattr(shutil, "copyfile", half_then_full)
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(InsufficientStorage, match="No space left"):
        store.put_file("instances/pa/partial", _file(tmp_path / "elsewhere", b"DICM" * 1000))
    assert not store.exists("instances/pa/partial")
    assert list((tmp_path / "blobs" / ".staging").iterdir()) == []


def test_a_file_from_another_filesystem_is_copied_in_and_its_original_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _across_filesystems(monkeypatch, tmp_path / "elsewhere")
    store = LocalBlobStore(tmp_path / "blobs")
    source = _file(tmp_path / "elsewhere", b"DICM" * 1000)
    store.put_file("instances/pa/whole", source)
    assert store.get_bytes("instances/pa/whole") == b"DICM" * 1000
    assert not source.exists()
    assert list((tmp_path / "blobs" / ".staging").iterdir()) == []


def _across_filesystems(monkeypatch: pytest.MonkeyPatch, elsewhere: Path) -> None:
    """Renames out of ``elsewhere`` fail as they do across filesystems (EXDEV)."""
    import errno
    import os

    from dicom_file_service.storage import local

    rename = os.replace

    def replace(src: object, dst: object) -> None:
        if Path(str(src)).parent == elsewhere:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        rename(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(local.os, "replace", replace)


def test_list_keys_names_every_object_under_a_prefix(store: BlobStore) -> None:
    store.put_bytes("instances/Ab/AbX", b"1")
    store.put_bytes("instances/Cd/CdY", b"2")
    store.put_bytes("renderings/Ab/AbX/k.png", b"3")
    listed = dict(store.list_keys("instances"))
    assert set(listed) == {"instances/Ab/AbX", "instances/Cd/CdY"}
    assert all(t > 0 for t in listed.values())


def test_the_render_cache_gets_puts_and_deletes_a_files_renderings(store: BlobStore) -> None:
    cache = BlobRenderCache(store)
    assert cache.get("AbCdEfGhIjKlMnOpQrStUv", "r1-f1-file-8") is None
    cache.put("AbCdEfGhIjKlMnOpQrStUv", "r1-f1-file-8", b"\x89PNG one")
    cache.put("AbCdEfGhIjKlMnOpQrStUv", "r1-f1-file-128x128-8", b"\x89PNG two")
    cache.put("AbCdEfGhIjKlMnOpQrStUw", "r1-f1-file-8", b"\x89PNG other file")
    assert cache.get("AbCdEfGhIjKlMnOpQrStUv", "r1-f1-file-8") == b"\x89PNG one"
    assert cache.recall("AbCdEfGhIjKlMnOpQrStUv", "r1-f1-file-8") is None  # only by a read
    cache.delete_all("AbCdEfGhIjKlMnOpQrStUv")
    assert cache.get("AbCdEfGhIjKlMnOpQrStUv", "r1-f1-file-8") is None
    assert cache.get("AbCdEfGhIjKlMnOpQrStUv", "r1-f1-file-128x128-8") is None
    assert cache.get("AbCdEfGhIjKlMnOpQrStUw", "r1-f1-file-8") == b"\x89PNG other file"


def test_the_store_is_ready(store: BlobStore) -> None:
    store.check()


# Local only: keys are paths there.
@pytest.mark.parametrize("key", ["", "../escape", "a/../../b", "/abs", "a//b", ".staging/x"])
def test_local_keys_cannot_escape_the_store(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        LocalBlobStore(tmp_path / "blobs").put_bytes(key, b"x")


def test_local_prefixes_are_prepared_up_front(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", prefixes=["instances/Ab", "instances/Cd"])
    assert (tmp_path / "blobs" / "objects" / "instances" / "Ab").is_dir()
    store.put_bytes("instances/Ab/AbCdEf", b"x")
    assert store.exists("instances/Ab/AbCdEf")


def test_the_local_store_cannot_presign(tmp_path: Path) -> None:
    assert LocalBlobStore(tmp_path / "b").presign("GET", "k", timedelta(seconds=60)) is None


# S3 only: credentials are checked, presigned URLs are bound to one object and method.
def test_s3_refuses_a_wrong_secret(s3_server: S3Server) -> None:
    bad = s3_store(s3_server, AWS_SECRET_ACCESS_KEY="not-the-secret")
    with pytest.raises(StorageUnavailable):
        bad.put_bytes("instances/ab/x", b"1")
    with pytest.raises(StorageUnavailable):
        bad.check()


def test_s3_refuses_unsigned_requests(s3_server: S3Server) -> None:
    store = s3_store(s3_server)
    store.put_bytes("instances/ab/x", b"secret bytes")
    url = store.presign("GET", "instances/ab/x", timedelta(seconds=60))
    assert url is not None
    unsigned = url.split("?", 1)[0]
    assert httpx.get(unsigned).status_code == 403


def test_s3_presigned_urls_round_trip_and_are_bound_to_their_object(
    s3_server: S3Server,
) -> None:
    store = s3_store(s3_server)
    put_url = store.presign("PUT", "instances/ps/upload", timedelta(seconds=60))
    assert put_url is not None
    put = httpx.put(put_url, content=b"direct", headers={"Content-Type": "application/dicom"})
    assert put.status_code == 200
    assert store.get_bytes("instances/ps/upload") == b"direct"
    get_url = store.presign("GET", "instances/ps/upload", timedelta(seconds=60))
    assert get_url is not None
    assert httpx.get(get_url).content == b"direct"
    for forged in (
        get_url.replace("instances/ps/upload", "instances/ps/other"),  # another object
        get_url.replace("X-Amz-Signature=", "X-Amz-Signature=0"),  # tampered
    ):
        assert httpx.get(forged).status_code == 403
    assert httpx.put(get_url, content=b"overwrite").status_code == 403  # GET's URL, PUT


def test_s3_presigns_for_the_endpoint_clients_reach(s3_server: S3Server) -> None:
    """Behind a proxy or in containers the service reaches the store under another name than
    its clients do; presigned URLs are signed for the clients' one."""
    public = s3_server.endpoint.replace("127.0.0.1", "localhost")
    store = s3_store(s3_server, DICOM_FS_S3_PRESIGN_ENDPOINT_URL=public)
    store.put_bytes("instances/pu/public", b"reachable")
    url = store.presign("GET", "instances/pu/public", timedelta(seconds=60))
    assert url is not None and url.startswith(public + "/")
    assert httpx.get(url).content == b"reachable"


def test_the_memory_layer_is_bounded_and_forgets_what_is_deleted(store: BlobStore) -> None:
    inner = BlobRenderCache(store)
    cache = MemoryRenderCache(inner, max_bytes=8000)  # a rendering may take up to 1,000
    for i in range(20):
        cache.put(f"file{i:018d}xxxx", "k", bytes([i]) * 900)
    assert cache._size <= 8000  # least recently used went from memory ...
    assert cache.get("file000000000000000000xxxx", "k") == bytes([0]) * 900  # ... not the store
    store.delete_prefix("renderings")  # gone from the store: memory still answers
    assert cache.get("file000000000000000019xxxx", "k") == bytes([19]) * 900
    assert cache.recall("file000000000000000019xxxx", "k") == bytes([19]) * 900
    assert cache.recall("file000000000000000001xxxx", "k") is None  # evicted, and not read
    cache.delete_all("file000000000000000019xxxx")
    assert cache.get("file000000000000000019xxxx", "k") is None
    cache.put("file000000000000000001xxxx", "big", b"x" * 2000)  # over an eighth: store only
    assert ("file000000000000000001xxxx", "big") not in cache._entries
    assert cache.get("file000000000000000001xxxx", "big") == b"x" * 2000
