"""The rendering cache never outlives its file, even when a delete races a render."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import FileNotFound
from dicom_file_service.service import files as files_service
from dicom_file_service.service import rendering
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.ids import instance_key
from dicom_file_service.service.ingest import ingest_path
from dicom_file_service.settings import Settings
from dicom_file_service.storage.ranged_reader import BLOCK
from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import new_bucket_name
from tests.datafiles import data_file
from tests.s3server import S3Server


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
    first = rendering.render_blocking(ctx, file_id, RenderOptions(), cache_later=False)
    assert first.data is not None
    assert first.data.startswith(b"\x89PNG")
    cached = ctx.renders.get(file_id, RenderOptions().cache_key())
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

    def render_while_deleted(source: object, options: RenderOptions, **kwargs: Any) -> bytes:
        png = real(source, options, **kwargs)  # type: ignore[arg-type]
        files_service.delete_file(ctx, file_id)  # lands between the render and the cache write
        return png

    monkeypatch.setattr(rendering, "render_png", render_while_deleted)
    with pytest.raises(FileNotFound):
        rendering.render_blocking(ctx, file_id, RenderOptions())
    assert ctx.renders.get(file_id, RenderOptions().cache_key()) is None


def _multiframe(tmp_path: Path, frames: int, *, compressed: bool) -> Path:
    """A ``frames``-frame 64 x 64 MONOCHROME2 file; RLE Lossless (one fragment a frame) when
    ``compressed``. Each frame's pixels are its own number, so a wrong frame shows."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7.2"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "OT"
    ds.Rows = ds.Columns = 64
    ds.NumberOfFrames = frames
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    arr = np.repeat(np.arange(1, frames + 1, dtype="<u2"), 64 * 64).reshape(frames, 64, 64)
    noise = np.random.default_rng(7).integers(0, 4096, size=(frames, 32, 64), dtype="<u2")
    arr[:, 32:, :] = noise  # the lower half incompressible: frames of a realistic size
    ds.PixelData = arr.tobytes()
    if compressed:
        from pydicom.encaps import encapsulate, generate_frames

        ds.compress(RLELossless, arr)
        # No Basic Offset Table (as many modalities write): only offsets captured at ingest
        # tell where frame N starts without walking the fragments before it.
        fragments = list(generate_frames(ds.PixelData, number_of_frames=frames))
        ds.PixelData = encapsulate(fragments, has_bot=False)
    path = tmp_path / f"multi-{frames}-{compressed}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("compressed", [False, True], ids=["native", "rle"])
def test_one_frame_of_a_file_in_s3_costs_the_header_and_that_frame(
    s3_server: S3Server, tmp_path: Path, compressed: bool
) -> None:
    """Frame N of a multi-frame file in S3 is read by ranged GETs of the header and that
    frame's bytes (offsets captured at ingest), never by fetching the whole object."""
    env = s3_server.env(new_bucket_name(), "frames")
    env["DICOM_FS_LOCAL_COPY_BYTES"] = "0"  # the store's own reads, not a local copy's
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = Settings(data_dir=tmp_path / "data")
    context = ServiceContext.create(settings)
    try:
        source = _multiframe(tmp_path, 300, compressed=compressed)
        file_id = ingest_path(context, source).record.file_id
        size = source.stat().st_size
        fetched: list[int] = []
        real = context.store.read_range

        def counting(key: str, start: int, end: int) -> bytes:
            data = real(key, start, end)
            fetched.append(len(data))
            return data

        options = RenderOptions(frame=280, window_center=280, window_width=2)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(context.store, "read_range", counting)
            png = rendering.render_blocking(context, file_id, options).data
        assert size > 1_000_000
        assert sum(fetched) <= 4 * BLOCK, (sum(fetched), size)  # header, frame: a block each
        assert len(fetched) <= 4
        from PIL import Image

        img = np.asarray(Image.open(io.BytesIO(png)))
        assert img[10, 10] == 255  # frame 280 holds 280: white in this window, 279 is black
    finally:
        context.close()


@pytest.fixture
def s3_ctx(s3_server: S3Server, tmp_path: Path) -> Iterator[ServiceContext]:
    """A service on S3 with its local copies (the default), and the embedded index."""
    yield from _s3_context(s3_server, tmp_path)


def _s3_context(s3_server: S3Server, tmp_path: Path, **extra: str) -> Iterator[ServiceContext]:
    env = {**s3_server.env("renders", uuid.uuid4().hex[:12]), **extra}  # a bucket shared
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        settings = Settings(data_dir=tmp_path / "data")
    context = ServiceContext.create(settings)
    yield context
    context.close()


def _shared_renderings(ctx: ServiceContext, file_id: str) -> list[str]:
    ctx.cache_writer.shutdown(wait=True)  # what was handed to it has landed
    return [key for key, _ in ctx.store.list_keys("renderings/") if file_id in key]


def _no_shared_lookup(ctx: ServiceContext, mp: pytest.MonkeyPatch) -> None:
    real, real_async = ctx.store.get_bytes, ctx.store.get_bytes_async

    def refuse_renderings(key: str) -> bytes:
        assert not key.startswith("renderings/"), "the shared cache was asked"
        return real(key)

    async def refuse_renderings_async(key: str) -> bytes:
        assert not key.startswith("renderings/"), "the shared cache was asked"
        return await real_async(key)

    mp.setattr(ctx.store, "get_bytes", refuse_renderings)
    mp.setattr(ctx.store, "get_bytes_async", refuse_renderings_async)


def test_a_file_at_hand_renders_without_asking_the_shared_cache_and_a_cheap_one_stays_in_memory(
    s3_ctx: ServiceContext, tmp_path: Path
) -> None:
    """A file this instance stored is at hand (its local copy): no GET of the shared cache
    first; a rendering quicker to make than a round trip is kept in memory, not PUT."""
    file_id = _stored(s3_ctx, tmp_path)
    assert s3_ctx.store.at_hand(instance_key(file_id))
    with pytest.MonkeyPatch.context() as mp:
        _no_shared_lookup(s3_ctx, mp)
        mp.setattr(rendering, "SHARE_AFTER_SECONDS", 60.0)  # every rendering is cheap
        png = _on_a_loop(rendering.rendering_async(s3_ctx, file_id, RenderOptions()))
        blocking = rendering.render_blocking(s3_ctx, file_id, RenderOptions(width=32))
    assert png.startswith(b"\x89PNG") and blocking.data.startswith(b"\x89PNG")
    assert _shared_renderings(s3_ctx, file_id) == []
    assert s3_ctx.renders.recall(file_id, RenderOptions().cache_key()) == png
    assert s3_ctx.renders.recall(file_id, RenderOptions(width=32).cache_key()) == blocking.data


def test_a_rendering_that_took_longer_than_a_round_trip_is_shared(
    s3_ctx: ServiceContext, tmp_path: Path
) -> None:
    file_id = _stored(s3_ctx, tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rendering, "SHARE_AFTER_SECONDS", 0.0)  # every rendering is dear
        png = _on_a_loop(rendering.rendering_async(s3_ctx, file_id, RenderOptions()))
        rendering.render_blocking(s3_ctx, file_id, RenderOptions(width=32))
    assert len(_shared_renderings(s3_ctx, file_id)) == 2
    assert s3_ctx.renders.get(file_id, RenderOptions().cache_key()) == png


@pytest.mark.parametrize(("seconds", "written"), [(60.0, 0), (0.0, 2)])
def test_on_local_disk_only_a_rendering_dearer_than_its_cache_write_is_written(
    ctx: ServiceContext, tmp_path: Path, seconds: float, written: int
) -> None:
    """On local disk too a cheap rendering stays in memory (its write would cost the next
    request more than making it again does); a dear one goes to the disk cache."""
    file_id = _stored(ctx, tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rendering, "SHARE_AFTER_SECONDS", seconds)
        png = _on_a_loop(rendering.rendering_async(ctx, file_id, RenderOptions()))
        blocking = rendering.render_blocking(ctx, file_id, RenderOptions(width=32))
    assert len(_shared_renderings(ctx, file_id)) == written
    assert ctx.renders.recall(file_id, RenderOptions().cache_key()) == png
    assert ctx.renders.recall(file_id, RenderOptions(width=32).cache_key()) == blocking.data


def test_a_background_rendering_is_shared_however_cheap(
    s3_ctx: ServiceContext, tmp_path: Path
) -> None:
    file_id = _stored(s3_ctx, tmp_path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rendering, "SHARE_AFTER_SECONDS", 60.0)
        rendering.render_blocking(s3_ctx, file_id, RenderOptions(), cache_later=False)
    assert len(_shared_renderings(s3_ctx, file_id)) == 1


def test_a_file_not_at_hand_asks_the_shared_cache_first(
    s3_ctx: ServiceContext, tmp_path: Path
) -> None:
    """Without the file's copy (stored through another instance, or swept) a rendering
    another instance shared is served, not made again."""
    file_id = _stored(s3_ctx, tmp_path)
    shared = rendering.render_blocking(s3_ctx, file_id, RenderOptions(), cache_later=False)
    for path in (s3_ctx.settings.resolved_scratch_dir() / "copies").iterdir():
        path.unlink()
    assert not s3_ctx.store.at_hand(instance_key(file_id))
    other = next(_s3_context_like(s3_ctx, tmp_path))
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rendering, "render_png", _no_render)
            png = _on_a_loop(rendering.rendering_async(other, file_id, RenderOptions()))
            again = rendering.render_blocking(other, file_id, RenderOptions())
        assert png == again.data == shared.data
    finally:
        other.close()


def test_with_background_rendering_on_a_file_at_hand_asks_the_shared_cache(
    s3_server: S3Server, tmp_path: Path
) -> None:
    for context in _s3_context(s3_server, tmp_path, DICOM_FS_PRERENDER="true"):
        file_id = _stored(context, tmp_path)
        made = rendering.render_blocking(context, file_id, RenderOptions(), cache_later=False)
        other = next(_s3_context_like(context, tmp_path))
        try:
            assert other.store.at_hand(instance_key(file_id))  # the same scratch area
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(rendering, "render_png", _no_render)
                png = _on_a_loop(rendering.rendering_async(other, file_id, RenderOptions()))
            assert png == made.data
        finally:
            other.close()


def _s3_context_like(ctx: ServiceContext, tmp_path: Path) -> Iterator[ServiceContext]:
    """A second process of the same instance: the same settings, nothing in memory."""
    yield ServiceContext.create(ctx.settings)


def _on_a_loop(asked: Coroutine[Any, Any, bytes]) -> bytes:
    """The answer, once what the event loop was handed after it (the cache write) ran."""

    async def answer() -> bytes:
        png = await asked
        await asyncio.sleep(0)
        return png

    return asyncio.run(answer())


def _no_render(*_a: object, **_k: object) -> bytes:
    raise AssertionError("rendered again: the shared rendering was not asked for")
