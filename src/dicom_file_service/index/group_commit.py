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
(as work that raised) and the batch goes on. ``run`` returns or raises only once ``ready`` is
done, so a caller that undoes it after a failure never races it.

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
from collections.abc import Callable
from concurrent.futures import Future, wait
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")

MAX_BATCH = 64
"""Most callers one COMMIT serves: bounds how long the batch holds the write lock."""


class _Pending(Generic[T]):
    __slots__ = ("done", "error", "lead", "ready", "value", "work")

    def __init__(self, work: Callable[[Connection], T], ready: Future[Any] | None) -> None:
        self.work = work
        self.ready = ready
        self.done = threading.Event()
        self.lead = False  # woken to lead the next batch, not with a result
        self.value: T | None = None
        self.error: BaseException | None = None


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
        with self._lock:
            self._queue.append(pending)
            lead = not self._leading
            self._leading = True
        while True:
            if lead:
                self._lead()
            pending.done.wait()
            if not pending.lead:
                break
            pending.lead, lead = False, True
            pending.done.clear()
        if pending.error is not None:
            raise pending.error
        return pending.value  # type: ignore[return-value]  # set when error is None

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
                if len(batch) == 1:  # alone: its failure is the transaction's, no savepoint
                    batch[0].value = batch[0].work(conn)
                    _settled(batch[0])
                    return
                for pending in batch:
                    if pending.error is not None:  # what it waited for failed: nothing to do
                        continue
                    savepoint = conn.begin_nested()
                    try:
                        pending.value = pending.work(conn)
                        _settled(pending)
                    except Exception as exc:  # this caller's alone: the others go on
                        pending.error = exc
                        savepoint.rollback()
                        continue
                    savepoint.commit()
        except BaseException as exc:
            # The transaction failed as a whole (its COMMIT, or the connection): nobody's
            # work is known committed, unless the failure is the outcome-unknown kind, which
            # the error itself says.
            for pending in batch:
                if pending.error is None:
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
                failed = False
                for pending in batch:  # every work is in: now what they wait for
                    try:
                        _settled(pending)
                    except Exception as exc:  # run apart, without this caller's work
                        pending.error, failed = exc, True
                if failed:
                    raise _RunApart
        except _RunApart:
            for pending in batch:
                pending.value = None
            return False
        return True


def _settled(pending: _Pending[Any]) -> None:
    """Wait for what ``pending`` waits for before its COMMIT; raise its failure."""
    if pending.ready is not None:
        pending.ready.result()


class _RunApart(Exception):
    """A caller's work failed in a batch run without savepoints: the batch is rolled back and
    run again, each caller's work in its own savepoint."""
