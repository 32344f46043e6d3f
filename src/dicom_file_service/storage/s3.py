"""Blob store on any S3-compatible object store (AWS S3, SeaweedFS, MinIO), through obstore.

obstore (Rust's ``object_store``) signs, retries and streams outside the GIL; nothing here
signs by hand. Addressing is path-style unless the endpoint is AWS itself, so a plain
``http://127.0.0.1:PORT`` endpoint works. A PUT is atomic on S3 (the object appears whole or
not at all), files above ``multipart_threshold`` go up as multipart uploads, and reads are
ranged GETs, so one frame of a 2 GB file costs the header and that frame's bytes.

Every backend failure is converted here: a missing object is ``BlobNotFound``; anything else
(unreachable endpoint, refused credentials, timeouts) is ``StorageUnavailable`` (a 503).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Literal, TypeVar
from urllib.parse import urlparse

import obstore
from obstore.exceptions import BaseError as ObstoreError
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from dicom_file_service.errors import FileNotFound, StorageUnavailable
from dicom_file_service.storage.base import BlobNotFound
from dicom_file_service.storage.ranged_reader import RangedReader

T = TypeVar("T")
_MULTIPART_CHUNK = 8 * 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class S3Config:
    """Where the bucket is and how to reach it (from the settings' AWS variables)."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    access_key_id: str | None
    secret_access_key: str | None
    region: str
    timeout_seconds: float
    presign_endpoint_url: str | None = None  # as clients reach the store, if not as we do

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> S3Config:
        """``s3://bucket/prefix`` plus the connection settings."""
        parsed = urlparse(url)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"not an S3 URL (s3://bucket/prefix): {url!r}")
        return cls(bucket=parsed.netloc, prefix=parsed.path.strip("/"), **kwargs)


def _path_style(endpoint: str | None) -> bool:
    """Virtual-hosted addressing for AWS's own endpoints, path-style for everything else."""
    if endpoint is None:
        return False
    host = urlparse(endpoint).hostname or ""
    return not host.endswith("amazonaws.com")


_FAILURES = (FileNotFoundError, NotFoundError, ObstoreError, OSError, RuntimeError)


def _converted(key: str, exc: BaseException) -> Exception:
    """A missing object is ``BlobNotFound``; any other failure of the store an outage."""
    if isinstance(exc, FileNotFoundError | NotFoundError):
        return BlobNotFound(key)
    return StorageUnavailable(f"the object store is unavailable ({type(exc).__name__})")


class S3BlobStore:
    """A ``BlobStore`` whose objects live in one bucket, under one key prefix."""

    remote = True  # put_file reads its source in place and waits on the object store

    def __init__(self, config: S3Config) -> None:
        self.config = config
        self._store = self._make_store(config, config.endpoint_url)
        self._signer = self._store
        if config.presign_endpoint_url and config.presign_endpoint_url != config.endpoint_url:
            # A presigned URL names its host and is signed for it: sign for the public one.
            self._signer = self._make_store(config, config.presign_endpoint_url)

    @staticmethod
    def _make_store(config: S3Config, endpoint: str | None) -> S3Store:
        timeout = timedelta(seconds=config.timeout_seconds)
        options: dict[str, Any] = {
            "region": config.region,
            "virtual_hosted_style_request": not _path_style(endpoint),
        }
        if endpoint:
            options["endpoint"] = endpoint
        if config.access_key_id:
            options["access_key_id"] = config.access_key_id
        if config.secret_access_key:
            options["secret_access_key"] = config.secret_access_key
        return S3Store(
            config.bucket,
            prefix=config.prefix or None,
            client_options={
                "allow_http": True,
                "timeout": timeout,
                "connect_timeout": timedelta(seconds=min(5.0, config.timeout_seconds)),
            },
            retry_config={
                "max_retries": 2,
                "backoff": {
                    "init_backoff": timedelta(milliseconds=50),
                    "max_backoff": timedelta(seconds=1),
                    "base": 2,
                },
                "retry_timeout": timeout,
            },
            **options,
        )

    def _call(self, key: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except _FAILURES as exc:
            raise _converted(key, exc) from exc

    def put_file(self, key: str, path: Path) -> None:
        self._call(
            key,
            lambda: obstore.put(
                self._store, key, path, chunk_size=_MULTIPART_CHUNK, max_concurrency=4
            ),
        )

    def put_bytes(self, key: str, data: bytes, *, durable: bool = True) -> None:
        self._call(key, lambda: obstore.put(self._store, key, data))

    def get_bytes(self, key: str) -> bytes:
        return self._call(key, lambda: bytes(obstore.get(self._store, key).bytes()))

    async def get_bytes_async(self, key: str) -> bytes:
        try:
            result = await obstore.get_async(self._store, key)
            return bytes(await result.bytes_async())
        except _FAILURES as exc:
            raise _converted(key, exc) from exc

    async def read_range_async(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            return bytes(await obstore.get_range_async(self._store, key, start=start, end=end))
        except _FAILURES as exc:
            converted = _converted(key, exc)
            # Past the end: empty, as read_range.
            if isinstance(converted, StorageUnavailable) and start >= await self._size_async(key):
                return b""
            raise converted from exc

    async def _size_async(self, key: str) -> int:
        try:
            return int((await obstore.head_async(self._store, key))["size"])
        except _FAILURES as exc:
            raise _converted(key, exc) from exc

    def read_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        try:
            return self._call(
                key, lambda: bytes(obstore.get_range(self._store, key, start=start, end=end))
            )
        except StorageUnavailable:
            # A range starting at or past the end is an error to S3; it is empty to a reader.
            if start >= self.size(key):
                return b""
            raise

    def iter_range(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = 256 * 1024
    ) -> Iterator[bytes]:
        size = self.size(key)  # raises BlobNotFound now, not after a response has started
        stop = size if end is None else min(end, size)
        chunk = max(chunk_size, 1024 * 1024)
        # The first chunk is read now too: a file of up to a chunk is whole before anything
        # is sent, so a delete racing the read is a 404, never a torn answer.
        first_end = min(start + chunk, stop)
        first = self.read_range(key, start, first_end) if start < stop else b""
        return self._chunks(key, first, first_end, stop, chunk)

    def _chunks(
        self, key: str, first: bytes, pos: int, stop: int, chunk_size: int
    ) -> Iterator[bytes]:
        if first:
            yield first
        while pos < stop:
            n = min(chunk_size, stop - pos)
            try:
                data = self.read_range(key, pos, pos + n)
            except BlobNotFound:  # deleted while it was being sent: the answer ends short
                log.warning("an object was deleted while it was being sent", extra={"key": key})
                return
            yield data
            pos += n

    def open_reader(self, key: str, size: int | None = None, head: bytes = b"") -> BinaryIO:
        if size is None:
            size = self.size(key)
        fetch = lambda start, end: self._read_existing(key, start, end)  # noqa: E731
        return RangedReader(fetch, size, head=head)  # type: ignore[return-value]

    def _read_existing(self, key: str, start: int, end: int) -> bytes:
        """A read of an object the index says exists: its absence is the file's (a 404)."""
        try:
            return self.read_range(key, start, end)
        except BlobNotFound as exc:
            raise FileNotFound("the stored file is missing from the object store") from exc

    def size(self, key: str) -> int:
        return int(self._call(key, lambda: obstore.head(self._store, key))["size"])

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except BlobNotFound:
            return False
        return True

    def at_hand(self, key: str) -> bool:
        return False  # every object is behind a network

    def delete(self, key: str) -> None:
        with contextlib.suppress(BlobNotFound):  # already gone: deleting is idempotent
            self._call(key, lambda: obstore.delete(self._store, key))

    def delete_prefix(self, prefix: str) -> None:
        keys = [key for key, _ in self.list_keys(prefix.rstrip("/") + "/")]
        for start in range(0, len(keys), 1000):
            self._delete_batch(prefix, keys[start : start + 1000])

    def _delete_batch(self, prefix: str, batch: list[str]) -> None:
        self._call(prefix, lambda: obstore.delete(self._store, batch))

    def list_keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        listing = self._call(prefix, lambda: obstore.list(self._store, prefix, chunk_size=1000))
        while True:
            try:
                batch = self._call(prefix, lambda: next(listing, None))
            except BlobNotFound:
                return
            if batch is None:
                return
            for meta in batch:
                yield str(meta["path"]), meta["last_modified"].timestamp()

    def presign(self, method: Literal["GET", "PUT"], key: str, expires_in: timedelta) -> str | None:
        return self._call(key, lambda: obstore.sign(self._signer, method, key, expires_in))

    def check(self) -> None:
        """A listing of one key: proves the endpoint answers and the credentials are good."""
        self._call("", lambda: next(obstore.list(self._store, "instances/", chunk_size=1), None))

    def close(self) -> None:
        """Nothing runs in the background."""
