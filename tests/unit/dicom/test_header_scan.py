"""The compiled header scanner against pydicom's reading, differentially: every test file,
the imperfect files of the tolerance work and damaged copies of real files are parsed with
the scanner and without it, and the two outcomes (the parsed instance, or the refusal and its
words) must be the same. Where the scanner declines a file the outcome is the same by
construction; the tests also check that it declines little, so that they can fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dicom_file_service.dicom import parse as parse_module
from dicom_file_service.dicom.header_index import _encode_each, encode_header
from dicom_file_service.dicom.header_scan import AVAILABLE, scan_header
from dicom_file_service.dicom.parse import IN_MEMORY_BYTES, parse_file
from dicom_file_service.errors import ServiceError
from tests.damaged import damaged_copies
from tests.datafiles import all_candidate_files, data_file
from tests.imperfect_files import IMPERFECT

PREFIX = "/dicom-image/ID/bulkdata"


def test_the_scanner_is_built() -> None:
    """Installing the package compiles it (hatch_build.py); a machine with a C compiler
    that runs without it would be silently slower."""
    assert AVAILABLE


def _outcome(path: Path, *, scanner: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The parsed instance, or the refusal as (error class, message)."""
    with monkeypatch.context() as m:
        if not scanner:
            m.setattr(parse_module, "scan_header", lambda data, prefix: None)
        try:
            return parse_file(path, bulk_data_uri_prefix=PREFIX)
        except ServiceError as exc:
            return (type(exc).__name__, str(exc))


def _agrees(path: Path, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Whether the scanner read the file; fails the test where the two readings differ."""
    data = path.read_bytes()
    if len(data) > IN_MEMORY_BYTES or scan_header(data, PREFIX) is None:
        return False
    with_scanner = _outcome(path, scanner=True, monkeypatch=monkeypatch)
    with_pydicom = _outcome(path, scanner=False, monkeypatch=monkeypatch)
    assert with_scanner == with_pydicom, path.name
    return True


def test_every_test_file_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    scanned = [path.name for path in all_candidate_files() if _agrees(path, monkeypatch)]
    for common in ("CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "MR2_J2KR.dcm"):
        assert common in scanned
    assert len(scanned) >= 100, len(scanned)


@pytest.mark.parametrize("name", sorted(IMPERFECT))
def test_imperfect_files_read_the_same(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"{name}.dcm"
    path.write_bytes(IMPERFECT[name].make())
    _agrees(path, monkeypatch)


@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "SC_rgb.dcm", "liver_1frame.dcm"]
)
def test_damaged_copies_read_the_same(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = data_file(name).read_bytes()
    scanned = 0
    for i, data in enumerate(damaged_copies(original, seed=len(name), count=300)):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(data)
        scanned += _agrees(path, monkeypatch)
    assert scanned >= 50, scanned  # most damage leaves a header the scanner still reads


def test_declines_what_it_does_not_read_exactly() -> None:
    """Another encoding, a deflated data set, no preamble: pydicom's to read."""
    for name in ("MR_small_implicit.dcm", "MR_small_bigendian.dcm", "image_dfl.dcm"):
        assert scan_header(data_file(name).read_bytes(), PREFIX) is None, name
    ct = data_file("CT_small.dcm").read_bytes()
    assert scan_header(ct[128:], PREFIX) is None
    assert scan_header(ct, PREFIX) is not None


def test_spans_read_off_the_whole_header_are_those_written_element_by_element() -> None:
    """encode_header writes the header in one call and reads its spans off the bytes: the
    same bytes and spans as writing each element apart, on every test file's header and on
    values full of JSON's own punctuation."""
    headers = []
    for path in all_candidate_files():
        data = path.read_bytes()
        scanned = scan_header(data, "") if len(data) <= IN_MEMORY_BYTES else None
        if scanned is not None:
            headers.append(scanned.header)
    tricky = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": 'a"b\\\\"}],{[,'}]},
        "00081030": {"vr": "LO", "Value": ["}", "]", ",", '\\"', None]},
        "00400275": {"vr": "SQ", "Value": [{"0040A043": {"vr": "SQ", "Value": [{}]}}, {}]},
        "00181310": {"vr": "US", "Value": [0, 512, 512, 0]},
        "00291010": {"vr": "OB", "InlineBinary": "AAE="},
        "0011abcd": {"vr": "LO", "Value": ["lower-case hex"]},
    }
    headers += [tricky, {}, {"00080018": {"vr": "UI"}}]
    assert len(headers) >= 100
    for header in headers:
        assert encode_header(header) == _encode_each(header, sorted(header))
