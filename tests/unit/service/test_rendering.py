"""The rendering cache never outlives its file, even when a delete races a render."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import FileNotFound
from dicom_file_service.service import files as files_service
from dicom_file_service.service import rendering
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.ingest import ingest_path
from dicom_file_service.settings import Settings
from tests.api.dicom_factory import copy_with_new_uid
from tests.datafiles import data_file


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ServiceContext]:
    context = ServiceContext.create(Settings(data_dir=tmp_path / "data"))
    yield context
    context.close()


def _stored(ctx: ServiceContext, tmp_path: Path) -> str:
    path = tmp_path / "ct.dcm"
    path.write_bytes(copy_with_new_uid(data_file("CT_small.dcm")))
    return ingest_path(ctx, path).record.file_id


def test_render_is_cached_then_served_from_the_cache(ctx: ServiceContext, tmp_path: Path) -> None:
    file_id = _stored(ctx, tmp_path)
    first = rendering.render_blocking(ctx, file_id, RenderOptions())
    assert first.data is not None
    assert first.data.startswith(b"\x89PNG")
    cached = rendering.cached_rendering(ctx, file_id, RenderOptions())
    assert cached == first.data

    def no_second_render(*_a: object, **_k: object) -> bytes:
        raise AssertionError("a cached rendering was rendered again")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rendering, "render_png", no_second_render)
        again = rendering.render_blocking(ctx, file_id, RenderOptions())
    assert again.data == first.data


def test_a_delete_during_a_render_leaves_no_cached_rendering(
    ctx: ServiceContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_id = _stored(ctx, tmp_path)
    real = rendering.render_png

    def render_while_deleted(source: object, options: RenderOptions, *, max_pixels: int) -> bytes:
        png = real(source, options, max_pixels=max_pixels)  # type: ignore[arg-type]
        files_service.delete_file(ctx, file_id)  # lands between the render and the cache write
        return png

    monkeypatch.setattr(rendering, "render_png", render_while_deleted)
    with pytest.raises(FileNotFound):
        rendering.render_blocking(ctx, file_id, RenderOptions())
    assert rendering.cached_rendering(ctx, file_id, RenderOptions()) is None
