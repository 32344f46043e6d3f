"""An instance's rows written to PostgreSQL in one round trip (psycopg's pipeline mode).

An upload's index work is three statements, in this order: claim the study's row, claim the
series' row, insert the instance's row. Through SQLAlchemy each is a round trip of its own,
the transaction's BEGIN another, and a round trip costs its network wait plus the drivers'
Python. In psycopg's pipeline mode the three statements (and the BEGIN, when they open the
transaction) go out together and their answers come back together: measured in process, an
upload's transaction 1.97 -> 1.34 ms median. SQLAlchemy cannot run a statement in pipeline
mode (it reads each result's description at once), so the statements are compiled by
SQLAlchemy once, for PostgreSQL, and sent through the same connection's psycopg cursor; the
transaction stays the caller's.

Errors arrive as the rest of the index raises them: a constraint as ``DuplicateKey``, a
value PostgreSQL cannot hold as ``InvalidParameter``, a lost or failing database as
``IndexUnavailable`` (``InsufficientStorage`` for a full disk), a lost connection
invalidated, never lent again. The caller's transaction must have begun (it always has: the
index's ``transaction()`` and group commit begin it).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import psycopg
from sqlalchemy import Connection, Insert
from sqlalchemy.dialects import postgresql

from dicom_file_service.dicom.query_keys import QueryKeys
from dicom_file_service.errors import DuplicateKey, IndexUnavailable, InvalidParameter
from dicom_file_service.index.engine import database_failure
from dicom_file_service.index.tables import instances

_DIALECT = postgresql.dialect(paramstyle="pyformat")  # type: ignore[no-untyped-call]


@cache
def _sql(statement: Insert, columns: tuple[str, ...]) -> str:
    """``statement`` for PostgreSQL, inserting ``columns`` (compiled once for each)."""
    return str(statement.compile(dialect=_DIALECT, column_keys=list(columns)))


def insert_pipelined(
    conn: Connection,
    claims: tuple[Insert, Insert],
    values: dict[str, Any],
    keys: QueryKeys,
) -> int:
    """Claim the study's and the series' rows with ``claims`` (their statements, in this
    order), insert the instance's row, in the caller's transaction; return its ``seq``."""
    study, series = claims
    statements = (
        (_sql(study, tuple(keys.study)), keys.study),
        (_sql(series, tuple(keys.series)), keys.series),
        (_sql(_INSERT_RETURNING, tuple(values)), values),
    )
    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    try:
        with driver.pipeline(), driver.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)
            row = cursor.fetchone()
    except psycopg.IntegrityError as exc:
        raise DuplicateKey(str(exc)) from exc
    except psycopg.DataError as exc:  # a value the database cannot hold, e.g. a NUL
        raise InvalidParameter(
            "a value of the request cannot be stored in the index: it holds a character or "
            "a number the index cannot store (such as a NUL)"
        ) from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        # A lost connection is closed, never lent again; a statement that failed on a live
        # one (a deadlock, a lock or statement timeout) leaves it to the caller's rollback.
        if driver.broken or driver.closed:
            conn.invalidate()
        raise database_failure(exc) from exc
    if row is None:  # RETURNING always answers a row for an INSERT that succeeded
        raise IndexUnavailable("the index database answered an insert without its row")
    return int(row[0])


_INSERT_RETURNING = instances.insert().returning(instances.c.seq)
