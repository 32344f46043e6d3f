"""Group commit, on every database: concurrent writers share one COMMIT, nobody is answered
before it, and one writer's failure is its own."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, event, func, select

from dicom_file_service.errors import CommitOutcomeUnknown, IndexUnavailable, StorageUnavailable
from dicom_file_service.index import engine
from dicom_file_service.index import repository as repo
from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.index.tables import instances, studies
from tests.backends.test_index import _keys, _values


@pytest.fixture
def index(database_url: str) -> Iterator[IndexDatabase]:
    db = IndexDatabase(database_url, pool_size=12)
    db.upgrade()
    yield db
    db.close()


def _count(index: IndexDatabase, table: Any = instances) -> int:
    with index.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _insert(values: dict[str, Any]) -> Any:
    def work(conn: Connection) -> int:
        return repo.insert_instance(conn, values, _keys(values))

    return work


def _commits(index: IndexDatabase) -> list[int]:
    """Counts the COMMITs the engine sends (one element, incremented)."""
    seen = [0]

    @event.listens_for(index.engine, "commit")
    def _on_commit(_conn: Any) -> None:
        seen[0] += 1

    return seen


class NextBatch:
    """Writers queued behind a first one held at a gate: they form one batch when it opens.
    Each writer's result or exception is in ``outcomes``, the time it was answered in
    ``answered``."""

    def __init__(self, index: IndexDatabase, first: dict[str, Any]) -> None:
        self.index = index
        self.gate = threading.Event()
        self.outcomes: dict[str, Any] = {}
        self.answered: dict[str, float] = {}
        self.threads: list[threading.Thread] = []

        def held(conn: Connection) -> int:
            self.gate.wait(5)  # the others queue up behind this batch and form the next one
            return repo.insert_instance(conn, first, _keys(first))

        self.add("first", held)

    def add(self, name: str, work: Any, ready: Future[None] | None = None) -> None:
        def run() -> None:
            try:
                self.outcomes[name] = self.index.commit_grouped(work, ready)
            except Exception as exc:
                self.outcomes[name] = exc
            self.answered[name] = time.monotonic()

        thread = threading.Thread(target=run)
        thread.start()
        self.threads.append(thread)

    def release(self) -> None:
        time.sleep(0.2)  # every writer is queued
        self.gate.set()

    def join(self) -> dict[str, Any]:
        for thread in self.threads:
            thread.join(10)
        return self.outcomes


def test_concurrent_writers_share_commits_and_all_are_committed(index: IndexDatabase) -> None:
    commits = _commits(index)
    n = 48
    start = threading.Barrier(n)
    results: dict[int, Any] = {}

    def writer(i: int) -> None:
        start.wait()
        results[i] = index.commit_grouped(_insert(_values(i)))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == n and len(set(results.values())) == n  # each its own row
    assert _count(index) == n
    assert commits[0] < n  # some shared a COMMIT
    # Each caller was answered after its row was committed: every row is there.
    with index.read() as conn:
        seqs = set(conn.execute(select(instances.c.seq)).scalars())
    assert set(results.values()) <= seqs


def test_a_batch_that_succeeds_takes_no_savepoints(index: IndexDatabase) -> None:
    """Savepoints are taken only when a batch is run again after a caller's failure."""
    commits = _commits(index)
    statements: list[str] = []

    @event.listens_for(index.engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    gate = threading.Event()

    def slow_first(conn: Connection) -> int:
        gate.wait(5)  # the others queue up behind this batch and form the next one
        return int(repo.insert_instance(conn, _values(100), _keys(_values(100))))

    threads = [threading.Thread(target=index.commit_grouped, args=(slow_first,))]
    threads += [
        threading.Thread(target=index.commit_grouped, args=(_insert(_values(i)),)) for i in range(6)
    ]
    for t in threads:
        t.start()
    time.sleep(0.3)
    gate.set()
    for t in threads:
        t.join()
    event.remove(index.engine, "before_cursor_execute", _record)
    assert _count(index) == 7
    assert commits[0] < 7  # some shared a COMMIT
    assert not [s for s in statements if "SAVEPOINT" in s.upper()]


def test_a_failing_writer_is_rolled_back_alone(index: IndexDatabase) -> None:
    index.commit_grouped(_insert(_values(1)))
    batch = NextBatch(index, _values(2))
    # A duplicate SOP Instance UID in a new study: its study row must not survive it.
    dup = _values(
        3, sop_instance_uid="1.2.3.1", study_instance_uid="9.9.9", series_instance_uid="9.9.9.1"
    )
    batch.add("dup", _insert(dup))
    batch.add("ok", _insert(_values(4)))
    batch.add("boom", lambda conn: 1 / 0)
    batch.release()
    outcomes = batch.join()
    assert isinstance(outcomes["dup"], repo.DuplicateKey)
    assert isinstance(outcomes["boom"], ZeroDivisionError)
    assert isinstance(outcomes["first"], int) and isinstance(outcomes["ok"], int)
    assert _count(index) == 3
    with index.read() as conn:
        study_uids = set(conn.execute(select(studies.c.study_instance_uid)).scalars())
    assert "9.9.9" not in study_uids


def test_work_runs_while_what_it_waits_for_is_under_way_and_commits_after(
    index: IndexDatabase,
) -> None:
    """As an upload to S3: its row's statements run while its bytes go up; the COMMIT waits."""
    stored: Future[None] = Future()
    ran = threading.Event()
    outcome: list[Any] = []

    def work(conn: Connection) -> int:
        ran.set()
        return repo.insert_instance(conn, _values(1), _keys(_values(1)))

    writer = threading.Thread(target=lambda: outcome.append(index.commit_grouped(work, stored)))
    writer.start()
    if index.engine.dialect.name == "sqlite":
        # A transaction there holds every process's one write lock: the put is waited for
        # before it begins.
        assert not ran.wait(0.3)
    else:
        assert ran.wait(5)
        time.sleep(0.2)
    assert writer.is_alive() and _count(index) == 0  # not committed while the put is out
    stored.set_result(None)
    writer.join(5)
    assert isinstance(outcome[0], int) and _count(index) == 1


def test_a_failure_of_what_one_writer_waits_for_is_its_own(index: IndexDatabase) -> None:
    done: Future[None] = Future()
    done.set_result(None)
    failed: Future[None] = Future()
    failed.set_exception(StorageUnavailable("the object store refused the put"))
    batch = NextBatch(index, _values(1))
    batch.add("failed", _insert(_values(2)), failed)
    batch.add("ok", _insert(_values(3)), done)
    batch.release()
    outcomes = batch.join()
    assert isinstance(outcomes["failed"], StorageUnavailable)
    assert isinstance(outcomes["first"], int) and isinstance(outcomes["ok"], int)
    with index.read() as conn:
        assert repo.get_by_file_id(conn, _values(2)["file_id"]) is None
    assert _count(index) == 2
    # Alone, too: nothing of its work is committed.
    with pytest.raises(StorageUnavailable):
        index.commit_grouped(_insert(_values(4)), failed)
    assert _count(index) == 2


def test_a_slow_put_is_left_out_of_its_batch_and_committed_after_it(
    index: IndexDatabase,
) -> None:
    """A batch waits at most RIDE_SECONDS for its puts: the others are answered meanwhile."""
    slow: Future[None] = Future()
    batch = NextBatch(index, _values(1))
    batch.add("slow", _insert(_values(2)), slow)
    batch.add("quick", _insert(_values(3)))
    batch.release()
    time.sleep(0.6)
    assert "quick" in batch.answered and "slow" not in batch.answered  # not held by it
    assert _count(index) == 2
    put_done = time.monotonic()
    slow.set_result(None)
    outcomes = batch.join()
    assert batch.answered["slow"] >= put_done and isinstance(outcomes["slow"], int)
    assert _count(index) == 3
    # Alone, too: a caller arriving meanwhile is not held by it.
    alone: Future[None] = Future()
    batch.add("alone", _insert(_values(4)), alone)
    time.sleep(0.2)
    index.commit_grouped(_insert(_values(5)))
    assert _count(index) == 4 and "alone" not in batch.answered
    alone.set_result(None)
    batch.join()
    assert _count(index) == 5


def test_a_writer_is_answered_only_once_what_it_waits_for_is_done(index: IndexDatabase) -> None:
    """Even when its work failed at once: the caller then undoes what it waited for (removes
    the put's object), which must not race the put."""
    stored: Future[None] = Future()
    threading.Timer(0.3, stored.set_result, args=(None,)).start()
    started = time.monotonic()
    with pytest.raises(ZeroDivisionError):
        index.commit_grouped(lambda conn: 1 / 0, stored)
    assert stored.done() and time.monotonic() - started >= 0.25


def test_a_failed_commit_fails_every_writer_of_its_batch(index: IndexDatabase) -> None:
    @event.listens_for(index.engine, "commit")
    def _refuse(_conn: Any) -> None:
        raise RuntimeError("the connection died during COMMIT")

    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            index.commit_grouped(_insert(_values(i)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 8
    assert all(isinstance(e, CommitOutcomeUnknown) for e in errors), [
        repr(e)[:150] for e in errors if not isinstance(e, CommitOutcomeUnknown)
    ]
    event.remove(index.engine, "commit", _refuse)
    assert _count(index) == 0  # the listener refused before the database committed


def _hold_writer_file(database: str, seconds: float) -> subprocess.Popen[bytes]:
    """Another process holding the SQLite writers' lock file for ``seconds``."""
    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, database + ".writer", str(seconds)],
        stdout=subprocess.PIPE,
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
    return holder


def test_sqlite_writers_of_other_processes_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = str(tmp_path / "index.sqlite3")
    index = IndexDatabase(f"sqlite:///{database}")
    index.upgrade()
    try:
        holder = _hold_writer_file(database, 0.5)
        started = time.monotonic()
        index.commit_grouped(_insert(_values(1)))  # waits for the other process's turn
        assert time.monotonic() - started >= 0.3
        holder.communicate()
        assert _count(index) == 1

        monkeypatch.setattr(engine, "WRITER_WAIT_SECONDS", 0.2)
        holder = _hold_writer_file(database, 3)
        try:
            with pytest.raises(IndexUnavailable, match="write lock"):
                index.commit_grouped(_insert(_values(2)))
        finally:
            holder.kill()
            holder.communicate()
        assert _count(index) == 1
        index.commit_grouped(_insert(_values(3)))  # a killed holder's turn ends with it
        assert _count(index) == 2
    finally:
        index.close()
