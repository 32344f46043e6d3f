"""Reading a stored file that is deleted meanwhile.

pydicom reads large values late, reopening the file by its name; if a delete removed the file
in between, that read fails with an OSError although the open file is still readable. That
is a file deleted meanwhile (404), not a broken file (422): the bytes were validated at ingest.
"""

from __future__ import annotations

from dicom_file_service.errors import FileNotFound, ServiceError


def vanished(exc: OSError, otherwise: ServiceError) -> ServiceError:
    """FileNotFound for an OSError that says the stored file is gone, else ``otherwise`` (a
    decoder's OSError on a bad stream stays the file's fault)."""
    if isinstance(exc, FileNotFoundError) or "original file" in str(exc):
        return FileNotFound("the stored file was deleted while it was read")
    return otherwise
