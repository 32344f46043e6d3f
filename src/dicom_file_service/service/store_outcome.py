"""Storing instances for the doors that report each one's outcome instead of failing whole:
a STOW-RS part, and a C-STORE request of the DICOM network (``service.received``).

Each instance goes through ``ingest_staged``, the ingest of ``POST /dicom-image``; a refusal
is an outcome carrying its Failure Reason code (PS3.4 Annex GG.4 / PS3.18 Table 10.5.3-2,
the same codes C-STORE answers with), not an exception. What each door makes of the outcome
(a response dataset with RetrieveURLs, a DIMSE status) is that door's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicom_file_service.dicom.stow import (
    CANNOT_UNDERSTAND,
    DATASET_DOES_NOT_MATCH_SOP_CLASS,
    DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING,
    DUPLICATE_SOP_INSTANCE,
    OUT_OF_RESOURCES,
    PROCESSING_FAILURE,
    SOP_CLASS_NOT_SUPPORTED,
    TRANSFER_SYNTAX_NOT_SUPPORTED,
)
from dicom_file_service.errors import (
    DuplicateInstance,
    EmptyUpload,
    InvalidDicom,
    MissingIdentity,
    PayloadTooLarge,
    ServiceError,
    SopClassMismatch,
    SopClassNotSupported,
    TransferSyntaxNotSupported,
    UnsupportedMediaType,
)
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.ingest import ingest_staged
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.staging import StagedUpload


@dataclass(frozen=True)
class StoredOutcome:
    """An instance stored; ``warnings`` in words when it was kept despite its faults, with
    the Warning Reason code they amount to."""

    record: InstanceRecord
    warnings: tuple[str, ...] = ()

    @property
    def warning_reason(self) -> int | None:
        return DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING if self.warnings else None


@dataclass(frozen=True)
class FailedOutcome:
    """An instance refused, with its Failure Reason and what was wrong, in words."""

    sop_class_uid: str | None  # None: the part could not be read far enough to know
    sop_instance_uid: str | None
    reason: int
    detail: str


Outcome = StoredOutcome | FailedOutcome


def failure_reason(exc: ServiceError) -> int:
    """The Failure Reason code of a refusal."""
    if isinstance(exc, DuplicateInstance):
        return DUPLICATE_SOP_INSTANCE
    if isinstance(exc, SopClassMismatch):
        return DATASET_DOES_NOT_MATCH_SOP_CLASS
    if isinstance(exc, SopClassNotSupported):
        return SOP_CLASS_NOT_SUPPORTED
    if isinstance(exc, TransferSyntaxNotSupported):
        return TRANSFER_SYNTAX_NOT_SUPPORTED
    if isinstance(exc, PayloadTooLarge):
        return OUT_OF_RESOURCES
    if isinstance(exc, InvalidDicom | MissingIdentity | UnsupportedMediaType | EmptyUpload):
        return CANNOT_UNDERSTAND
    return PROCESSING_FAILURE  # what Orthanc answers for StudyMismatch too


def failed(exc: ServiceError) -> FailedOutcome:
    return FailedOutcome(exc.sop_class_uid, exc.sop_instance_uid, failure_reason(exc), exc.detail)


def store_instance(
    ctx: ServiceContext,
    staged: StagedUpload,
    *,
    study_instance_uid: str | None,
    sop_instance_uid: str | None = None,
) -> Outcome:
    """Ingest one staged instance (of the study named, if one is; the instance named, if one
    is); a refusal is an outcome."""
    try:
        result = ingest_staged(
            ctx,
            staged,
            study_instance_uid=study_instance_uid,
            one_of_many=True,
            sop_instance_uid=sop_instance_uid,
        )
    except ServiceError as exc:
        return failed(exc)
    return StoredOutcome(result.record, result.warnings)
