"""De-identified copies of DICOM files (``dicom.deid``), under the archive's key.

The key is ``DICOM_FS_DEID_SECRET``, else one made once and kept in ``<data_dir>/deid.key``
(as the signing key is): the same key must serve every request and every instance of the
service, or pseudonyms of one subject would differ between copies.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.errors import InvalidDicomError

from dicom_file_service.dicom.deid.engine import Excluded, Request, deidentify
from dicom_file_service.dicom.deid.profile import table_e1_1
from dicom_file_service.dicom.deid.pseudonyms import Pseudonyms
from dicom_file_service.service.signing import kept_key
from dicom_file_service.settings import Settings


def deid_key(settings: Settings) -> bytes:
    if settings.deid_secret is not None:
        return settings.deid_secret.get_secret_value().encode()
    return kept_key(settings.data_dir / "deid.key")


@dataclass(frozen=True)
class Copy:
    """One file de-identified: the copy's bytes and SOP Instance UID, or why there is none."""

    source: Path
    data: bytes | None = None
    sop_instance_uid: str | None = None
    excluded: str | None = None


def deidentify_file(path: Path, request: Request, pseudonyms: Pseudonyms) -> Copy:
    """The de-identified Part 10 bytes of the file at ``path`` (its Pixel Data unchanged)."""
    out = io.BytesIO()
    copy = deidentify_to(path, out, request, pseudonyms)
    return dataclasses.replace(copy, data=out.getvalue()) if copy.excluded is None else copy


def deidentify_to(
    path: Path, out: Path | BinaryIO, request: Request, pseudonyms: Pseudonyms
) -> Copy:
    """The de-identified copy of the file at ``path`` written to ``out`` (a path: the bytes
    never come back whole through memory, whatever the file's size); ``Copy.data`` is
    None."""
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        return Copy(path, excluded=f"not a readable DICOM file: {exc}")
    if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
        return Copy(path, excluded="no SOP Class or SOP Instance UID")
    try:
        deidentify(ds, request, pseudonyms, table_e1_1())
    except Excluded as exc:
        return Copy(path, excluded=str(exc))
    ds.save_as(out, enforce_file_format=True)
    return Copy(path, None, str(ds.SOPInstanceUID))
