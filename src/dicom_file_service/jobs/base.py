"""The background queue boundary.

It carries two tasks. A prerender job is "render the default PNG and thumbnail of file X",
enqueued on the caller's connection inside the transaction that inserts the file's index row,
so that a crash between the commit and the enqueue cannot lose it. A client's job (a row of
the ``jobs`` table: sending or retrieving over the DICOM network, say) is enqueued by its id in
the transaction that inserts that row. What either does is the service's business: the queue
runs the handler it is given (``id -> None``), retrying it when it raises.
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

    def enqueue_job(self, conn: Connection, job_id: str) -> None:
        """Queue the ``jobs`` row ``job_id`` inserted in the caller's open transaction."""
        ...

    def committed(self) -> None:
        """A transaction that enqueued has committed: wake a worker now rather than later."""
        ...

    def start_in_process(self, handler: Handler) -> None:
        """Run jobs inside this service process, if this queue does that (embedded mode)."""
        ...

    def start_jobs_in_process(self, job_handler: Handler) -> None:
        """Run the ``jobs`` rows' jobs in threads of this service process."""
        ...

    def run_worker(self, handler: Handler | None, job_handler: Handler | None = None) -> None:
        """Run prerender jobs (``handler``) and the ``jobs`` rows' (``job_handler``) until
        SIGTERM/SIGINT (the ``worker`` command); blocks."""
        ...

    def prepare(self) -> None:
        """Create what the queue needs in the database (idempotent, safe to run in parallel)."""
        ...

    def pending(self) -> int:
        """Jobs waiting to be run (the queue depth operators watch)."""
        ...

    def close(self) -> None: ...
