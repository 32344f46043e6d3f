"""The pixel description read without the rest of the header, against pydicom's whole read,
differentially: on every test file, on files with nested sequences of undefined length before
group (0028) and on damaged copies, the part read must be exactly the whole header's groups
(0028) on, with the file left at the same place; and every rendering must come out the same,
byte for byte or refused in the same words. The tests also check that the fast read declines
little, so that they can fail."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from dicom_file_service.dicom import pixels
from dicom_file_service.dicom.pixel_header import read_pixel_header
from dicom_file_service.dicom.render import RenderOptions, render_png
from dicom_file_service.errors import FileNotFound, ServiceError
from tests.damaged import damaged_copies
from tests.datafiles import all_candidate_files, data_file

MAX_PIXELS = 64_000_000
COMMON = ("CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "MR2_J2KR.dcm", "RG1_UNCR.dcm")


def _whole(data: bytes) -> tuple[Dataset, int] | None:
    f = io.BytesIO(data)
    try:
        ds = pydicom.dcmread(f, stop_before_pixels=True, force=True, defer_size=64 * 1024)
    except Exception:
        return None
    return ds, f.tell()


def _same_as_whole(data: bytes) -> bool:
    """Whether the fast read took the file; fails the test where it differs from the
    whole header's groups (0028) on."""
    f = io.BytesIO(data)
    fast = read_pixel_header(f)
    if fast is None:
        return False
    whole = _whole(data)
    assert whole is not None, "read fast what pydicom cannot read at all"
    ds, at = whole
    assert f.tell() == at
    assert fast.file_meta == ds.file_meta
    in_order = list(ds.keys())  # as read: the file's order
    first = next((i for i, tag in enumerate(in_order) if tag.group >= 0x0028), len(in_order))
    expected = in_order[first:]
    assert list(fast.keys()) == expected
    for tag in expected:  # as read, before any conversion: the same bytes at the same place
        assert fast.get_item(tag) == ds.get_item(tag), tag
    return True


def test_every_test_file_reads_the_same() -> None:
    taken = [p.name for p in all_candidate_files() if _same_as_whole(p.read_bytes())]
    for common in COMMON:
        assert common in taken
    assert len(taken) >= 100, len(taken)


def _outcome(path: Path, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(pixels, "read_pixel_header", lambda f: None)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's on odd values: the same both ways
                return render_png(path, RenderOptions(), max_pixels=MAX_PIXELS)
        except ServiceError as exc:
            return (type(exc).__name__, str(exc))


def test_every_test_file_renders_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline reads nothing before group (0028): the first frame of every test file
    (up to 8 MB) renders to the same bytes, or is refused in the same words, both ways."""
    rendered = 0
    for path in all_candidate_files():
        if path.stat().st_size > 8_000_000:
            continue
        with path.open("rb") as f:
            if read_pixel_header(f) is None:
                continue
        fast = _outcome(path, True, monkeypatch)
        assert fast == _outcome(path, False, monkeypatch), path.name
        rendered += isinstance(fast, bytes)
    assert rendered >= 80, rendered


def _with_undefined_lengths(depth: int) -> bytes:
    """CT_small with a Referenced Image Sequence (0008,1140) of undefined length before group
    (0028), its items of undefined length too, nested ``depth`` deep, beside one of defined
    length."""
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = generate_uid()
    for _ in range(depth):
        outer = Dataset()
        outer.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        outer.ReferencedImageSequence = Sequence([inner, Dataset()])
        inner = outer
    ds.ReferencedImageSequence = inner.ReferencedImageSequence
    ds.SourceImageSequence = Sequence([Dataset()])  # (0008,2112), lengths defined
    _undefined(ds, "ReferencedImageSequence")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _undefined(ds: Dataset, keyword: str) -> None:
    element = ds[keyword]
    element.is_undefined_length = True
    for item in element.value:
        item.is_undefined_length_sequence_item = True
        if keyword in item:
            _undefined(item, keyword)


@pytest.mark.parametrize("depth", [1, 2, 10, 40])
def test_sequences_of_undefined_length_are_walked(depth: int) -> None:
    data = _with_undefined_lengths(depth)
    assert b"\xfe\xff\xdd\xe0" in data  # a sequence delimiter: undefined lengths indeed
    assert _same_as_whole(data)


def test_nesting_deeper_than_any_iod_is_left_to_pydicom() -> None:
    assert read_pixel_header(io.BytesIO(_with_undefined_lengths(70))) is None


_PIXEL_MODULE = ("Rows", "Columns", "BitsAllocated", "PixelRepresentation", "SamplesPerPixel")


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR2_J2KR.dcm", "undefined lengths"])
def test_damaged_copies_describe_the_same_pixels(name: str, tmp_path: Path) -> None:
    """A damaged copy read fast describes its pixels as the whole read does (where damage
    made a tag of group (0028) on out of an earlier one, the read starts there, as the whole
    read's groups (0028) on would), and renders or is refused with a problem, never an
    unexpected error. Damage before group (0028) that pydicom refuses and the scan passes
    over leaves the pixels' description intact, and the image renders."""
    data = (
        _with_undefined_lengths(3) if name == "undefined lengths" else data_file(name).read_bytes()
    )
    taken = 0
    for i, copy in enumerate(damaged_copies(data, seed=len(name), count=150)):
        fast = read_pixel_header(io.BytesIO(copy))
        if fast is None:
            continue
        taken += 1
        whole = _whole(copy)
        if whole is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # damaged values: pydicom warns of them
                for keyword in _PIXEL_MODULE:
                    assert fast.get(keyword) == whole[0].get(keyword), (i, keyword)
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(copy)
        outcome = _outcome(path, True, pytest.MonkeyPatch())
        assert isinstance(outcome, (bytes, tuple)), i
    assert taken >= 20, taken


class _Counting(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        out = super().read(size)
        self.bytes_read += len(out)
        return out


def test_a_deflated_file_is_left_to_pydicom_before_anything_is_inflated() -> None:
    """pydicom inflates the whole data set as it reads the file meta: the syntax is read
    off the first bytes instead, so the whole read that follows inflates it only once."""
    f = _Counting(data_file("image_dfl.dcm").read_bytes())
    assert read_pixel_header(f) is None
    assert f.bytes_read <= 1024


@pytest.mark.parametrize("name", ["CT_small.dcm", "image_dfl.dcm"])  # fast read; whole read
@pytest.mark.parametrize("look", [1, 2, 3])
def test_a_file_deleted_while_pydicom_looks_it_up_is_read_or_not_found(
    name: str, look: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pydicom looks an open file up by its name (whether it exists, then its modification
    time) each time it makes a data set of it: a delete between the two, racing a
    rendering, leaves the header read from the open file or a file not found (404), never
    an unexpected error."""
    path = tmp_path / name
    path.write_bytes(data_file(name).read_bytes())
    exists = os.path.exists
    looks = 0

    def deleted_after_a_look(p: Any) -> bool:
        nonlocal looks
        found = exists(p)
        if str(p) == str(path):
            looks += 1
            if looks == look:
                path.unlink()
        return found

    with path.open("rb") as f:
        monkeypatch.setattr(pydicom.dataset.os.path, "exists", deleted_after_a_look)
        try:
            ds = pixels.read_header(f)
        except FileNotFound:
            return
    assert ds.Rows > 0
