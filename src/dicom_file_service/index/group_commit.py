"""Group commit: concurrent writers share one transaction and one durable COMMIT.

Every acknowledged upload needs its index row committed durably, and a durable COMMIT costs a
flush of the database's log (an fsync of SQLite's WAL, a WAL flush on PostgreSQL) and, on
SQLite, a turn with the one write lock that every process of the service takes in turn. When
uploads arrive together, each caller's work runs in a SAVEPOINT of one shared transaction and
a single COMMIT makes all of them durable at once. Nobody is answered early: ``run`` returns
only after the COMMIT that holds the caller's work has succeeded.

A caller may name what must have succeeded before its work is committed (``ready``: an
upload's bytes on their way to an object store). Its work then runs while that is still under
way, the COMMIT waits for it, and its failure is that caller's alone: its work is rolled back
(as work that raised) and the batch goes on. The COMMIT waits at most ``RIDE_SECONDS``: a
caller whose ``ready`` is not done by then is left out of the batch (its work rolled back as
above), waits for it alone and joins a later batch, so a slow put never holds a batch, the
rows it locked or the callers queued behind it for longer. ``run`` returns or raises only once
``ready`` is done, so a caller that undoes it after a failure never races it.

Leader and followers: a caller that finds no batch in progress leads; callers arriving while a
batch commits queue up and form the next batch, whose first caller is woken to lead it. A
batch first runs every caller's work in the transaction as it is (a SAVEPOINT and its RELEASE
are two statements per caller, a tenth of an upload's index time); if any work raises, that
transaction is rolled back and the batch runs again with a savepoint per caller, where work
that raises is rolled back to its savepoint (its exception goes to its caller alone) and the
batch goes on. Work may therefore run twice, the first run rolled back: it must be a function
of the connection alone. A failing COMMIT fails every caller of the batch alike, with the
transaction's own error: ``CommitOutcomeUnknown`` (kept blobs, sweep settles it) or
``InsufficientStorage`` (known not committed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")

MAX_BATCH = 64
"""Most callers one COMMIT serves: bounds how long the batch holds the write lock."""

RIDE_SECONDS = 0.05
"""How long a batch's COMMIT waits for what its callers wait for (their puts: about 2 ms for
a small file to an S3 server on the same network) before it goes without the late ones."""


class _Pending(Generic[T]):
    __slots__ = ("done", "error", "evicted", "lead", "ready", "value", "work")

    def __init__(self, work: Callable[[Connection], T], ready: Future[Any] | None) -> None:
        self.work = work
        self.ready = ready
        self.done = threading.Event()
        self.lead = False  # woken to lead the next batch, not with a result
        self.value: T | None = None
        self.error: BaseException | None = None
        self.evicted = False  # left out of its batch: what it waits for was not done in time


class GroupCommitter:
    """Runs ``work(conn)`` in a transaction shared with concurrent callers."""

    def __init__(self, transaction: Callable[[], AbstractContextManager[Connection]]) -> None:
        self._transaction = transaction
        self._lock = threading.Lock()
        self._queue: list[_Pending[Any]] = []
        self._leading = False

    def run(self, work: Callable[[Connection], T], ready: Future[Any] | None = None) -> T:
        """``work``'s result once it is committed; its exception if it raised (nothing of it
        committed), or ``ready``'s if that failed; the COMMIT's error if the shared COMMIT
        failed. Returns or raises once ``ready`` is done."""
        pending: _Pending[T] = _Pending(work, ready)
        try:
            return self._run(pending)
        finally:
            if ready is not None:
                wait([ready])

    def _run(self, pending: _Pending[T]) -> T:
        while True:
            self._join(pending)
            if not pending.evicted:
                break
            # Left out of its batch: wait for what it waits for here, then join a later one.
            ready, pending.ready = pending.ready, None
            pending.evicted = False
            pending.done.clear()
            if ready is not None:
                ready.result()  # its failure is this caller's
        if pending.error is not None:
            raise pending.error
        return pending.value  # type: ignore[return-value]  # set when error is None

    def _join(self, pending: _Pending[Any]) -> None:
        """Queue ``pending`` and return once a batch has taken it (leading it, if so told)."""
        with self._lock:
            self._queue.append(pending)
            lead = not self._leading
            self._leading = True
        while True:
            if lead:
                self._lead()
            pending.done.wait()
            if not pending.lead:
                return
            pending.lead, lead = False, True
            pending.done.clear()

    def _lead(self) -> None:
        """Commit one batch, then hand the lead to the next batch's first caller."""
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            self._commit(batch)
        finally:
            with self._lock:
                if self._queue:
                    successor = self._queue[0]
                    successor.lead = True
                    successor.done.set()
                else:
                    self._leading = False
            for pending in batch:
                pending.done.set()

    def _commit(self, batch: list[_Pending[Any]]) -> None:
        try:
            if len(batch) > 1 and self._commit_together(batch):
                return
            with self._transaction() as conn:
                deadline = time.monotonic() + RIDE_SECONDS
                if len(batch) == 1:  # alone: its failure is the transaction's, no savepoint
                    if not _worked(batch[0], conn, deadline):
                        raise _LeftOut
                    return
                for pending in batch:
                    if pending.error is not None or pending.evicted:  # out of this batch
                        continue
                    savepoint = conn.begin_nested()
                    try:
                        if not _worked(pending, conn, deadline):
                            savepoint.rollback()
                            continue
                    except Exception as exc:  # this caller's alone: the others go on
                        pending.error = exc
                        savepoint.rollback()
                        continue
                    savepoint.commit()
        except _LeftOut:
            return  # nothing else was in the transaction
        except BaseException as exc:
            # The transaction failed as a whole (its COMMIT, or the connection): nobody's
            # work is known committed, unless the failure is the outcome-unknown kind, which
            # the error itself says.
            for pending in batch:
                if pending.error is None and not pending.evicted:
                    pending.error = exc
            if not isinstance(exc, Exception):
                raise

    def _commit_together(self, batch: list[_Pending[Any]]) -> bool:
        """Every caller's work in one transaction, without savepoints: True once committed;
        False, with nothing committed, when a caller's work raised."""
        try:
            with self._transaction() as conn:
                for pending in batch:
                    try:
                        pending.value = pending.work(conn)
                    except Exception as exc:
                        raise _RunApart from exc
                apart = False
                deadline = time.monotonic() + RIDE_SECONDS
                for pending in batch:  # every work is in: now what they wait for
                    try:
                        if not _settled(pending, deadline):
                            pending.evicted = apart = True  # run apart, without it
                    except Exception as exc:  # run apart, without this caller's work
                        pending.error, apart = exc, True
                if apart:
                    raise _RunApart
        except _RunApart:
            for pending in batch:
                pending.value = None
            return False
        return True


def _worked(pending: _Pending[Any], conn: Connection, deadline: float) -> bool:
    """Run ``pending``'s work and wait until ``deadline`` for what it waits for: whether it
    is in the batch (if not, it is left out: its work is to be rolled back)."""
    pending.value = pending.work(conn)
    if _settled(pending, deadline):
        return True
    pending.value, pending.evicted = None, True
    return False


def _settled(pending: _Pending[Any], deadline: float) -> bool:
    """Wait until ``deadline`` for what ``pending`` waits for before its COMMIT: whether it is
    done; its failure raised."""
    if pending.ready is None:
        return True
    try:
        pending.ready.result(timeout=max(0.0, deadline - time.monotonic()))
    except TimeoutError:
        if not pending.ready.done():
            return False
        raise  # its own failure
    return True


class _LeftOut(Exception):
    """The one caller of a batch was left out of it: its transaction is rolled back."""


class _RunApart(Exception):
    """A caller's work failed in a batch run without savepoints: the batch is rolled back and
    run again, each caller's work in its own savepoint."""
