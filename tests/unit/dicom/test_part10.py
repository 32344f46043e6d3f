"""The Part 10 file made around a received data set: its file meta, the data set's bytes
unchanged or inflated, and the bound on what a deflated one inflates to."""

from __future__ import annotations

import io
import zlib

import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info

from dicom_file_service.dicom.part10 import (
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    data_set_chunks,
    data_set_offset,
    file_meta,
    stored_syntax,
)
from dicom_file_service.errors import InvalidDicom
from tests.datafiles import data_file

DEFLATED, EXPLICIT = "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.1"


def test_the_file_meta_names_the_instance_the_syntax_and_the_sender() -> None:
    original = data_file("CT_small.dcm").read_bytes()
    data_set = original[data_set_offset(io.BytesIO(original)) :]
    meta = file_meta("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", EXPLICIT, " MODALITY ")
    ds = pydicom.dcmread(io.BytesIO(meta + data_set))
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.4"
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert ds.file_meta.SourceApplicationEntityTitle == "MODALITY"
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.PatientName == "CompressedSamples^CT1"
    f = io.BytesIO(meta + data_set)
    assert (meta + data_set)[data_set_offset(f) :] == data_set
    assert f.tell() == 0  # left where it was


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "syntax", "title"),
    [
        ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4", EXPLICIT, "MODALITY"),
        ("1.2.840.10008.5.1.4.1.1.7", "1.2.3.45", "1.2.840.10008.1.2.4.50", "ODD"),
        ("1.2.840.10008.5.1.4.1.1.4", "2.25.1234567", "1.2.840.10008.1.2", None),
    ],
)
def test_the_file_meta_is_the_group_pydicom_writes(
    sop_class: str, sop_instance: str, syntax: str, title: str | None
) -> None:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if title:
        meta.SourceApplicationEntityTitle = title
    expected = io.BytesIO()
    expected.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(expected, meta, enforce_standard=True)  # type: ignore[arg-type]
    assert file_meta(sop_class, sop_instance, syntax, title) == expected.getvalue()


def test_a_file_without_a_preamble_has_its_data_set_at_zero() -> None:
    assert data_set_offset(io.BytesIO(b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100")) == 0


def test_a_deflated_data_set_is_kept_inflated() -> None:
    raw = data_file("image_dfl.dcm").read_bytes()
    deflated = raw[data_set_offset(io.BytesIO(raw)) :]
    inflated = b"".join(data_set_chunks(io.BytesIO(deflated), DEFLATED, max_inflated=1 << 20))
    assert inflated == zlib.decompress(deflated, -zlib.MAX_WBITS)
    assert stored_syntax(DEFLATED) == EXPLICIT
    assert stored_syntax(EXPLICIT) == EXPLICIT


def test_other_data_sets_pass_unchanged_in_chunks() -> None:
    data = bytes(range(256)) * 100
    chunks = list(data_set_chunks(io.BytesIO(data), EXPLICIT, max_inflated=1, chunk=1000))
    assert b"".join(chunks) == data and len(chunks) == 26


def test_a_deflate_bomb_is_refused_while_inflating() -> None:
    bomb = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    stream = bomb.compress(bytes(50 * 1024 * 1024)) + bomb.flush()
    with pytest.raises(InvalidDicom, match="inflates to more than"):
        b"".join(data_set_chunks(io.BytesIO(stream), DEFLATED, max_inflated=1024 * 1024))


def test_a_cut_deflate_stream_is_refused() -> None:
    raw = data_file("image_dfl.dcm").read_bytes()
    deflated = raw[data_set_offset(io.BytesIO(raw)) :]
    with pytest.raises(InvalidDicom, match="ends before"):
        b"".join(data_set_chunks(io.BytesIO(deflated[:100]), DEFLATED, max_inflated=1 << 20))
