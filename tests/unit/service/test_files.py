"""Tag lookups' answers kept beside the embedded header cache: the same lookup again is not
computed again, and no kept answer outlives a commit of any process (a delete above all)."""

from __future__ import annotations

from collections.abc import Iterator
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


@pytest.fixture
def two_processes(tmp_path: Path) -> Iterator[tuple[ServiceContext, ServiceContext]]:
    """Two contexts on one data directory, as two worker processes have."""
    first = _context(tmp_path / "data")
    second = _context(tmp_path / "data")
    yield first, second
    first.close()
    second.close()


def _store(ctx: ServiceContext, tmp_path: Path, name: str = "CT_small.dcm") -> str:
    path = tmp_path / f"{name}.{len(list(tmp_path.iterdir()))}"
    path.write_bytes(copy_with_new_uid(data_file(name)))
    file_id = ingest_path(ctx, path).record.file_id
    # A server process has read headers before; its kept connection lets a lookup read now.
    ctx.index.headers.read(file_id)
    return file_id


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many times the answers are computed (not taken from the cache)."""
    computed = [0]
    real = files_service._answers

    def counted(*args: Any) -> Any:
        computed[0] += 1
        return real(*args)

    monkeypatch.setattr(files_service, "_answers", counted)
    return computed


def test_the_same_lookup_again_is_answered_from_the_cache(
    two_processes: tuple[ServiceContext, ServiceContext],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, _ = two_processes
    file_id = _store(ctx, tmp_path)
    computed = _counting(monkeypatch)
    base = _BASE.format(file_id)
    first = files_service.get_attributes_now(ctx, file_id, ["(0010,0010)"], base)
    assert first is not None and first[0]["value"] == "CompressedSamples^CT1"
    again = files_service.get_attributes_now(ctx, file_id, ["(0010,0010)"], base)
    assert again is first and computed == [1]
    # Other selectors, or another base for bulk data URIs, are other answers.
    other = files_service.get_attributes_now(ctx, file_id, ["PatientID"], base)
    assert other is not None and other[0]["keyword"] == "PatientID" and computed == [2]
    pixels = files_service.get_attributes_now(ctx, file_id, ["PixelData"], base)
    proxied = files_service.get_attributes_now(ctx, file_id, ["PixelData"], "/prefix" + base)
    assert pixels is not None and proxied is not None and computed == [4]
    assert pixels[0]["value"]["bulk_data_uri"] == base + "/7FE00010"
    assert proxied[0]["value"]["bulk_data_uri"] == "/prefix" + base + "/7FE00010"


@pytest.mark.anyio
async def test_the_asgi_way_shares_the_kept_answers(
    two_processes: tuple[ServiceContext, ServiceContext],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx, _ = two_processes
    file_id = _store(ctx, tmp_path)
    computed = _counting(monkeypatch)
    base = _BASE.format(file_id)
    first = await files_service.get_attributes_async(ctx, file_id, ["PatientName"], base)
    again = files_service.get_attributes_now(ctx, file_id, ["PatientName"], base)
    assert again is first and computed == [1]


def test_a_kept_answer_is_dropped_by_a_delete_in_another_process(
    two_processes: tuple[ServiceContext, ServiceContext], tmp_path: Path
) -> None:
    reader, writer = two_processes
    file_id = _store(writer, tmp_path)
    reader.index.headers.read(file_id)
    base = _BASE.format(file_id)
    assert files_service.get_attributes_now(reader, file_id, ["PatientName"], base)
    assert files_service.get_attributes_now(reader, file_id, ["PatientName"], base)
    files_service.delete_file(writer, file_id)
    with pytest.raises(FileNotFound):
        files_service.get_attributes_now(reader, file_id, ["PatientName"], base)


def test_any_commit_drops_the_kept_answers(
    two_processes: tuple[ServiceContext, ServiceContext],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader, writer = two_processes
    file_id = _store(writer, tmp_path)
    reader.index.headers.read(file_id)
    computed = _counting(monkeypatch)
    base = _BASE.format(file_id)
    first = files_service.get_attributes_now(reader, file_id, ["PatientName"], base)
    _store(writer, tmp_path, "MR_small.dcm")  # an unrelated upload
    again = files_service.get_attributes_now(reader, file_id, ["PatientName"], base)
    assert again == first and again is not first and computed == [2]


def test_failures_are_not_kept(
    two_processes: tuple[ServiceContext, ServiceContext], tmp_path: Path
) -> None:
    ctx, _ = two_processes
    file_id = _store(ctx, tmp_path)
    base = _BASE.format(file_id)
    too_many = ["PatientName"] * (ctx.settings.max_tags_per_request + 1)
    for _ in range(2):
        with pytest.raises(InvalidParameter):
            files_service.get_attributes_now(ctx, file_id, too_many, base)
        with pytest.raises(FileNotFound):
            files_service.get_attributes_now(ctx, "AAAAAAAAAAAAAAAAAAAAAA", ["PatientName"], base)


def test_without_a_header_cache_every_lookup_is_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _context(tmp_path / "data", header_cache_bytes=0)
    try:
        file_id = _store(ctx, tmp_path)
        computed = _counting(monkeypatch)
        base = _BASE.format(file_id)
        first = files_service.get_attributes_now(ctx, file_id, ["PatientName"], base)
        again = files_service.get_attributes_now(ctx, file_id, ["PatientName"], base)
        assert again == first and again is not first and computed == [2]
    finally:
        ctx.close()
