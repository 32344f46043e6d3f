"""Stored headers kept in memory on PostgreSQL, coherent with deletes on every instance.

A file is immutable under its id until it is deleted (an overwrite deletes the old id), so a
kept header or location can only become wrong by a delete, and a delete must be seen at once
by every instance: once a DELETE is answered, no instance may serve the file. Without a cache
that costs a PostgreSQL round trip per tag lookup and warm rendering. With one, it takes two
things, both kept here and in ``index.delete_fence``:

- **Notices.** A statement trigger on ``instances`` (migration 0010) sends a notification for
  every deleting (or updating, or truncating) transaction, on a channel of the schema. Each
  process that keeps values listens on a connection of its own (``DeletionWatch``): on a
  notice it drops everything it keeps, then acknowledges the notice on a second channel. The
  deleting transaction waits, after its COMMIT and before its answer, until every instance
  holding a lease has acknowledged it (``index.delete_fence``).
- **Leases.** An instance that cannot hear notices must not serve what it keeps, and a delete
  must not wait forever for an instance that died. Each watch holds a lease in
  ``serving_instances`` (``lease_until``, renewed on the listening connection itself, by the
  database's clock), and serves kept values only until ``lease_seconds`` (less a tenth) after
  it sent the renewal, by its own monotonic clock, which ends before the lease the database
  sees. A renewal counts only once the watch has heard its own probe notice on the deletes'
  channel after it: a LISTEN without effect (behind a proxy that pools transactions) never
  serves. A delete waits for an acknowledgement or the lease's end, whichever comes first: at
  most ``lease_seconds`` for an instance that vanished without a word.

A value is kept only if no notice was seen between the miss and the read that filled it (the
version ``get`` gave), so a read that raced a delete is never kept past the delete. Any
failure of the watch's connection stops the serving at once and drops everything; serving
resumes only after the watch listens again, has renewed its lease and has dropped what was
kept before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Hashable
from typing import Any

import psycopg
from psycopg import sql

from dicom_file_service.index.header_cache import KeptValues, V

log = logging.getLogger(__name__)

# The channels of the schema that holds ``instances`` (as the trigger of migration 0010 names
# the first, from TG_TABLE_SCHEMA), whatever else the search path holds; the names stay within
# PostgreSQL's 63 characters whatever the schema's name.
_SCHEMA = (
    "(SELECT nspname FROM pg_namespace WHERE oid = "
    "(SELECT relnamespace FROM pg_class WHERE oid = 'instances'::regclass))"
)
GONE_CHANNEL = f"'dfs_gone_' || left(md5({_SCHEMA}), 16)"
SEEN_CHANNEL = f"'dfs_seen_' || left(md5({_SCHEMA}), 16)"
_RENEW = (
    "INSERT INTO serving_instances (instance_id, lease_until) "
    "VALUES (%s, now() + make_interval(secs => %s)) "
    "ON CONFLICT (instance_id) DO UPDATE SET lease_until = EXCLUDED.lease_until"
)
WATCH_NAME = "dicom-file-service deletion watch"
_FORGET_DEAD = "DELETE FROM serving_instances WHERE lease_until < now() - interval '1 hour'"
_LEAVE = "DELETE FROM serving_instances WHERE instance_id = %s"
_PROBE = "probe "  # a watch's own notice, heard to know it listens; not a delete
_POLL_SECONDS = 0.25  # how soon ``close`` is heard


class DeletionWatch:
    """A thread that listens for deletes' notices on its own connection, holds this
    process's lease, calls ``on_change`` before acknowledging each notice (and whenever it
    stops listening), and says whether kept values may be served (``serving``)."""

    def __init__(self, conninfo: str, on_change: Any, *, lease_seconds: float) -> None:
        self.instance_id = uuid.uuid4().hex
        self._conninfo = conninfo
        self._on_change = on_change
        self._lease = lease_seconds
        self._valid_until = 0.0  # monotonic: serving until then
        self.backend_pid: int | None = None  # of the listening connection, while it lives
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deletion-watch", daemon=True)
        self._thread.start()

    def serving(self) -> bool:
        return time.monotonic() < self._valid_until

    def _run(self) -> None:
        pause = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self._conninfo,
                    autocommit=True,
                    connect_timeout=max(1, int(self._lease)),
                    # A half-open connection is noticed within about a lease, not the
                    # kernel's quarter of an hour (serving stops at the lease's end anyway).
                    keepalives=1,
                    keepalives_idle=max(1, int(self._lease / 2)),
                    keepalives_interval=1,
                    keepalives_count=3,
                    tcp_user_timeout=int(self._lease * 1000),
                    application_name=WATCH_NAME,  # as operators see it in pg_stat_activity
                ) as conn:
                    self._watch(conn)
                    pause = 0.1
            except Exception as exc:  # the database is away, or unheard: keep nothing, retry
                log.warning(
                    "the deletion watch stopped; headers are read, not kept, until it listens",
                    extra={"error": type(exc).__name__, "reason": str(exc)[:200]},
                )
            self._valid_until = 0.0
            self._on_change()
            self._stop.wait(pause)
            pause = min(pause * 2, 2.0)

    def _watch(self, conn: psycopg.Connection[Any]) -> None:
        self.backend_pid = conn.info.backend_pid
        row = conn.execute(f"SELECT {GONE_CHANNEL}, {SEEN_CHANNEL}").fetchone()
        assert row is not None
        gone, seen = row
        self._listen(conn, gone)
        conn.execute(_FORGET_DEAD)
        renew_every = self._lease / 4
        renewed = self._renew(conn, gone, seen)
        while not self._stop.is_set():
            wait = max(0.0, min(_POLL_SECONDS, renewed + renew_every - time.monotonic()))
            notices = [n.payload for n in conn.notifies(timeout=wait, stop_after=1)]
            if notices:
                self._acknowledge(conn, seen, notices)
            if time.monotonic() >= renewed + renew_every:
                renewed = self._renew(conn, gone, seen)
        with contextlib.suppress(Exception):  # leaving: deletes need not wait for this one
            self._valid_until = 0.0
            conn.execute(_LEAVE, (self.instance_id,))

    def _listen(self, conn: psycopg.Connection[Any], gone: str) -> None:
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(gone)))

    def _renew(self, conn: psycopg.Connection[Any], gone: str, seen: str) -> float:
        """Renew the lease and hear this watch's own probe on the deletes' channel; serve
        until a tenth before the lease's end. A watch that does not hear its probe (its
        LISTEN lost, as behind a proxy that pools transactions) raises: it must not serve.
        Notices that arrived before the probe are handled before serving goes on: a delete
        that committed while the lease lapsed may not have waited for this instance."""
        sent = time.monotonic()
        conn.execute(_RENEW, (self.instance_id, self._lease))
        probe = f"{_PROBE}{self.instance_id} {sent}"
        conn.execute("SELECT pg_notify(%s, %s)", (gone, probe))
        notices: list[str] = []
        deadline = sent + self._lease / 4
        while probe not in notices:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError("the deletion watch does not hear its own notices")
            notices += [n.payload for n in conn.notifies(timeout=left, stop_after=1)]
        self._acknowledge(conn, seen, notices)
        if self._valid_until <= sent:
            self._on_change()  # listening anew, or after a lapse: drop what was kept before
        self._valid_until = sent + self._lease * 0.9
        return sent

    def _acknowledge(self, conn: psycopg.Connection[Any], seen: str, notices: list[str]) -> None:
        txids = [n for n in dict.fromkeys(notices) if not n.startswith(_PROBE)]
        if not txids:
            return
        self._on_change()
        for txid in txids:  # one per deleting transaction, in order
            conn.execute("SELECT pg_notify(%s, %s)", (seen, f"{self.instance_id} {txid}"))

    def close(self) -> None:
        self._stop.set()
        self._valid_until = 0.0
        self._thread.join(timeout=5)


class LeasedCache(KeptValues[V]):
    """Values kept while this process holds its lease and has heard of no delete since
    (module docstring); at most ``max_bytes``."""

    def __init__(
        self, conninfo: str, max_bytes: int, size_of: Any, *, lease_seconds: float
    ) -> None:
        super().__init__(max_bytes, size_of)
        self._version = 0
        self._conninfo = conninfo
        self._lease_seconds = lease_seconds
        self._watch: DeletionWatch | None = None  # started at the first ask (after migrations)
        self._closed = False

    def get(self, key: Hashable) -> tuple[int | None, V | None]:
        watch = self._watch
        if watch is None:
            with self._lock:
                if self._watch is None and not self._closed:
                    self._watch = DeletionWatch(
                        self._conninfo, self._changed, lease_seconds=self._lease_seconds
                    )
            return None, None
        if not watch.serving():
            return None, None
        with self._lock:
            return self._version, self._entries.get(key)

    def _changed(self) -> None:
        """A delete was heard, or the watch stopped listening: nothing kept is served, and
        no read begun before now is kept."""
        with self._lock:
            self._drop_all()
            assert self._version is not None
            self._version += 1

    def close(self) -> None:
        with self._lock:
            watch, self._watch = self._watch, None
            self._closed = True
        if watch is not None:
            watch.close()
        super().close()
