"""DICOM files made by the tests: copies of real files with new identities, broken files."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests.datafiles import data_file


def copy_with_new_uid(path: Path, **changes: str) -> bytes:
    """The file's bytes with a fresh SOP Instance UID (and any keyword=value changes)."""
    ds = pydicom.dcmread(path)
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    if "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = uid
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def without(path: Path, *keywords: str) -> bytes:
    """The file's bytes with the given attributes removed."""
    ds = pydicom.dcmread(path)
    for keyword in keywords:
        delattr(ds, keyword)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def changed_content(data: bytes, **changes: str) -> bytes:
    """Other bytes under the same SOP Instance UID (attributes changed as given)."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        setattr(ds, keyword, value)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def nested_sequences(depth: int) -> bytes:
    """CT_small with a Content Sequence nested ``depth`` levels deep (a hostile file).

    The nesting is encoded here, byte for byte as pydicom writes it:
    pydicom writes nested sequences recursively and in quadratic time (5 s for 2000)."""
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    placeholder = Dataset()
    placeholder.CodeValue = "PLACEHOLDR"
    ds.ContentSequence = Sequence([placeholder])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    nested = _code_value(b"X ")
    for _ in range(depth):
        nested = _sequence_of_one(nested)
    written = buf.getvalue()
    assert written.count(_sequence_of_one(_code_value(b"PLACEHOLDR"))) == 1
    return written.replace(_sequence_of_one(_code_value(b"PLACEHOLDR")), nested)


def _code_value(value: bytes) -> bytes:
    """(0008,0100) *Code Value*, SH, Explicit VR Little Endian."""
    return b"\x08\x00\x00\x01SH" + len(value).to_bytes(2, "little") + value


def _sequence_of_one(item: bytes) -> bytes:
    """(0040,A730) *Content Sequence* of one item, lengths defined, as pydicom writes it."""
    length = len(item).to_bytes(4, "little")
    return (
        b"\x40\x00\x30\xa7SQ\x00\x00"
        + (len(item) + 8).to_bytes(4, "little")
        + b"\xfe\xff\x00\xe0"
        + length
        + item
    )


def deflate_bomb(inflated_bytes: int) -> bytes:
    """A valid deflated DICOM file whose data set inflates to ``inflated_bytes`` and more
    (zeros in Pixel Data compress about a thousandfold); made without holding them."""
    import struct
    import zlib

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    del ds.PixelData
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Rows = ds.Columns = 1
    ds.NumberOfFrames = inflated_bytes // 2
    header = DicomBytesIO()
    header.is_little_endian, header.is_implicit_VR = True, False  # as inside the deflate
    write_dataset(header, ds)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = [deflater.compress(header.getvalue())]
    length = ds.NumberOfFrames * 2
    body.append(deflater.compress(struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OW", 0, length)))
    zeros = bytes(1024 * 1024)
    for _ in range(length // len(zeros)):
        body.append(deflater.compress(zeros))
    body.append(deflater.compress(bytes(length % len(zeros))))
    body.append(deflater.flush())
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    meta.write(b"\0" * 128 + b"DICM")
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    return meta.getvalue() + b"".join(body)
