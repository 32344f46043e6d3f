"""Engine creation and migrations.

SQLite (the embedded default) runs in WAL mode with ``synchronous=FULL``: an acknowledged
upload's index row survives a power cut, readers never block the writer. Migrations are
Alembic's, applied at start-up for SQLite; for PostgreSQL the upgrade takes an advisory lock so
that many instances starting together never race.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DataError, DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.pool import QueuePool

from dicom_file_service.errors import IndexUnavailable, InsufficientStorage, InvalidParameter

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"
_PG_MIGRATION_LOCK = 0x44434D46  # "DCMF"


def _normalise_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _convert_operational_errors(engine: Engine) -> None:
    """Driver failures (unreachable server, disk I/O, lock timeouts) become IndexUnavailable.

    Constraint violations stay as they are: the repository turns those into DuplicateKey.
    """

    @event.listens_for(engine, "handle_error")
    def _on_error(context: ExceptionContext) -> None:
        exc = context.sqlalchemy_exception
        if isinstance(exc, DataError):  # a value the database cannot hold, e.g. a NUL
            raise InvalidParameter(
                "a value of the request cannot be looked up: it holds a character or a number "
                "the index cannot store (such as a NUL)"
            ) from context.original_exception
        if isinstance(exc, OperationalError) or (
            isinstance(exc, DBAPIError) and exc.connection_invalidated
        ):
            raise database_failure(context.original_exception) from context.original_exception


def database_failure(original: BaseException) -> IndexUnavailable | InsufficientStorage:
    """What a failure of the database itself (not of one statement) is to the service."""
    text = str(original).lower()
    if "disk is full" in text or "no space left" in text:  # SQLite, PostgreSQL
        return InsufficientStorage(
            "the index database's disk is full: nothing was stored; free some space"
        )
    return IndexUnavailable(f"the index database is unavailable ({type(original).__name__})")


def create_index_engine(url: str, *, pool_size: int = 10, pool_timeout: float = 10.0) -> Engine:
    """An engine for the index with the per-backend settings this service relies on."""
    engine = _create_engine(_normalise_url(url), pool_size, pool_timeout)
    _convert_operational_errors(engine)
    return engine


def _create_engine(url: str, pool_size: int, pool_timeout: float) -> Engine:
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=2 * pool_size,
            pool_timeout=pool_timeout,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling is disabled so that BEGIN is ours (below).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # DICOM matching is case-sensitive (PN is matched on upper-cased keys instead),
            # as PostgreSQL's LIKE is; SQLite's is not unless told.
            cur.execute("PRAGMA case_sensitive_like=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # A writer asks for IMMEDIATE (``write_options``): it takes the write lock up
            # front, so a read-then-write transaction never deadlocks on a lock upgrade.
            mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
            conn.exec_driver_sql(f"BEGIN {mode}")

        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=pool_timeout,
        connect_args={"connect_timeout": 5},
    )
    _ping_when_in_doubt(engine)
    return engine


IDLE_PING_SECONDS = 10.0
"""A PostgreSQL connection idle in the pool for longer than this is pinged before it is lent."""


def _ping_when_in_doubt(engine: Engine) -> None:
    """Replace a connection broken while it sat in the pool, as ``pool_pre_ping`` does, but
    with its round trip (0.19 ms, 4 % of an upload from one client) only where in doubt.

    A connection is pinged before it is lent if it has been idle for ``IDLE_PING_SECONDS``,
    or if anything arrived on its socket while it was idle: nothing is sent to an idle
    connection but the server's farewell (a restart's or ``pg_terminate_backend``'s
    message, or the end of the stream when its process dies), so a connection whose socket
    has nothing to read and was used moments ago is alive. A failed ping replaces it (the
    pool's own retry, on ``DisconnectionError``), as ``pool_pre_ping`` would.
    """

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()  # new, or just used: alive

    @event.listens_for(engine, "checkout")
    def _lend(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        recent = since is not None and time.monotonic() - since < IDLE_PING_SECONDS
        if recent and not _has_news(dbapi_conn):
            return
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("a pooled connection failed its ping")


def _has_news(dbapi_conn: Any) -> bool:
    """Whether the idle connection's socket has something to read (or is gone)."""
    try:
        if dbapi_conn.closed or dbapi_conn.broken:
            return True
        readable, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
    except Exception:  # no socket to ask: in doubt
        return True
    return bool(readable)


WRITER_WAIT_SECONDS = 30.0
"""How long a writer waits for its turn before the index counts as unavailable (SQLite's own
busy timeout, which it replaces)."""


def writer_turns(engine: Engine) -> Callable[[], AbstractContextManager[None]]:
    """What a write transaction holds while it runs: on SQLite, a turn among every writer of
    every process of the service; elsewhere nothing (the server orders writers itself).

    SQLite has one write lock, and a writer that finds it taken polls for it, sleeping 1, 2,
    5, 10 ms and more between tries (its busy handler): two worker processes storing uploads
    at once lose whole milliseconds to it while the lock is free. Writers first take turns on
    a lock file beside the database (``flock``, released by the kernel when a process dies)
    and a thread lock within the process (a ``flock`` is per open file, not per thread), so
    BEGIN IMMEDIATE then finds the lock free. A writer waiting for the file asks again within
    a tenth of a millisecond (the other process's turn is a few: a longer pause left both
    processes idle between turns), and gives up after ``WRITER_WAIT_SECONDS`` (a 503), as
    SQLite would.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        return contextlib.nullcontext
    path = Path(database).resolve().with_name(Path(database).name + ".writer")
    threads = threading.Lock()
    held: list[int] = []  # the lock file, opened once per process (after a fork: anew)

    def busy() -> IndexUnavailable:
        return IndexUnavailable(
            f"the index database's write lock was not free within {WRITER_WAIT_SECONDS:g} s"
        )

    @contextlib.contextmanager
    def turn() -> Iterator[None]:
        deadline = time.monotonic() + WRITER_WAIT_SECONDS
        if not threads.acquire(timeout=WRITER_WAIT_SECONDS):
            raise busy()
        try:
            if not held or held[0] != os.getpid():
                held[:] = [os.getpid(), os.open(path, os.O_RDWR | os.O_CREAT, 0o644)]
            fd = held[1]
            pause = 0.00002
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise busy() from None
                    time.sleep(pause)
                    pause = min(pause * 2, 0.0001)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            threads.release()

    return turn


WRITE_OPTIONS: dict[str, Any] = {"sqlite_begin": "IMMEDIATE"}
"""Execution options for a connection that will write (ignored by PostgreSQL)."""


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config  # migrations run once, in serve's parent: not in workers

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every pending migration (idempotent; serialised across processes)."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        try:
            from alembic import command

            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        finally:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
