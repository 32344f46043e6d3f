"""The reads on the hottest paths (header and blob key by file id), on raw DBAPI connections.

SQLAlchemy's Connection and Result machinery costs about 120 µs per point read on this
machine; the same statement on the DBAPI cursor costs about 5 µs. Tag lookups are nothing but
this read plus a dictionary walk, so this module runs the statement SQLAlchemy compiled for
the dialect on a raw connection taken from a small free list.

Connections belong to the free list, never to a thread: worker threads come and go (anyio
retires idle ones), and a connection held for a dead thread would never be returned. A read
takes one from the list (or from the engine's pool when the list is empty) and puts it back;
the list keeps at most ``keep`` idle, the rest go back to the pool. Errors are converted here
(pool exhaustion and a lost database are ``IndexUnavailable``), and a broken connection is
discarded and the read retried once on a fresh one.

Where the database is embedded (SQLite), a point read is cheaper than a hop to a worker
thread, so ``read_async`` runs it inline; PostgreSQL is read on async connections from the
event loop itself (``index.async_reads``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Hashable
from typing import Any, NamedTuple

import anyio.to_thread
from sqlalchemy import Engine, any_, bindparam, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from dicom_file_service.errors import IndexUnavailable
from dicom_file_service.index.async_reads import AsyncPointReads, CoalescedReads
from dicom_file_service.index.header_cache import ChangeWatchedCache, KeptValues
from dicom_file_service.index.leased_cache import LeasedCache
from dicom_file_service.index.tables import instances


class StoredHeader(NamedTuple):
    json: bytes  # the DICOM JSON object, as served by /metadata
    spans: bytes  # byte spans of its top-level elements (dicom.header_index)
    bulk_lengths: bytes  # JSON {bulk path: length}


def _header_bytes(header: StoredHeader) -> int:
    return len(header.json) + len(header.spans) + len(header.bulk_lengths) + 200


_LOCATION = "location"  # the header cache's key of a location: (_LOCATION, file id)


class StoredLocation(NamedTuple):
    blob_key: str
    size: int
    frame_table: bytes | None  # dicom.parse.frame_table, for encapsulated multi-frame data


def _location_bytes(found: StoredLocation) -> int:
    return len(found.blob_key) + len(found.frame_table or b"") + 150


def _location(row: Any) -> StoredLocation | None:
    """A (blob_key, size, frame_table) row as a location; None for no row."""
    if row is None:
        return None
    table = bytes(row[2]) if row[2] is not None else None
    return StoredLocation(str(row[0]), int(row[1]), table)


class HeaderReader:
    """``read(file_id)`` → the stored header (JSON, span index, bulk lengths) or None;
    ``blob_key(file_id)`` → where its bytes are, or None (the file does not exist)."""

    def __init__(
        self,
        engine: Engine,
        *,
        keep: int = 4,
        pool_size: int = 10,
        pool_timeout: float = 10.0,
        cache_bytes: int = 0,
        lease_seconds: float = 5.0,
    ) -> None:
        self._engine = engine
        by_id = instances.c.file_id == bindparam("file_id")
        header = select(instances.c.header, instances.c.header_index, instances.c.bulk_lengths)
        compiled = header.where(by_id).compile(dialect=engine.dialect)
        self._sql = str(compiled)
        blob = select(instances.c.blob_key, instances.c.size, instances.c.frame_table)
        blob = blob.where(by_id)
        self._blob_sql = str(blob.compile(dialect=engine.dialect))
        self._positional = bool(compiled.positional)
        self._postgres = engine.dialect.name == "postgresql"
        self._inline = engine.dialect.name == "sqlite"
        # Embedded: headers kept while nothing is committed (index.header_cache); PostgreSQL:
        # while no delete is heard of and the lease holds (index.leased_cache).
        self._cache: KeptValues[Any] | None = None
        if cache_bytes > 0 and self._inline:
            self._cache = ChangeWatchedCache(engine, cache_bytes, _header_bytes)
        self._idle: list[Any] = []
        # Kept connections are out of the engine's pool: leave most of it to transactions.
        self._keep = max(1, min(keep, pool_size // 2))
        self._lock = threading.Lock()
        self._async: AsyncPointReads | None = None
        if self._postgres:
            conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._async = AsyncPointReads(conninfo, max_size=pool_size, timeout=pool_timeout)
            if cache_bytes > 0:
                self._cache = LeasedCache(
                    conninfo, cache_bytes, _header_bytes, lease_seconds=lease_seconds
                )
            by_ids = instances.c.file_id == any_(bindparam("ids"))
            headers = select(
                instances.c.file_id,
                instances.c.header,
                instances.c.header_index,
                instances.c.bulk_lengths,
            ).where(by_ids)
            existing = select(instances.c.file_id, instances.c.size).where(by_ids)
            located = select(
                instances.c.file_id,
                instances.c.blob_key,
                instances.c.size,
                instances.c.frame_table,
            ).where(by_ids)
            self._headers_many = CoalescedReads(
                self._async, str(headers.compile(dialect=engine.dialect))
            )
            self._exists_many = CoalescedReads(
                self._async, str(existing.compile(dialect=engine.dialect))
            )
            self._locations_many = CoalescedReads(
                self._async, str(located.compile(dialect=engine.dialect))
            )

    def _take(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        try:
            conn = self._engine.raw_connection()
        except PoolTimeout as exc:
            raise IndexUnavailable(
                "the index database has no free connection (all are busy); retry shortly"
            ) from exc
        except (DBAPIError, self._engine.dialect.loaded_dbapi.Error) as exc:
            raise IndexUnavailable(
                f"the index database is unavailable ({type(exc).__name__})"
            ) from exc
        if self._postgres:
            # No transaction left open between reads: each read sees the latest commit.
            conn.driver_connection.autocommit = True  # type: ignore[union-attr]
        return conn

    def _give_back(self, conn: Any) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        self._return_to_pool(conn)

    def _return_to_pool(self, conn: Any) -> None:
        """Back to the engine's pool as the pool lent it: a transaction taking it next must
        not find autocommit on (its statements would commit one by one)."""
        if self._postgres:
            try:
                conn.driver_connection.autocommit = False
            except Exception:  # broken: it must not go back at all
                with contextlib.suppress(Exception):
                    conn.invalidate()
                return
        conn.close()

    def read(self, file_id: str) -> StoredHeader | None:
        seen: int | None = None
        if self._cache is not None:
            seen, kept = self._cache.get(file_id)
            if kept is not None:
                return kept  # type: ignore[no-any-return]  # a file id's key: a header
        row = self._fetch(self._sql, file_id)
        if row is None:
            return None
        header = StoredHeader(bytes(row[0]), bytes(row[1]), bytes(row[2]))
        if self._cache is not None:
            self._cache.put(file_id, header, seen)
        return header

    def kept(self, key: Hashable) -> tuple[int | None, Any]:
        """(the version seen, what ``keep`` kept under ``key`` or None): headers, locations
        and values derived from headers alone, valid as long as the headers they came from
        (none without a cache)."""
        if self._cache is None:
            return None, None
        return self._cache.get(key)

    def keep(self, key: Hashable, value: Any, seen: int | None, size: int) -> None:
        """Keep ``value`` (``size`` bytes), derived from headers read after ``kept(key)``
        answered ``seen``, until the index next changes."""
        if self._cache is not None:
            self._cache.put(key, value, seen, size)

    @property
    def keeps(self) -> bool:
        """Whether anything read is kept in memory (``kept`` may answer)."""
        return self._cache is not None

    @property
    def reads_at_once(self) -> bool:
        """Whether ``read`` would answer now, without waiting for a pool, a thread or the
        network (the database is embedded and a kept connection is free): then a caller on
        the event loop may call it there."""
        return self._inline and bool(self._idle)

    async def read_async(self, file_id: str) -> StoredHeader | None:
        """``read`` for the event loop: inline where it cannot block, else in a thread."""
        if self.reads_at_once:
            return self.read(file_id)
        if self._async is not None:
            seen, kept = self.kept(file_id)
            if kept is not None:
                return kept  # type: ignore[no-any-return]  # a file id's key: a header
            row = await self._headers_many.get(file_id)
            if row is None:
                return None
            header = StoredHeader(bytes(row[0]), bytes(row[1]), bytes(row[2]))
            self.keep(file_id, header, seen, _header_bytes(header))
            return header
        return await anyio.to_thread.run_sync(self.read, file_id)

    async def exists_async(self, file_id: str) -> bool:
        """Whether the file is stored (for the event loop, like ``read_async``)."""
        if self._inline and self._idle:
            return self.blob_location(file_id) is not None
        if self._async is not None:
            if self.kept((_LOCATION, file_id))[1] is not None:
                return True
            return await self._exists_many.get(file_id) is not None
        return await anyio.to_thread.run_sync(self._fetch, self._blob_sql, file_id) is not None

    async def location_async(self, file_id: str) -> StoredLocation | None:
        """``blob_location`` for the event loop (like ``read_async``)."""
        if self._inline and self._idle:
            return self.blob_location(file_id)
        if self._async is not None:
            seen, kept = self.kept((_LOCATION, file_id))
            if kept is not None:
                return kept  # type: ignore[no-any-return]  # this key's value: a location
            found = _location(await self._locations_many.get(file_id))
            if found is not None:
                self.keep((_LOCATION, file_id), found, seen, _location_bytes(found))
            return found
        return await anyio.to_thread.run_sync(self.blob_location, file_id)

    def blob_key(self, file_id: str) -> str | None:
        found = self.blob_location(file_id)
        return found.blob_key if found is not None else None

    def blob_location(self, file_id: str) -> StoredLocation | None:
        """Where the file's bytes are and where its frames lie in them (kept with the
        headers on the embedded index: a rendering asks it before, after, and once cached)."""
        seen: int | None = None
        if self._cache is not None:
            seen, kept = self._cache.get((_LOCATION, file_id))
            if kept is not None:
                return kept  # type: ignore[no-any-return]  # this key's value: a location
        found = _location(self._fetch(self._blob_sql, file_id))
        if found is not None and self._cache is not None:
            self._cache.put((_LOCATION, file_id), found, seen, _location_bytes(found))
        return found

    def _fetch(self, sql: str, file_id: str) -> Any:
        params: Any = (file_id,) if self._positional else {"file_id": file_id}
        error: Exception | None = None
        for _attempt in (1, 2):
            conn = self._take()
            try:
                cursor = conn.cursor()
                try:
                    cursor.execute(sql, params)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except self._engine.dialect.loaded_dbapi.Error as exc:
                error = exc
                with contextlib.suppress(Exception):  # already broken: nothing to release
                    conn.invalidate()
                self._discard_idle()  # a restarted database broke them all alike
                continue
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.invalidate()
                raise
            self._give_back(conn)
            return row
        raise IndexUnavailable(
            f"the index database is unavailable ({type(error).__name__})"
        ) from error

    def _discard_idle(self) -> None:
        """Drop the kept connections (after a failure: a restarted database broke them all)."""
        with self._lock:
            conns, self._idle = self._idle, []
        for conn in conns:
            with contextlib.suppress(Exception):  # broken: nothing to do
                conn.invalidate()

    def _release_idle(self) -> None:
        with self._lock:
            conns, self._idle = self._idle, []
        for conn in conns:
            with contextlib.suppress(Exception):  # at shutdown: nothing to do
                self._return_to_pool(conn)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
        self._release_idle()

    async def aclose(self) -> None:
        """Close what the event loop holds (the async connections)."""
        if self._async is not None:
            await self._async.close()
