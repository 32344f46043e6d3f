"""The index database as the service sees it: transactions, point reads and readiness.

The index layer owns connections, transactions and threading, so the service never asks
which database it runs on: ``read()`` and ``transaction()`` hand out a SQLAlchemy
``Connection`` (the transaction commits when the block ends, rolls back on an exception),
``headers`` is the hot point-read path, and every driver failure, pool exhaustion included,
arrives as ``IndexUnavailable`` (a 503), never as a driver's exception.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from dicom_file_service.errors import CommitOutcomeUnknown, IndexUnavailable, InsufficientStorage
from dicom_file_service.index.delete_fence import Fence, deleted_in
from dicom_file_service.index.engine import (
    WRITE_OPTIONS,
    create_index_engine,
    upgrade,
    writer_turns,
)
from dicom_file_service.index.group_commit import GroupCommitter
from dicom_file_service.index.hot_reads import HeaderReader

T = TypeVar("T")


class IndexDatabase:
    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 10.0,
        header_cache_bytes: int = 0,
        lease_seconds: float = 5.0,
    ) -> None:
        self.engine: Engine = create_index_engine(
            url, pool_size=pool_size, pool_timeout=pool_timeout
        )
        self.headers = HeaderReader(
            self.engine,
            pool_size=pool_size,
            pool_timeout=pool_timeout,
            cache_bytes=header_cache_bytes,
            lease_seconds=lease_seconds,
        )
        self._lease_seconds = lease_seconds
        # PostgreSQL: deletes are fenced (``delete_fence``), and a write transaction holds
        # only the rows it wrote; SQLite's holds the one write lock of every process.
        self._postgres = self.engine.dialect.name == "postgresql"
        self._writer_turn = writer_turns(self.engine)
        # Looked up at each batch: the transaction as this object has it then.
        self._grouped = GroupCommitter(lambda: self.transaction())

    def upgrade(self) -> None:
        upgrade(self.engine)

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except IndexUnavailable:
            raise
        except (DBAPIError, self.engine.dialect.loaded_dbapi.Error) as exc:
            raise IndexUnavailable(
                f"the index database is unavailable ({type(exc).__name__})"
            ) from exc
        except PoolTimeout as exc:
            raise IndexUnavailable(
                "the index database has no free connection (all are busy); retry shortly "
                "or raise DICOM_FS_DB_POOL_SIZE"
            ) from exc

    @contextmanager
    def read(self, *, transaction: bool = True) -> Iterator[Connection]:
        """A connection for reads (no transaction is kept open after the block).

        ``transaction=False``: each statement reads on its own, with no transaction around
        them, for reads that write nothing and need no one snapshot across their statements
        (PostgreSQL's READ COMMITTED gives none anyway). On PostgreSQL that saves the BEGIN
        and the ROLLBACK, two round trips: 0.4 of a one-answer search's 1.8 ms. SQLite's
        BEGIN is no round trip; there it is the same as a read with one."""
        with self._connect() as conn:
            if not transaction and self._postgres:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.
        A failure of the COMMIT itself raises ``CommitOutcomeUnknown``.

        On SQLite it takes the write lock up front (BEGIN IMMEDIATE), so a read-then-write
        transaction never deadlocks on a lock upgrade. On PostgreSQL a transaction that deleted
        instances returns only once no instance serves them from memory (``delete_fence``).
        """
        with self._writer_turn(), self._connect() as conn:
            conn = conn.execution_options(**WRITE_OPTIONS)
            transaction = conn.begin()
            fence: Fence | None = None
            try:
                yield conn
                if deleted_in(conn) and self._postgres:
                    fence = Fence(conn, self._lease_seconds)
            except BaseException:
                with suppress(Exception):  # an invalidated connection cannot say
                    deleted_in(conn)
                with suppress(Exception):  # the connection may be gone: nothing was committed
                    transaction.rollback()
                raise
            try:
                transaction.commit()
            except InsufficientStorage:
                # The database answered: a full disk refuses the COMMIT, which is then rolled
                # back (SQLite and PostgreSQL alike). Nothing was committed, and that is known.
                raise
            except Exception as exc:
                # The COMMIT was sent; whether it took effect is unknown (the connection may
                # have died after the server committed). The caller must keep what the row
                # would refer to: sweep settles it later against the index. The connection's
                # state is unknown too: it is closed, never lent again.
                with suppress(Exception):
                    conn.invalidate()
                raise CommitOutcomeUnknown(
                    f"the index database failed during a commit ({type(exc).__name__}); the "
                    "outcome is unknown: retry the request (an identical upload is idempotent)"
                ) from exc
            if fence is not None:
                fence.wait(conn)

    def commit_grouped(
        self, work: Callable[[Connection], T], ready: Future[Any] | None = None
    ) -> T:
        """``work(conn)`` committed, in a transaction shared with concurrent callers (one
        durable COMMIT for all of them: ``index.group_commit``). Returns once committed;
        raises what ``work`` raised (nothing of it committed), or what ``transaction`` raises
        when the shared COMMIT fails. ``ready``: what must succeed before the COMMIT (work
        runs meanwhile); its failure is raised, nothing of ``work`` committed."""
        if ready is not None and not self._postgres:
            ready.result()  # SQLite: waited for before the write lock is taken
            ready = None
        return self._grouped.run(work, ready)

    def check(self) -> None:
        """Raise if the database cannot answer a query now (readiness)."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.headers.close()
        self.engine.dispose()
