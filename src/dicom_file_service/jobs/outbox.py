"""The embedded queue: an outbox table in the index, drained by threads of the service.

Jobs are rows of ``render_outbox`` (its queries: ``index.outbox``), inserted in the instance's
own transaction. A drainer thread claims a few at a time (``claimed_until``: a crashed
process's claim lapses and another takes the job over), runs the handler in a small pool,
deletes the row when it succeeds and gives up on a job after ``MAX_ATTEMPTS`` failures (the
rendering is then made on demand, as it would be without pre-rendering). It polls every
``POLL_SECONDS`` and wakes at once when told that an enqueueing transaction committed.

A client's jobs (rows of ``jobs``) are their own queue entries, run by ``OutboxJobRunner``'s
threads beside the prerender drainer's.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection

from dicom_file_service.index import outbox
from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.jobs.base import Handler
from dicom_file_service.jobs.job_runner import OutboxJobRunner

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
POLL_SECONDS = 5.0
CLAIM_SECONDS = 600.0  # a batch's jobs run one after another: room for slow ones
_BATCH = 4


class OutboxQueue:
    def __init__(self, index: IndexDatabase, *, workers: int = 1) -> None:
        self._index = index
        self._workers = workers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._job_runner = OutboxJobRunner(index)

    def enqueue(self, conn: Connection, file_id: str) -> None:
        outbox.add_job(conn, file_id, time.time())

    def enqueue_job(self, conn: Connection, job_id: str) -> None:
        """The ``jobs`` row is the entry: nothing more to write."""

    def committed(self) -> None:
        self._wake.set()
        self._job_runner.wake()

    def start_jobs_in_process(self, job_handler: Handler) -> None:
        self._job_runner.start(job_handler)

    def prepare(self) -> None:
        """The outbox is a table of the index's own migrations: nothing more to create."""

    def start_in_process(self, handler: Handler) -> None:
        if self._thread is not None:
            return
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="prerender")
        self._thread = threading.Thread(
            target=self._drain_forever, args=(handler,), name="prerender-outbox", daemon=True
        )
        self._thread.start()

    def run_worker(self, handler: Handler | None, job_handler: Handler | None = None) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        if handler is not None:
            self.start_in_process(handler)
        if job_handler is not None:
            self.start_jobs_in_process(job_handler)
        while not self._stop.wait(0.5):
            pass
        self.close()

    def _drain_forever(self, handler: Handler) -> None:
        while not self._stop.is_set():
            try:
                while self.drain_once(handler):
                    if self._stop.is_set():
                        return
            except Exception:  # the index is unavailable: try again at the next poll
                log.warning("prerender outbox unavailable; retrying", exc_info=True)
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def drain_once(self, handler: Handler) -> int:
        """Claim and run one batch; returns how many jobs it ran."""
        jobs = self._claim()
        if not jobs:
            return 0
        assert self._pool is not None or not jobs
        futures = [(seq, self._run_one(handler, file_id)) for seq, file_id in jobs]
        for seq, ok in futures:
            with self._index.transaction() as conn:
                if ok:
                    outbox.remove_job(conn, seq)
                else:
                    self._record_failure(conn, seq)
        return len(jobs)

    def _run_one(self, handler: Handler, file_id: str) -> bool:
        try:
            if self._pool is not None:
                self._pool.submit(handler, file_id).result()
            else:
                handler(file_id)
        except Exception:
            log.warning("prerender job failed", exc_info=True, extra={"file_id": file_id})
            return False
        return True

    def _record_failure(self, conn: Connection, seq: int) -> None:
        attempts = outbox.job_attempts(conn, seq)
        if attempts is None or attempts + 1 >= MAX_ATTEMPTS:
            outbox.remove_job(conn, seq)
            return
        outbox.release_job(conn, seq, attempts + 1)

    def _claim(self) -> list[tuple[int, str]]:
        now = time.time()
        with self._index.transaction() as conn:
            return outbox.claim_jobs(conn, now, now + CLAIM_SECONDS, _BATCH)

    def pending(self) -> int:
        with self._index.read() as conn:
            return outbox.count_jobs(conn)

    def close(self) -> None:
        self._job_runner.close()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
