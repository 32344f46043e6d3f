"""The durable queue on PostgreSQL: procrastinate, on the index's own database (no broker).

A job is deferred by calling procrastinate's own stored function on the caller's connection,
inside the transaction that inserts the instance: both commit or neither does (the SQL of it
and of the queue's other queries: ``index.procrastinate_jobs``). Workers
(``dicom-file-service worker``, any number, on any host) run the jobs with retries. A worker
killed mid-job (SIGKILL, a lost host) leaves its job "doing"; a periodic task re-queues jobs
whose worker's heartbeat has stopped, so every job completes; another removes finished jobs
after a day, so the job table stays bounded.

A client's jobs (rows of ``jobs``, by id) go on a queue of their own, which the ``worker``
command runs beside prerendering and which the service can also run in a thread of its own
(``start_jobs_in_process``: a procrastinate worker of that queue alone, on its own event loop).

procrastinate's stored functions are found through the connection's search_path, like our
tables, so both use the same database URL (and schema) everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import orjson
import psycopg
from procrastinate import App, PsycopgConnector, RetryStrategy
from procrastinate.jobs import Job
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from dicom_file_service.index import procrastinate_jobs
from dicom_file_service.jobs.base import Handler

log = logging.getLogger(__name__)
RESTART_SECONDS = 5
"""How long the in-process job worker waits before it starts again after a failure."""

QUEUE = "prerender"
TASK = "prerender_file"
JOBS_QUEUE = "jobs"  # a client's jobs (rows of ``jobs``), by id
JOB_TASK = "run_job"
MAX_RETRIES = 5
HEARTBEAT_SECONDS = 2.0
STALLED_AFTER_SECONDS = 10.0
KEEP_HOURS = 24


def libpq_conninfo(database_url: str) -> str:
    """The SQLAlchemy URL as a libpq URI for psycopg (query options such as
    ``options=-csearch_path=...`` kept)."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


class ProcrastinateQueue:
    def __init__(self, database_url: str, *, concurrency: int = 2) -> None:
        self._conninfo = libpq_conninfo(database_url)
        self._concurrency = concurrency
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None
        self._stopping = threading.Event()

    def enqueue(self, conn: Connection, file_id: str) -> None:
        args = orjson.dumps({"file_id": file_id}).decode()
        procrastinate_jobs.defer_job(conn, QUEUE, TASK, args)

    def enqueue_job(self, conn: Connection, job_id: str) -> None:
        args = orjson.dumps({"job_id": job_id}).decode()
        procrastinate_jobs.defer_job(conn, JOBS_QUEUE, JOB_TASK, args)

    def committed(self) -> None:
        """procrastinate's insert trigger NOTIFYs the workers at commit."""

    def start_in_process(self, handler: Handler) -> None:
        """Jobs run in ``worker`` processes, not in the service."""

    def pending(self) -> int:
        with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
            return procrastinate_jobs.count_todo_jobs(conn, QUEUE)

    def prepare(self) -> None:
        """Apply procrastinate's schema once (under an advisory lock: hosts may race)."""
        with (
            psycopg.connect(self._conninfo, autocommit=True) as conn,
            procrastinate_jobs.schema_lock(conn),
        ):
            if not procrastinate_jobs.schema_exists(conn):
                app = self._app()
                with app.open():
                    app.schema_manager.apply_schema()

    def _app(self) -> App:
        return App(connector=PsycopgConnector(conninfo=self._conninfo))

    def run_worker(self, handler: Handler | None, job_handler: Handler | None = None) -> None:
        app = self._app()
        queues = _register(app, handler, job_handler)
        app.run_worker(queues=queues, **self._worker_options())

    def start_jobs_in_process(self, job_handler: Handler) -> None:
        """A worker of the ``jobs`` queue alone in a thread of this process, on an event loop
        of its own (the HTTP one never waits on it); its jobs run in threads."""
        if self._thread is not None:
            return
        _outages_without_stacks()
        self._thread = threading.Thread(
            target=self._run_in_thread, args=(job_handler,), name="jobs-worker", daemon=True
        )
        self._thread.start()

    def _run_in_thread(self, job_handler: Handler) -> None:
        app = self._app()
        queues = _register(app, None, job_handler)

        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._task = asyncio.current_task()
            if self._stopping.is_set():
                return
            async with app.open_async():
                await app.run_worker_async(
                    queues=queues, install_signal_handlers=False, **self._worker_options()
                )

        # The database may go away (an outage, a failover): the worker stops then, and is
        # started again once it can reach the database, for as long as the service runs.
        while not self._stopping.is_set():
            try:
                asyncio.run(run())
            except asyncio.CancelledError:
                return
            except Exception as exc:
                log.warning(
                    "the in-process job worker stopped (%s); starting it again in %d s",
                    type(exc).__name__,
                    RESTART_SECONDS,
                )
            if self._stopping.wait(RESTART_SECONDS):
                return

    def _worker_options(self) -> dict[str, Any]:
        return {
            "concurrency": self._concurrency,
            "wait": True,
            "fetch_job_polling_interval": 2,
            "update_heartbeat_interval": HEARTBEAT_SECONDS,
            "stalled_worker_timeout": STALLED_AFTER_SECONDS,
            "shutdown_graceful_timeout": 10,
        }

    def close(self) -> None:
        """Stop the in-process job worker, if any (a job running is given a moment)."""
        self._stopping.set()
        loop, task, thread = self._loop, self._task, self._thread
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # its loop closed already
                loop.call_soon_threadsafe(task.cancel)
        if thread is not None:
            thread.join(timeout=15)
        self._thread = None


def _register(app: App, handler: Handler | None, job_handler: Handler | None) -> list[str]:
    """The tasks of ``handler`` (prerender) and ``job_handler`` (client jobs) on ``app``, with
    each queue's periodic upkeep; the queues to work."""
    queues = []
    if handler is not None:
        queues.append(QUEUE)

        @app.task(
            name=TASK,
            queue=QUEUE,
            retry=RetryStrategy(max_attempts=MAX_RETRIES, exponential_wait=2),
        )
        def prerender_file(file_id: str) -> None:
            handler(file_id)

    if job_handler is not None:
        queues.append(JOBS_QUEUE)

        @app.task(
            name=JOB_TASK,
            queue=JOBS_QUEUE,
            retry=RetryStrategy(max_attempts=MAX_RETRIES, exponential_wait=2),
        )
        def run_job(job_id: str) -> None:
            job_handler(job_id)

    for queue in queues:
        _upkeep(app, queue)
    return queues


def _upkeep(app: App, queue: str) -> None:
    """Finished jobs of ``queue`` go after a day; a stalled worker's are re-queued."""
    suffix = "" if queue == QUEUE else f"_{queue}"  # the prerender queue's names, as before

    @app.periodic(cron="0 * * * *", periodic_id=f"remove-old-jobs{suffix}")
    @app.task(
        name=f"remove_old_jobs{suffix}",
        queue=queue,
        queueing_lock=f"remove_old_jobs{suffix}",
        pass_context=True,
    )
    async def remove_old_jobs(context: Any, timestamp: int) -> None:
        """Finished jobs (the periodic ones included) are kept a day, then go."""
        await context.app.job_manager.delete_old_jobs(nb_hours=KEEP_HOURS, queue=queue)

    @app.periodic(cron="* * * * * */5", periodic_id=f"requeue-stalled{suffix}")
    @app.task(
        name=f"requeue_stalled{suffix}",
        queue=queue,
        queueing_lock=f"requeue_stalled{suffix}",
        pass_context=True,
    )
    async def requeue_stalled(context: Any, timestamp: int) -> None:
        manager = context.app.job_manager
        stalled: list[Job] = await manager.get_stalled_jobs(
            seconds_since_heartbeat=STALLED_AFTER_SECONDS, queue=queue
        )
        for job in stalled:
            if job.attempts >= MAX_RETRIES:
                log.warning("%s job abandoned after %s attempts", queue, job.attempts)
                continue
            await manager.retry_job(job)


class _ExceptionInWords(logging.Filter):
    """procrastinate logs a database it cannot reach with the whole stack, as if it were a
    bug; an outage is not one (the service answers 503s and the worker starts again): its
    records keep the exception in words, on one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            words = " ".join(str(exc).split())
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {words})"
            record.args = None
            record.exc_info, record.exc_text = None, None
        return True


def _outages_without_stacks() -> None:
    """procrastinate's warnings and errors to stderr, their exceptions in words."""
    logger = logging.getLogger("procrastinate")
    if any(isinstance(f, _ExceptionInWords) for h in logger.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.addFilter(_ExceptionInWords())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
