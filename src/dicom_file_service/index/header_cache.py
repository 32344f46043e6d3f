"""Stored headers kept in memory for as long as an embedded index has not changed.

A tag lookup is one point read of the header row, and on SQLite that read (its blob spread
over overflow pages) is half of the lookup's own time. Files are immutable under their id, but
a delete must be seen at once, by every worker process. SQLite says whether anything was
committed by any other connection since it last asked: ``PRAGMA data_version`` on a connection
kept for the purpose changes after every commit of every process. This cache holds headers
read since the last change and drops them all at the next one: a hit costs that one pragma
instead of the row, and nothing it answers is older than the latest commit seen when the
request asked.

A header is kept only if no change was seen between the ask that missed and the read that
filled it (``put`` is given the version ``get`` saw): a read that raced a delete is never
kept past the delete. What is derived from headers alone (a tag lookup's answers) may be kept
beside them under keys of its own, with the same guarantee.

The pragma itself is a read transaction (four ``fcntl`` lock calls and SQLite's work, most of
a cache hit's cost), so it is asked only when the database may have changed: in WAL mode,
which the engine sets on every connection, each commit rewrites the WAL-index header at the
start of the ``-shm`` file (both of its copies, with a change counter; SQLite's "WAL-mode file
format"), and one ``pread`` of those 96 bytes says whether anything was committed since the
last pragma. The bytes are read before the pragma they vouch for, so a commit racing it is
seen at the next ask. The file is opened only while this cache's own connection has it open:
SQLite deletes or truncates ``-shm`` only when no connection has it, and the database cannot
leave WAL mode while one is open, so the bytes read are always the live header.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Hashable
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine

V = TypeVar("V")


class KeptValues(Generic[V]):
    """Values by key (a file id, or a key derived from one) under a version: kept only when
    read under the version current when kept, all dropped when it changes; at most
    ``max_bytes``. What moves the version is the subclass's (``get``)."""

    def __init__(self, max_bytes: int, size_of: Any) -> None:
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._lock = threading.Lock()
        self._version: int | None = None
        self._entries: dict[Hashable, V] = {}
        self._bytes = 0

    def get(self, key: Hashable) -> tuple[int | None, V | None]:
        """(the version seen, the kept value or None). Version None: do not keep."""
        raise NotImplementedError

    def put(self, key: Hashable, value: V, seen: int | None, size: int | None = None) -> None:
        """Keep ``value`` if the database has not been seen changing since ``seen``; ``size``:
        its bytes, if not ``size_of`` it."""
        size = self._size_of(value) if size is None else size
        with self._lock:
            if seen is None or seen != self._version or size > self._max_bytes:
                return
            if self._bytes + size > self._max_bytes:
                self._drop_all()  # full: start over (a hot set refills in one pass)
            if key in self._entries:  # a racing fill of the same key: both are the same value
                return
            self._entries[key] = value
            self._bytes += size

    def _drop_all(self) -> None:
        """Forget every value (the lock held)."""
        self._entries.clear()
        self._bytes = 0

    def close(self) -> None:
        with self._lock:
            self._drop_all()


class ChangeWatchedCache(KeptValues[V]):
    """Values dropped whenever the embedded database changes (module docstring)."""

    def __init__(self, engine: Engine, max_bytes: int, size_of: Any) -> None:
        super().__init__(max_bytes, size_of)
        self._engine = engine
        self._conn: Any = None  # a connection of its own, never used to write
        self._cursor: Any = None  # its driver's cursor
        database = engine.url.database
        self._shm_path = f"{database}-shm" if database and database != ":memory:" else None
        self._shm: int | None = None  # the -shm file, open while self._conn is
        self._stamp: bytes | None = None  # its WAL-index header before the last pragma

    def get(self, key: Hashable) -> tuple[int | None, V | None]:
        with self._lock:
            stamp = self._wal_index_header()
            if stamp is not None and stamp == self._stamp:  # nothing committed since
                return self._version, self._entries.get(key)
            try:
                version = self._data_version()
            except Exception:  # the database is unwell: read it directly, keep nothing
                self._drop_connection()
                return None, None
            self._stamp = stamp
            if version != self._version:
                self._drop_all()
                self._version = version
                return version, None
            return version, self._entries.get(key)

    def _data_version(self) -> int:
        if self._cursor is None:
            self._conn = self._engine.raw_connection()
            # The driver's own cursor, kept: the pool's wrapper and a new cursor per ask
            # were a fifth of the ask.
            self._cursor = self._conn.driver_connection.cursor()
        return int(self._cursor.execute("PRAGMA data_version").fetchone()[0])

    def _wal_index_header(self) -> bytes | None:
        """Both copies of the WAL-index header, or None: no ``-shm`` file (not WAL, or this
        cache has no connection yet), or a header being rewritten (the copies differ)."""
        if self._shm is None:
            if self._conn is None or self._shm_path is None:
                return None
            try:
                self._shm = os.open(self._shm_path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                self._shm_path = None  # no WAL here: the pragma alone, always
                return None
        try:
            header = os.pread(self._shm, 96, 0)
        except OSError:
            return None
        if len(header) < 96 or header[:48] != header[48:]:
            return None
        return header

    def _drop_connection(self) -> None:
        conn = self._let_go()
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()

    def close(self) -> None:
        with self._lock:
            self._drop_all()
            conn = self._let_go()
        if conn is not None:
            with contextlib.suppress(Exception):  # at shutdown: nothing to do
                conn.close()

    def _let_go(self) -> Any:
        """Forget the connection, its cursor and its ``-shm`` file; the connection (or None),
        for the caller to close or invalidate."""
        shm, self._shm = self._shm, None
        self._cursor = None
        conn, self._conn = self._conn, None
        self._stamp = None
        if shm is not None:
            with contextlib.suppress(OSError):
                os.close(shm)
        return conn
