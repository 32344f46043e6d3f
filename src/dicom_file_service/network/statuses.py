"""DIMSE statuses (PS3.7 Annex C, PS3.4 B.2.3 and C.4) as the handlers answer them."""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
NOT_AUTHORIZED = 0x0124  # "Refused: Not Authorized", a general status (PS3.7 C.5)
PROCESSING_FAILURE = 0x0110
IDENTIFIER_DOES_NOT_MATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000
MOVE_DESTINATION_UNKNOWN = 0xA801
OUT_OF_RESOURCES_MATCHES = 0xA701
WARNING_SUBOPERATIONS = 0xB000


def status(code: int, comment: str | None = None) -> Dataset:
    """A status with its (0000,0902) *Error Comment* (LO: at most 64 characters, one line)."""
    ds = Dataset()
    ds.Status = code
    if comment:
        ds.ErrorComment = " ".join(comment.split())[:64]
    return ds
