"""Tag lookups' answers kept beside the embedded header cache: the same lookup again is not
computed again, and no kept answer outlives a commit of any process (a delete above all)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dicom_file_service.errors import FileNotFound, InvalidParameter
from dicom_file_service.service import files as files_service
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.ingest import ingest_path
from dicom_file_service.settings import Settings
from tests.api.dicom_factory import copy_with_new_uid
from tests.datafiles import data_file

_BASE = "http://archive/dicom-image/{}/bulk"


def _context(data_dir: Path, **settings: Any) -> ServiceContext:
    return ServiceContext.create(Settings(data_dir=data_dir, **settings))


@dataclass
class Stored:
    """A file stored by one process (``writer``) whose header another (``reader``) has read,
    as a worker has; ``computed``: how many times the answers were not taken from a cache."""

    reader: ServiceContext
    writer: ServiceContext
    file_id: str
    base: str
    computed: list[int]

    def lookup(self, *selectors: str, base: str | None = None) -> Any:
        found = files_service.get_attributes_now(
            self.reader, self.file_id, list(selectors), base or self.base
        )
        assert found is not None  # the embedded index reads at once
        return found


@pytest.fixture
def stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stored]:
    """Two contexts on one data directory, as two worker processes have."""
    reader, writer = _context(tmp_path / "data"), _context(tmp_path / "data")
    file_id = _store(writer, tmp_path)
    # A server process has read headers before; its kept connection lets a lookup read now.
    reader.index.headers.read(file_id)
    yield Stored(reader, writer, file_id, _BASE.format(file_id), _counting(monkeypatch))
    reader.close()
    writer.close()


def _store(ctx: ServiceContext, tmp_path: Path, name: str = "CT_small.dcm") -> str:
    path = tmp_path / f"{name}.{len(list(tmp_path.iterdir()))}"
    path.write_bytes(copy_with_new_uid(data_file(name)))
    return ingest_path(ctx, path).record.file_id


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the answers are computed (not taken from the cache)."""
    computed = [0]
    real = files_service._answers

    def counted(*args: Any) -> Any:
        computed[0] += 1
        return real(*args)

    monkeypatch.setattr(files_service, "_answers", counted)
    return computed


def test_the_same_lookup_again_is_answered_from_the_cache(stored: Stored) -> None:
    first = stored.lookup("(0010,0010)")
    assert first[0]["value"] == "CompressedSamples^CT1"
    assert stored.lookup("(0010,0010)") is first and stored.computed == [1]
    # Other selectors, or another base for bulk data URIs, are other answers.
    assert stored.lookup("PatientID")[0]["keyword"] == "PatientID"
    assert stored.computed == [2]
    pixels = stored.lookup("PixelData")
    proxied = stored.lookup("PixelData", base="/prefix" + stored.base)
    assert stored.computed == [4]
    assert pixels[0]["value"]["bulk_data_uri"] == stored.base + "/7FE00010"
    assert proxied[0]["value"]["bulk_data_uri"] == "/prefix" + stored.base + "/7FE00010"


@pytest.mark.anyio
async def test_the_asgi_way_shares_the_kept_answers(stored: Stored) -> None:
    first = await files_service.get_attributes_async(
        stored.reader, stored.file_id, ["PatientName"], stored.base
    )
    assert stored.lookup("PatientName") is first and stored.computed == [1]


def test_a_kept_answer_is_dropped_by_a_delete_in_another_process(stored: Stored) -> None:
    assert stored.lookup("PatientName") is stored.lookup("PatientName")
    files_service.delete_file(stored.writer, stored.file_id)
    with pytest.raises(FileNotFound):
        stored.lookup("PatientName")


def test_any_commit_drops_the_kept_answers(stored: Stored, tmp_path: Path) -> None:
    first = stored.lookup("PatientName")
    _store(stored.writer, tmp_path, "MR_small.dcm")  # an unrelated upload
    again = stored.lookup("PatientName")
    assert again == first and again is not first and stored.computed == [2]


def test_failures_are_not_kept(stored: Stored) -> None:
    too_many = ["PatientName"] * (stored.reader.settings.max_tags_per_request + 1)
    for _ in range(2):
        with pytest.raises(InvalidParameter):
            stored.lookup(*too_many)
        with pytest.raises(FileNotFound):
            files_service.get_attributes_now(
                stored.reader, "AAAAAAAAAAAAAAAAAAAAAA", ["PatientName"], stored.base
            )


def test_without_a_header_cache_every_lookup_is_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _context(tmp_path / "data", header_cache_bytes=0)
    try:
        file_id = _store(ctx, tmp_path)
        ctx.index.headers.read(file_id)
        computed = _counting(monkeypatch)
        base = _BASE.format(file_id)
        first = files_service.get_attributes_now(ctx, file_id, ["PatientName"], base)
        again = files_service.get_attributes_now(ctx, file_id, ["PatientName"], base)
        assert again == first and again is not first and computed == [2]
    finally:
        ctx.close()
