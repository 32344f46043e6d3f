"""Point reads on PostgreSQL from the event loop itself, on psycopg's async connections.

A synchronous read from the event loop must hop to a worker thread and back (about 100 µs
and a GIL handoff each way); an async read does not, and several requests' reads overlap on
the database while the loop serves others. Measured on this machine with eight reads in
flight: 228 µs a read through a thread; 85-113 µs on psycopg_pool's async pool in text
format; 55 µs on a plain free list of connections in binary format (bytea columns are not
hex-decoded), which is what this module keeps.

Connections are made on first use, on the running loop (one per server process), at most
``max_size`` at a time; a read waits up to ``timeout`` for one. Every failure arrives as
``IndexUnavailable``: no free connection in time, or a lost database (a broken connection is
dropped and the read retried once on a fresh one).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg

from dicom_file_service.errors import IndexUnavailable


class AsyncPointReads:
    def __init__(self, conninfo: str, *, max_size: int, timeout: float) -> None:
        self._conninfo = conninfo
        self._timeout = timeout
        self._max_size = max_size
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[psycopg.AsyncConnection[Any]] = []

    async def _acquire(self) -> psycopg.AsyncConnection[Any]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_size)
        try:
            if self._slots.locked():  # wait_for costs a task: only when there is a wait
                await asyncio.wait_for(self._slots.acquire(), self._timeout)
            else:
                await self._slots.acquire()
        except TimeoutError as exc:
            raise IndexUnavailable(
                "the index database has no free connection (all are busy); retry shortly"
            ) from exc
        if self._idle:
            return self._idle.pop()
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, connect_timeout=5
            )
        except BaseException as exc:
            self._slots.release()
            if isinstance(exc, psycopg.Error):
                raise IndexUnavailable(
                    f"the index database is unavailable ({type(exc).__name__})"
                ) from exc
            raise

    def _release(self, conn: psycopg.AsyncConnection[Any] | None) -> None:
        if conn is not None and not conn.closed:
            self._idle.append(conn)
        assert self._slots is not None
        self._slots.release()

    async def fetch_one(self, sql: str, params: dict[str, Any]) -> Any:
        for attempt in (1, 2):
            conn: psycopg.AsyncConnection[Any] | None = await self._acquire()
            done = False
            try:
                assert conn is not None
                cursor = await conn.execute(sql, params, binary=True)
                row = await cursor.fetchone()
                done = True
                return row
            except psycopg.Error as exc:
                broken, conn = conn, None  # not given back: it may be broken
                if broken is not None:
                    with contextlib.suppress(Exception):
                        await broken.close()
                for idle in self._idle:  # a restarted database broke them all alike
                    with contextlib.suppress(Exception):
                        await idle.close()
                self._idle.clear()
                if attempt == 2:
                    raise IndexUnavailable(
                        f"the index database is unavailable ({type(exc).__name__})"
                    ) from exc
            finally:
                if not done and conn is not None and not conn.closed:
                    # Cancelled mid-query (the client went away): the connection's state is
                    # unknown, so it is not reused.
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close())
                self._release(conn if done else None)
        return None  # pragma: no cover - the loop returns or raises

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            with contextlib.suppress(Exception):  # at shutdown: nothing to do about it
                await conn.close()
