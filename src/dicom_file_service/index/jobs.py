"""The ``jobs`` table's queries: background jobs a client started and polls. Functions over a
``Connection`` that never commit (the caller owns the transaction).

What a job does, and what its states mean, is the service's (``service.jobs``); claiming rows
is the embedded queue's (``jobs.outbox``): there the row is its own queue entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Row, func, insert, select, update

from dicom_file_service.index.tables import jobs

UNFINISHED = ("pending", "running")


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    params: dict[str, Any]
    state: str
    done: int
    total: int
    result: dict[str, Any] | None
    error: str | None
    created_at: float
    updated_at: float


_COLUMNS = [jobs.c[f] for f in JobRow.__dataclass_fields__]


def _row(row: Row[Any]) -> JobRow:
    values = dict(row._mapping)
    values["params"] = orjson.loads(values["params"])
    values["result"] = None if values["result"] is None else orjson.loads(values["result"])
    return JobRow(**values)


def add_job(
    conn: Connection, job_id: str, kind: str, params: dict[str, Any], total: int, now: float
) -> None:
    """A pending job, existing once the caller's transaction commits."""
    conn.execute(
        insert(jobs).values(
            id=job_id,
            kind=kind,
            params=orjson.dumps(params).decode(),
            state="pending",
            done=0,
            total=total,
            created_at=now,
            updated_at=now,
        )
    )


def get_job(conn: Connection, job_id: str) -> JobRow | None:
    row = conn.execute(select(*_COLUMNS).where(jobs.c.id == job_id)).first()
    return _row(row) if row else None


def start_job(conn: Connection, job_id: str, now: float) -> JobRow | None:
    """The job, now running; None when it is unknown or already finished (nothing to do)."""
    changed = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state.in_(UNFINISHED))
        .values(state="running", updated_at=now)
    ).rowcount
    return get_job(conn, job_id) if changed else None


def set_progress(conn: Connection, job_id: str, done: int, total: int, now: float) -> None:
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.state == "running")
        .values(done=done, total=total, updated_at=now)
    )


def finish_job(
    conn: Connection,
    job_id: str,
    state: str,
    result: dict[str, Any] | None,
    error: str | None,
    now: float,
) -> None:
    """The job ends ``succeeded`` or ``failed``, with its result and error in words."""
    values: dict[str, Any] = {"state": state, "error": error, "updated_at": now}
    if result is not None:
        values["result"] = orjson.dumps(result).decode()
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))


# The embedded queue's side: the unfinished rows are its entries.


def claim_jobs(conn: Connection, now: float, until: float, limit: int) -> list[str]:
    """Ids of up to ``limit`` unfinished jobs nobody holds at ``now``, oldest first, now held
    by the caller until ``until`` (a running one whose claim lapsed: its process died)."""
    ids = [
        str(r[0])
        for r in conn.execute(
            select(jobs.c.id)
            .where(jobs.c.state.in_(UNFINISHED), jobs.c.claimed_until < now)
            .order_by(jobs.c.created_at)
            .limit(limit)
        )
    ]
    if ids:
        conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(claimed_until=until))
    return ids


def extend_claim(conn: Connection, job_id: str, until: float) -> None:
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(claimed_until=until))


def release_job(conn: Connection, job_id: str) -> int:
    """The job, failed once more by its runner, free to be claimed again; its attempts."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(attempts=jobs.c.attempts + 1, claimed_until=0.0)
    )
    row = conn.execute(select(jobs.c.attempts).where(jobs.c.id == job_id)).first()
    return 0 if row is None else int(row[0])


def count_unfinished(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(jobs).where(jobs.c.state.in_(UNFINISHED))
        ).scalar_one()
    )
