"""The ``render_outbox`` table's queries: the embedded pre-render queue's jobs.

Each function runs on the caller's connection, in the caller's transaction; what a job is and
when one is given up is ``jobs.outbox``'s business.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from dicom_file_service.index.tables import render_outbox

_ENQUEUE = insert(render_outbox)  # built once; compiled once


def add_job(conn: Connection, file_id: str, created_at: float) -> None:
    """A job for ``file_id``, existing once the caller's transaction commits."""
    conn.execute(_ENQUEUE, {"file_id": file_id, "created_at": created_at})


def claim_jobs(conn: Connection, now: float, until: float, limit: int) -> list[tuple[int, str]]:
    """(seq, file_id) of up to ``limit`` jobs nobody holds at ``now``, oldest first, now held
    by the caller until ``until``."""
    rows: list[Any] = list(
        conn.execute(
            select(render_outbox.c.seq, render_outbox.c.file_id)
            .where(render_outbox.c.claimed_until < now)
            .order_by(render_outbox.c.seq)
            .limit(limit)
        )
    )
    if rows:
        conn.execute(
            update(render_outbox)
            .where(render_outbox.c.seq.in_([r[0] for r in rows]))
            .values(claimed_until=until)
        )
    return [(int(r[0]), str(r[1])) for r in rows]


def remove_job(conn: Connection, seq: int) -> None:
    conn.execute(delete(render_outbox).where(render_outbox.c.seq == seq))


def job_attempts(conn: Connection, seq: int) -> int | None:
    """How many times the job has failed; None once it is gone."""
    row = conn.execute(select(render_outbox.c.attempts).where(render_outbox.c.seq == seq)).first()
    return None if row is None else int(row[0])


def release_job(conn: Connection, seq: int, attempts: int) -> None:
    """The job, failed ``attempts`` times, free to be claimed again at once."""
    conn.execute(
        update(render_outbox)
        .where(render_outbox.c.seq == seq)
        .values(attempts=attempts, claimed_until=0.0)
    )


def count_jobs(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(render_outbox)).scalar_one())
