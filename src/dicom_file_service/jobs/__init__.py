"""Background rendering: the queue behind ``PrerenderQueue``; ``open_prerender_queue`` picks one.

PostgreSQL gets procrastinate (durable, many workers on many hosts); the embedded default an
outbox table drained by threads of the service itself.
"""

from __future__ import annotations

from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.jobs.base import Handler, PrerenderQueue
from dicom_file_service.jobs.outbox import OutboxQueue
from dicom_file_service.jobs.procrastinate_queue import ProcrastinateQueue

__all__ = ["Handler", "OutboxQueue", "PrerenderQueue", "ProcrastinateQueue", "open_prerender_queue"]


def open_prerender_queue(database_url: str, index: IndexDatabase) -> PrerenderQueue:
    if database_url.startswith(("postgresql", "postgres")):
        return ProcrastinateQueue(database_url)
    return OutboxQueue(index)
