"""procrastinate's tables and stored functions, as the PostgreSQL pre-render queue calls them.

``defer_job`` runs on the caller's SQLAlchemy connection, inside its transaction (the job
exists once that commits); the others run on a psycopg connection of ``jobs``' own, which
holds procrastinate's schema and worker. procrastinate's objects are found through the
connection's search_path, like the index's tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Connection, text

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task, 0, NULL, NULL, "
    "CAST(:args AS jsonb), NULL)]::procrastinate_job_to_defer_v1[]))"
)
_SCHEMA_LOCK = 0x44434D50  # "DCMP"


def defer_job(conn: Connection, queue: str, task: str, args_json: str) -> None:
    """A job of ``task`` on ``queue`` with ``args_json`` (a JSON object), in the caller's
    transaction."""
    conn.execute(_DEFER, {"queue": queue, "task": task, "args": args_json})


def count_todo_jobs(conn: psycopg.Connection[Any], queue: str) -> int:
    """Jobs of ``queue`` waiting to be run."""
    row = conn.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE queue_name = %s AND status = 'todo'",
        (queue,),
    ).fetchone()
    return int(row[0]) if row else 0


@contextmanager
def schema_lock(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """procrastinate's schema held for the block, against every host applying it at once
    (a session advisory lock: ``conn`` must be in autocommit)."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_SCHEMA_LOCK,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_SCHEMA_LOCK,))


def schema_exists(conn: psycopg.Connection[Any]) -> bool:
    """Whether procrastinate's schema has been applied."""
    row = conn.execute("SELECT to_regclass('procrastinate_jobs') IS NOT NULL").fetchone()
    return row is not None and bool(row[0])
