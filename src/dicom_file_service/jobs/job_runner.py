"""The embedded queue's runner of client jobs: the unfinished rows of the ``jobs`` table,
claimed and run by threads of the service (``index.jobs``' queries).

One drainer thread claims a job whenever one of ``workers`` threads is free, runs it there,
and extends the claims of the jobs running every ``HEARTBEAT_SECONDS``, so a job of any length
stays its own while a crashed process's claim lapses after ``CLAIM_SECONDS`` (another process,
or this one restarted, then takes it over). A handler records its own outcome in the row; one
that raises (the index away) is tried again, and failed after ``MAX_ATTEMPTS``.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from dicom_file_service.index import jobs as job_rows
from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.jobs.base import Handler

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
POLL_SECONDS = 5.0
CLAIM_SECONDS = 120.0
HEARTBEAT_SECONDS = 30.0


class OutboxJobRunner:
    def __init__(self, index: IndexDatabase, *, workers: int = 2) -> None:
        self._index = index
        self._workers = workers
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self, handler: Handler) -> None:
        if self._thread is not None:
            return
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="job")
        self._thread = threading.Thread(
            target=self._drain_forever, args=(handler,), name="jobs-outbox", daemon=True
        )
        self._thread.start()

    def _drain_forever(self, handler: Handler) -> None:
        running: dict[str, Future[None]] = {}
        extended = time.monotonic()
        while not self._stop.is_set():
            try:
                for job_id, future in list(running.items()):
                    if future.done():
                        del running[job_id]
                        if future.exception() is not None:
                            self._failed(job_id, future.exception())
                if running and time.monotonic() - extended >= HEARTBEAT_SECONDS:
                    self._extend(list(running))
                    extended = time.monotonic()
                free = self._workers - len(running)
                if free > 0:
                    for job_id in self._claim(free):
                        running[job_id] = self._submit(handler, job_id)
            except Exception:  # the index is unavailable: try again at the next poll
                log.warning("job outbox unavailable; retrying", exc_info=True)
            self._wake.wait(min(POLL_SECONDS, HEARTBEAT_SECONDS) if running else POLL_SECONDS)
            self._wake.clear()

    def _submit(self, handler: Handler, job_id: str) -> Future[None]:
        assert self._pool is not None
        future = self._pool.submit(handler, job_id)
        future.add_done_callback(lambda _: self._wake.set())
        return future

    def _claim(self, limit: int) -> list[str]:
        now = time.time()
        with self._index.transaction() as conn:
            return job_rows.claim_jobs(conn, now, now + CLAIM_SECONDS, limit)

    def _extend(self, ids: list[str]) -> None:
        until = time.time() + CLAIM_SECONDS
        with self._index.transaction() as conn:
            for job_id in ids:
                job_rows.extend_claim(conn, job_id, until)

    def _failed(self, job_id: str, exc: BaseException | None) -> None:
        log.warning("job %s could not be run: %s", job_id, exc)
        with self._index.transaction() as conn:
            attempts = job_rows.release_job(conn, job_id)
            if attempts >= MAX_ATTEMPTS:
                job_rows.finish_job(
                    conn,
                    job_id,
                    "failed",
                    None,
                    f"given up after {attempts} attempts: {exc}",
                    time.time(),
                )

    def pending(self) -> int:
        with self._index.read() as conn:
            return job_rows.count_unfinished(conn)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
