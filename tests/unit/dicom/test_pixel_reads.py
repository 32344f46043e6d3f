"""What decoding a frame reads of a file read by ranges (as from S3): encapsulated pixel data
without a frame table in one read, not item by item and twice."""

from __future__ import annotations

import io

import pytest

from dicom_file_service.dicom import pixels
from dicom_file_service.dicom.render import RenderOptions, render_png
from dicom_file_service.storage.ranged_reader import BLOCK, RangedReader
from tests.datafiles import data_file

LIMITS = {"max_pixels": 10**8, "max_bytes": 10**9}


def _ranged(data: bytes) -> RangedReader:
    return RangedReader(lambda start, end: data[start:end], len(data))


@pytest.mark.parametrize("name", ["MR2_J2KR.dcm", "RG3_J2KR.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm"])
def test_one_frame_of_several_fragments_is_one_read_of_its_items(name: str) -> None:
    data = data_file(name).read_bytes()
    reader = _ranged(data)
    png = render_png(reader, RenderOptions(), **LIMITS)
    assert png == render_png(io.BytesIO(data), RenderOptions(), **LIMITS)
    assert reader.requests <= 3, reader.requests  # the header's block(s), then the items
    assert reader.bytes_fetched <= len(data) + BLOCK, (reader.bytes_fetched, len(data))


def test_items_beyond_the_bound_are_read_as_pydicom_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memory stays bounded: past ``ITEMS_IN_MEMORY`` the reads are pydicom's own."""
    data = data_file("MR2_J2KR.dcm").read_bytes()
    monkeypatch.setattr(pixels, "ITEMS_IN_MEMORY", 64 * 1024)
    reader = _ranged(data)
    png = render_png(reader, RenderOptions(), **LIMITS)
    assert png == render_png(io.BytesIO(data), RenderOptions(), **LIMITS)
    assert reader.requests > 3
