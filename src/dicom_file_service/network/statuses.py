"""DIMSE statuses (PS3.7 Annex C, PS3.4 B.2.3 and C.4) as the handlers answer them."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicom_file_service.dicom.stow import DATASET_DOES_NOT_MATCH_SOP_CLASS, PROCESSING_FAILURE

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
NOT_AUTHORIZED = 0x0124  # "Refused: Not Authorized", a general status (PS3.7 C.5)
IDENTIFIER_DOES_NOT_MATCH = DATASET_DOES_NOT_MATCH_SOP_CLASS  # 0xA900 in Q/R's words
UNABLE_TO_PROCESS = 0xC000
MOVE_DESTINATION_UNKNOWN = 0xA801


def status(code: int, comment: str | None = None) -> Dataset:
    """A status with its (0000,0902) *Error Comment* (LO: at most 64 characters, one line)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = " ".join(comment.split())[:64]
    return ds


__all__ = ["PROCESSING_FAILURE", "status"]
