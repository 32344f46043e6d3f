"""A delete on PostgreSQL is answered only once no instance can serve what it deleted.

Instances keep headers and locations in memory (``index.leased_cache``) and drop them when a
deleting transaction's notice reaches them. The transaction that deleted waits here, after
its COMMIT: before the COMMIT it listens on the acknowledgements' channel and notes its
transaction id (the notice's payload); after it, it reads the leases held and waits until
each holder has acknowledged that id, or its lease has ended (an instance that died, or lost
the database, stops serving before its lease ends). With no other instance, or none
keeping anything, the wait is one query.

The wait is bounded by the longest lease (seconds), and the COMMIT has happened whatever
befalls the wait: if the database fails meanwhile, the fence waits out the longest lease it
read (or, before it read them, this process's ``lease_seconds`` from the COMMIT on), after
which no lease taken before the COMMIT still lets an instance serve; a failure of only the
cleanup after the wait costs nothing but the connection.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from psycopg import sql
from psycopg.errors import UndefinedTable
from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError

from dicom_file_service.index.leased_cache import SEEN_CHANNEL

log = logging.getLogger(__name__)

_DELETED = "dfs_deleted_instances"  # the connection's info: the transaction deleted rows
_LEASES = text(
    "SELECT instance_id, EXTRACT(EPOCH FROM lease_until - now()) FROM serving_instances "
    "WHERE lease_until > now()"
)


def note_deleted(conn: Connection) -> None:
    """Called by whatever deletes instance rows: the transaction then waits at its end."""
    conn.info[_DELETED] = True


def deleted_in(conn: Connection) -> bool:
    """Whether the transaction on ``conn`` deleted instance rows (and forget it)."""
    return bool(conn.info.pop(_DELETED, False))


class Fence:
    """Made before the COMMIT of a transaction that deleted, waited on after it."""

    def __init__(self, conn: Connection, lease_seconds: float) -> None:
        self._lease = lease_seconds
        self._longest = 0.0  # monotonic: when the longest lease read ends
        self._waited = False
        txid, seen = conn.execute(text(f"SELECT txid_current(), {SEEN_CHANNEL}")).one()
        self._txid = str(txid)
        driver = conn.connection.driver_connection
        self._seen = sql.Identifier(seen).as_string(driver)
        conn.exec_driver_sql(f"LISTEN {self._seen}")  # in effect from the COMMIT on

    def wait(self, conn: Connection) -> None:
        """Until every lease holder acknowledged this transaction or its lease ended."""
        # Until the leases are read, a failure waits out this process's own lease from now,
        # after the COMMIT (every instance of a deployment is meant to share the setting).
        self._longest = time.monotonic() + self._lease
        try:
            self._wait(conn)
            conn.exec_driver_sql(f"UNLISTEN {self._seen}")
            conn.commit()
            driver: Any = conn.connection.driver_connection
            for _ in driver.notifies(timeout=0):  # late acknowledgements: none for the next
                pass
        except Exception as exc:
            with contextlib.suppress(Exception):
                conn.invalidate()  # maybe still listening, in an unknown state: not lent again
            if self._waited:
                return  # every lease was acknowledged or ended: only the cleanup failed
            log.warning(
                "a delete could not hear the instances' acknowledgements; waiting out a lease",
                extra={"error": type(exc).__name__},
            )
            time.sleep(max(0.0, self._longest - time.monotonic()))

    def _wait(self, conn: Connection) -> None:
        try:
            rows = conn.execute(_LEASES).all()
        except ProgrammingError as exc:
            if not isinstance(exc.orig, UndefinedTable):
                raise
            rows = []  # not migrated yet: no instance can hold a lease
        conn.commit()  # no transaction open while notices are awaited
        now = time.monotonic()
        ends = {str(holder): now + float(left) for holder, left in rows}
        self._longest = max([now, *ends.values()])  # what a failure from here on waits out
        driver: Any = conn.connection.driver_connection
        while ends:
            now = time.monotonic()
            for holder in [h for h, end in ends.items() if end <= now]:
                del ends[holder]  # its lease ended: it serves nothing kept
            if not ends:
                break
            for notice in driver.notifies(timeout=min(ends.values()) - now, stop_after=1):
                holder, _, txid = notice.payload.partition(" ")
                if txid == self._txid:
                    ends.pop(holder, None)
        self._waited = True
