"""The schema's migrations, applied once before anything serves.

Kept apart from the service context so that ``serve``'s parent process, which only migrates
and supervises, does not import what answering requests needs (pydicom, NumPy, the routes):
a second of every start, before the workers and the DICOM listener begin theirs.
"""

from __future__ import annotations

from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.jobs import open_prerender_queue
from dicom_file_service.settings import Settings


def upgrade_schema(settings: Settings) -> None:
    """Apply the migrations (the index's and the job queue's) once, before the workers start,
    so that workers starting together never race on the schema."""
    url = settings.resolved_database_url()
    index = IndexDatabase(url)
    try:
        index.upgrade()
        open_prerender_queue(url, index).prepare()
    finally:
        index.close()
