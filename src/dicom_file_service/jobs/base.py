"""The background-rendering queue boundary.

A job is "render the default PNG and thumbnail of file X". It is enqueued on the caller's
connection, inside the transaction that inserts the file's index row, so that a crash between
the commit and the enqueue cannot lose it. What a job does is the service's business: the
queue runs a handler it is given (``file_id -> None``), retrying it when it fails.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection

Handler = Callable[[str], None]


class PrerenderQueue(Protocol):
    def enqueue(self, conn: Connection, file_id: str) -> None:
        """Add a job in the caller's open transaction (it exists once that commits)."""
        ...

    def committed(self) -> None:
        """A transaction that enqueued has committed: wake a worker now rather than later."""
        ...

    def start_in_process(self, handler: Handler) -> None:
        """Run jobs inside this service process, if this queue does that (embedded mode)."""
        ...

    def run_worker(self, handler: Handler) -> None:
        """Run jobs until SIGTERM/SIGINT (the ``worker`` command); blocks."""
        ...

    def prepare(self) -> None:
        """Create what the queue needs in the database (idempotent, safe to run in parallel)."""
        ...

    def pending(self) -> int:
        """Jobs waiting to be run (the queue depth operators watch)."""
        ...

    def close(self) -> None: ...
