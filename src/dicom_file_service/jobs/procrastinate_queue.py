"""The durable queue on PostgreSQL: procrastinate, on the index's own database (no broker).

A job is deferred by calling procrastinate's own stored function on the caller's connection,
inside the transaction that inserts the instance: both commit or neither does (the SQL of it
and of the queue's other queries: ``index.procrastinate_jobs``). Workers
(``dicom-file-service worker``, any number, on any host) run the jobs with retries. A worker
killed mid-job (SIGKILL, a lost host) leaves its job "doing"; a periodic task re-queues jobs
whose worker's heartbeat has stopped, so every job completes; another removes finished jobs
after a day, so the job table stays bounded.

procrastinate's stored functions are found through the connection's search_path, like our
tables, so both use the same database URL (and schema) everywhere.
"""

from __future__ import annotations

import logging
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

QUEUE = "prerender"
TASK = "prerender_file"
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

    def enqueue(self, conn: Connection, file_id: str) -> None:
        args = orjson.dumps({"file_id": file_id}).decode()
        procrastinate_jobs.defer_job(conn, QUEUE, TASK, args)

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

    def run_worker(self, handler: Handler) -> None:
        app = self._app()

        @app.task(
            name=TASK,
            queue=QUEUE,
            retry=RetryStrategy(max_attempts=MAX_RETRIES, exponential_wait=2),
        )
        def prerender_file(file_id: str) -> None:
            handler(file_id)

        @app.periodic(cron="0 * * * *", periodic_id="remove-old-jobs")
        @app.task(
            name="remove_old_jobs", queue=QUEUE, queueing_lock="remove_old_jobs", pass_context=True
        )
        async def remove_old_jobs(context: Any, timestamp: int) -> None:
            """Finished jobs (the periodic ones included) are kept a day, then go."""
            await context.app.job_manager.delete_old_jobs(nb_hours=KEEP_HOURS, queue=QUEUE)

        @app.periodic(cron="* * * * * */5", periodic_id="requeue-stalled")
        @app.task(
            name="requeue_stalled", queue=QUEUE, queueing_lock="requeue_stalled", pass_context=True
        )
        async def requeue_stalled(context: Any, timestamp: int) -> None:
            manager = context.app.job_manager
            stalled: list[Job] = await manager.get_stalled_jobs(
                seconds_since_heartbeat=STALLED_AFTER_SECONDS
            )
            for job in stalled:
                if job.attempts >= MAX_RETRIES:
                    log.warning("prerender job abandoned after %s attempts", job.attempts)
                    continue
                await manager.retry_job(job)

        app.run_worker(
            queues=[QUEUE],
            concurrency=self._concurrency,
            wait=True,
            fetch_job_polling_interval=2,
            update_heartbeat_interval=HEARTBEAT_SECONDS,
            stalled_worker_timeout=STALLED_AFTER_SECONDS,
            shutdown_graceful_timeout=10,
        )

    def close(self) -> None:
        """Nothing held between calls."""
