"""When a study or series retrieve answers with a ZIP: ``application/zip`` before (by the
client's preference) anything the multipart answer would take, and only as stored."""

from __future__ import annotations

import pytest

from dicom_file_service.api.negotiation import wants_zip


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/zip", True),
        ("application/zip; transfer-syntax=*", True),
        ("application/zip; transfer-syntax=1.2.840.10008.1.2.4.50", False),
        ('multipart/related; type="application/dicom", application/zip', False),
        ('multipart/related; type="application/dicom"; q=0.5, application/zip', True),
        ('multipart/related; type="image/jpeg", application/zip', True),  # not ours anyway
        ("*/*, application/zip", False),
        ("application/zip; q=0, */*", False),
        ("application/*", False),
        (None, False),
    ],
)
def test_wants_zip(accept: str | None, expected: bool) -> None:
    assert wants_zip(accept) is expected
