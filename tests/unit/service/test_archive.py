"""The ZIP of a study as ``service.archive`` streams it: names safe on every file system,
unique in their folder; ZIP64 where sizes need it; an instance deleted before its turn left
out, one vanishing while read ending the archive short (never a whole-looking archive)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from dicom_file_service.errors import BlobNotFound
from dicom_file_service.service.archive import Member, safe_name, unique, zip_stream
from dicom_file_service.service.records import InstanceRecord


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Doe^John", "Doe John"),
        ("../../etc/passwd", "_._etc_passwd"),
        ("..", "fallback"),
        (" . ", "fallback"),
        ('a\\b/c:d*e?f"g<h>i|j', "a_b_c_d_e_f_g_h_i_j"),
        ("line\nbreak\ttab\x00nul\u202eoverride", "line break tab nul override"),
        ("trailing dots...", "trailing dots"),
        ("CON", "_CON"),
        ("nul.txt", "_nul.txt"),
        ("COM1", "_COM1"),
        ("CONSOLE", "CONSOLE"),
        ("Cafe\u0301", "Caf\u00e9"),  # NFC: one code point, as every OS shows it
        ("", "fallback"),
    ],
)
def test_safe_name(text: str, expected: str) -> None:
    assert safe_name(text, "fallback") == expected


def test_safe_names_are_bounded_in_characters_and_utf8_bytes() -> None:
    assert len(safe_name("x" * 500, "f")) == 64
    cjk = safe_name("\u80f8" * 100, "f")
    assert len(cjk.encode()) <= 128 and cjk == "\u80f8" * 42
    assert safe_name("a" * 63 + " .b", "f") == "a" * 63  # no trailing space after cutting


def test_unique_names_differ_in_more_than_case() -> None:
    taken: set[str] = set()
    assert [unique(n, taken, ".dcm") for n in ("A", "a", "A", "b")] == [
        "A.dcm",
        "a_2.dcm",
        "A_3.dcm",
        "b.dcm",
    ]


def _record(n: int, size: int) -> InstanceRecord:
    return InstanceRecord(
        seq=n,
        file_id=f"f{n}",
        sop_instance_uid=f"1.2.{n}",
        series_instance_uid="1.2",
        study_instance_uid="1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        patient_id=None,
        patient_name=None,
        modality=None,
        study_date=None,
        number_of_frames=1,
        size=size,
        sha256="0" * 64,
        blob_key=f"k{n}",
        created_at=1_700_000_000.0,
    )


class _Store:
    """Blobs by key, read in small chunks; a key in ``torn`` fails after its first chunk."""

    def __init__(self, blobs: dict[str, bytes], torn: frozenset[str] = frozenset()) -> None:
        self.blobs, self.torn = blobs, torn

    def iter_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if key not in self.blobs:
            raise BlobNotFound(key)
        data = self.blobs[key]

        def chunks() -> Iterator[bytes]:
            for at in range(0, len(data), 100):
                if at and key in self.torn:
                    raise BlobNotFound(key)
                yield data[at : at + 100]

        return chunks()


def _stream(blobs: dict[str, bytes], members: list[Member], **store: Any) -> bytes:
    ctx: Any = SimpleNamespace(store=_Store(blobs, **store))
    first = ctx.store.iter_range(members[0].record.blob_key)
    return b"".join(zip_stream(ctx, members, first))


def test_members_are_the_bytes_and_a_deleted_one_is_left_out() -> None:
    blobs = {"k1": b"one" * 100, "k3": bytes(range(256)) * 3}
    members = [Member(f"s/x/{n}.dcm", _record(n, 300 + n)) for n in (1, 2, 3)]
    with zipfile.ZipFile(io.BytesIO(_stream(blobs, members))) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["s/x/1.dcm", "s/x/3.dcm"]  # 2 was deleted meanwhile
        assert archive.read("s/x/3.dcm") == blobs["k3"]


def test_a_file_vanishing_while_read_ends_the_archive_short() -> None:
    blobs = {"k1": b"a" * 250, "k2": b"b" * 250}
    members = [Member(f"{n}.dcm", _record(n, 250)) for n in (1, 2)]
    body = _stream(blobs, members, torn=frozenset({"k2"}))
    assert body.startswith(b"PK\x03\x04")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(body))


def test_zip64_where_a_size_needs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # zipfile's 4 GiB limit made small: the same code path as a 5 GiB file, in kilobytes.
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    blobs = {"k1": b"x" * 5000, "k2": b"y" * 10}
    members = [Member(f"{n}.dcm", _record(n, len(blobs[f"k{n}"]))) for n in (1, 2)]
    body = _stream(blobs, members)
    assert b"PK\x06\x06" in body  # the ZIP64 end of central directory record
    monkeypatch.undo()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.read("1.dcm") == blobs["k1"]
        assert archive.read("2.dcm") == blobs["k2"]
