"""What the use cases return: plain data, shaped into JSON by the routes and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dicom_file_service.index.repository import InstanceRecord

__all__ = ["IngestResult", "InstanceRecord", "file_summary"]


def file_summary(record: InstanceRecord) -> dict[str, Any]:
    """The fields of the upload answer (README, "Usage"), also the items of the listing."""
    return {
        "file_id": record.file_id,
        "sop_instance_uid": record.sop_instance_uid,
        "series_instance_uid": record.series_instance_uid,
        "study_instance_uid": record.study_instance_uid,
        "sop_class_uid": record.sop_class_uid,
        "transfer_syntax_uid": record.transfer_syntax_uid,
        "size": record.size,
        "sha256": record.sha256,
        "warnings": list(record.warnings),
    }


@dataclass(frozen=True)
class IngestResult:
    record: InstanceRecord
    created: bool  # False: byte-identical content was already stored under this id
    replaced_file_id: str | None = None  # set when ?overwrite=true replaced another instance
    warnings: tuple[str, ...] = ()  # what was odd about the file but did not stop it
