"""The deflate-bomb guard's shortcut: a file is passed without reading its meta group through
pydicom only when the group cannot name the deflated syntax."""

from __future__ import annotations

import io

import pytest
from pydicom.filereader import _read_file_meta_info

from dicom_file_service.dicom.deflate_guard import (
    _META_SCAN_BYTES,
    _may_name_deflated,
    refuse_deflate_bombs,
)
from dicom_file_service.dicom.elements import DEFLATED
from dicom_file_service.errors import InvalidDicom
from tests.api.dicom_factory import deflate_bomb
from tests.datafiles import all_candidate_files


def _meta_syntax(data: bytes) -> str | None:
    """The transfer syntax pydicom reads from the file meta group (None: it reads none)."""
    try:
        meta = _read_file_meta_info(io.BytesIO(data[132:]))
    except Exception:
        return None
    return str(meta.get("TransferSyntaxUID", "")) or None


def test_every_file_whose_meta_names_the_deflated_syntax_is_looked_at() -> None:
    """Differential, over every test file with a preamble: never False where pydicom reads
    the deflated syntax, and False for most others (the shortcut does its work)."""
    deflated = skipped = kept = 0
    for path in all_candidate_files():
        data = path.read_bytes()
        if len(data) < 132 or data[128:132] != b"DICM":
            continue
        answer = _may_name_deflated(data[132 : 132 + _META_SCAN_BYTES])
        if _meta_syntax(data) == DEFLATED:
            deflated += 1
            assert answer, path.name
        elif answer:
            kept += 1
        else:
            skipped += 1
    assert deflated >= 1
    assert skipped > 10 * kept, (skipped, kept)


@pytest.mark.parametrize(
    "head",
    [
        b"\x02\x00\x10\x00UI\x16\x00" + DEFLATED.encode(),  # no group length, then the syntax
        b"\x02\x00\x10\x00UI\x17\x00" + DEFLATED.encode() + b"\x00",  # padded
        b"\x02\x00\x01\x00OB\x00\x00\xff\xff\xff\xff",  # undefined length: not followed
        b"\x02\x00\x00\x00\x04\x00\x00\x00\x10\x00\x00\x00",  # implicit VR: not followed
        b"\x02\x00\x01\x00OB\x00\x00\x00\x10\x00\x00",  # a value past the scanned bytes
    ],
)
def test_what_the_walk_cannot_rule_out_goes_to_the_full_read(head: bytes) -> None:
    assert _may_name_deflated(head)


def test_a_group_that_ends_without_the_deflated_syntax_is_passed() -> None:
    explicit = b"\x02\x00\x10\x00UI\x14\x00" + b"1.2.840.10008.1.2.1\x00"
    assert not _may_name_deflated(explicit + b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100")


def test_a_bomb_is_still_refused() -> None:
    bomb = deflate_bomb(256 * 1024 * 1024)
    with pytest.raises(InvalidDicom, match="inflates to more than"):
        refuse_deflate_bombs(io.BytesIO(bomb), len(bomb), 64 * 1024 * 1024)
