"""Background jobs a client starts and polls: a row of the ``jobs`` table (kind, parameters,
state, progress, result, error), run by the queue (``jobs``) with the row's id.

``create_job`` writes the row and queues its id in one transaction, so a job exists if and
only if it will run, and survives a restart on either queue (PostgreSQL's procrastinate, or
the embedded one, whose entries are the unfinished rows themselves). ``run_job`` is the
queue's handler: it marks the row running, calls the kind's function (``register_kind``: a
job of any kind has the same state, progress and result) with a progress callback that
writes ``done``/``total`` at most once a second, and records the outcome: ``succeeded`` with
its result, or ``failed`` with an error in words (the result kept where there is one). A
kind's failure, expected or not, never leaves the worker: only an index that cannot record
the outcome raises, for the queue to try again. A job already finished is not run again.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dicom_file_service import metrics
from dicom_file_service.errors import JobNotFound, ServiceError
from dicom_file_service.index import jobs as job_rows
from dicom_file_service.index.jobs import JobRow
from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]  # (done, total)
PROGRESS_SECONDS = 1.0
# The modules whose import registers the kinds (the queue's handler runs in processes that
# may have imported none of them).
KIND_MODULES = (
    "dicom_file_service.service.dimse_jobs",
    "dicom_file_service.service.deid_jobs",
)
_ID = re.compile(r"[A-Za-z0-9_-]{22}")


@dataclass(frozen=True)
class Outcome:
    """What a job's function answers: its result, and an error in words if it failed."""

    result: dict[str, Any] | None
    error: str | None = None


JobFunction = Callable[[ServiceContext, dict[str, Any], Progress], Outcome]
KINDS: dict[str, JobFunction] = {}


def register_kind(kind: str, function: JobFunction) -> None:
    KINDS[kind] = function


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    state: str
    done: int
    total: int
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "result": self.result,
            "error": self.error,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
        }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


def _job(row: JobRow) -> Job:
    return Job(
        row.id,
        row.kind,
        row.state,
        row.done,
        row.total,
        row.result,
        row.error,
        row.created_at,
        row.updated_at,
    )


def create_job(ctx: ServiceContext, kind: str, params: dict[str, Any], total: int = 0) -> Job:
    """A pending job of ``kind`` (registered) with ``params`` (a JSON object), queued."""
    assert kind in KINDS, kind
    job_id = ids.new_file_id()
    with ctx.index.transaction() as conn:
        job_rows.add_job(conn, job_id, kind, params, total, time.time())
        ctx.jobs.enqueue_job(conn, job_id)
        row = job_rows.get_job(conn, job_id)
    ctx.jobs.committed()
    assert row is not None
    return _job(row)


def get_job(ctx: ServiceContext, job_id: str) -> Job:
    row = None
    if _ID.fullmatch(job_id):
        with ctx.index.read() as conn:
            row = job_rows.get_job(conn, job_id)
    if row is None:
        raise JobNotFound(f"no job has the id {job_id!r}")
    return _job(row)


def run_job(ctx: ServiceContext, job_id: str) -> None:
    """The queue's handler (see the module's docstring)."""
    _load_kinds()
    with ctx.index.transaction() as conn:
        row = job_rows.start_job(conn, job_id, time.time())
    if row is None:
        return  # unknown, or finished by an earlier run
    function = KINDS.get(row.kind)
    progress = _progress(ctx, job_id)
    try:
        if function is None:
            outcome = Outcome(None, f"no job of the kind {row.kind!r} can run here")
        else:
            outcome = function(ctx, row.params, progress)
    except ServiceError as exc:
        outcome = Outcome(None, exc.detail)
    except Exception as exc:
        log.exception("job %s (%s) failed unexpectedly", job_id, row.kind)
        outcome = Outcome(None, f"unexpected error: {type(exc).__name__}: {exc}")
    state = "failed" if outcome.error is not None else "succeeded"
    with ctx.index.transaction() as conn:
        job_rows.finish_job(conn, job_id, state, outcome.result, outcome.error, time.time())
    metrics.JOB_RUNS.labels(row.kind, state).inc()
    if outcome.error is not None:
        log.warning("job %s (%s) failed: %s", job_id, row.kind, outcome.error)


def _progress(ctx: ServiceContext, job_id: str) -> Progress:
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_SECONDS and done < total:
            return
        last[0] = now
        try:
            with ctx.index.transaction() as conn:
                job_rows.set_progress(conn, job_id, done, total, time.time())
        except ServiceError as exc:  # progress is a courtesy: the job goes on
            log.warning("job %s: progress not recorded: %s", job_id, exc.detail)

    return progress


def _load_kinds() -> None:
    for module in KIND_MODULES:
        importlib.import_module(module)


def start_in_process(ctx: ServiceContext) -> None:
    """Run jobs in threads of this process (``DICOM_FS_JOBS_IN_PROCESS``, the default)."""
    if ctx.settings.jobs_in_process:
        ctx.jobs.start_jobs_in_process(lambda job_id: run_job(ctx, job_id))


def job_handler(ctx: ServiceContext) -> Callable[[str], None]:
    return lambda job_id: run_job(ctx, job_id)
