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
kept past the delete.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Generic, TypeVar

from sqlalchemy import Engine

V = TypeVar("V")


class ChangeWatchedCache(Generic[V]):
    """Values by file id, dropped whenever the database changes; at most ``max_bytes``."""

    def __init__(self, engine: Engine, max_bytes: int, size_of: Any) -> None:
        self._engine = engine
        self._max_bytes = max_bytes
        self._size_of = size_of
        self._lock = threading.Lock()
        self._conn: Any = None  # a connection of its own, never used to write
        self._version: int | None = None
        self._entries: dict[str, V] = {}
        self._bytes = 0

    def get(self, file_id: str) -> tuple[int | None, V | None]:
        """(the version seen, the kept value or None). Version None: do not keep."""
        with self._lock:
            try:
                version = self._data_version()
            except Exception:  # the database is unwell: read it directly, keep nothing
                self._drop_connection()
                return None, None
            if version != self._version:
                self._entries.clear()
                self._bytes = 0
                self._version = version
                return version, None
            return version, self._entries.get(file_id)

    def put(self, file_id: str, value: V, seen: int | None) -> None:
        """Keep ``value`` if the database has not been seen changing since ``seen``."""
        size = self._size_of(value)
        with self._lock:
            if seen is None or seen != self._version or size > self._max_bytes:
                return
            if self._bytes + size > self._max_bytes:
                self._entries.clear()  # full: start over (a hot set refills in one pass)
                self._bytes = 0
            previous = self._entries.get(file_id)
            if previous is not None:
                self._bytes -= self._size_of(previous)
            self._entries[file_id] = value
            self._bytes += size

    def _data_version(self) -> int:
        if self._conn is None:
            self._conn = self._engine.raw_connection()
        cursor = self._conn.cursor()
        try:
            cursor.execute("PRAGMA data_version")
            return int(cursor.fetchone()[0])
        finally:
            cursor.close()

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # at shutdown: nothing to do
                conn.close()
