"""DICOM files made by the tests: copies of real files with new identities, broken files."""

from __future__ import annotations

import io
import sys
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
    """CT_small with a Content Sequence nested ``depth`` levels deep (a hostile file)."""
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    inner = Dataset()
    inner.CodeValue = "X"
    for _ in range(depth):
        outer = Dataset()
        outer.ContentSequence = Sequence([inner])
        inner = outer
    ds.ContentSequence = inner.ContentSequence
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20 * depth + 1000))  # pydicom writes recursively
    try:
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
    finally:
        sys.setrecursionlimit(limit)
    return buf.getvalue()
