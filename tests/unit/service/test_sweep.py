"""Sweep on every backend: it removes blobs no row refers to, abandoned direct uploads and
scratch files, after the grace period, and nothing else."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.ingest import ingest_path
from dicom_file_service.service.sweep import sweep
from dicom_file_service.settings import Settings
from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import new_bucket_name
from tests.datafiles import data_file
from tests.s3server import S3Server


def _context(request: pytest.FixtureRequest, tmp_path: Path, **settings: float) -> ServiceContext:
    """A service context on the local store or on S3, as the fixture's param says."""
    with pytest.MonkeyPatch.context() as mp:
        if request.param == "s3":
            s3: S3Server = request.getfixturevalue("s3_server")
            for k, v in s3.env(new_bucket_name(), "sweep").items():
                mp.setenv(k, v)
        return ServiceContext.create(Settings(data_dir=tmp_path / "data", **settings))


@pytest.fixture(params=["local", "s3"])
def ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceContext]:
    """No floor under the grace period: these tests sweep what they just made."""
    context = _context(request, tmp_path, sweep_min_age_seconds=0)
    yield context
    context.close()


@pytest.fixture(params=["local", "s3"])
def live_ctx(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServiceContext]:
    """As a running service is configured: the default floor of the grace period."""
    context = _context(request, tmp_path)
    yield context
    context.close()


def test_sweep_with_no_grace_spares_uploads_in_flight(
    live_ctx: ServiceContext, tmp_path: Path
) -> None:
    """``sweep --older-than 0`` beside live uploads once deleted a blob between its write and
    its row's commit: an acknowledged upload without bytes. Now the grace period has a floor,
    and every upload acknowledged while sweeps run keeps its bytes."""
    import threading

    in_flight = ids.instance_key(ids.new_file_id())  # written, its row about to commit
    live_ctx.store.put_bytes(in_flight, b"an upload's bytes, its row not yet committed")
    fd, staging = live_ctx.scratch.new_file()  # an upload still arriving
    os.close(fd)
    report = sweep(live_ctx, older_than_seconds=0)
    assert report.grace_seconds == 900
    assert report.orphans_removed == 0
    assert live_ctx.store.exists(in_flight) and staging.exists()

    acknowledged = []
    sources = []
    for n in range(12):
        source = tmp_path / f"{n}.dcm"
        source.write_bytes(copy_with_new_uid(data_file("CT_small.dcm")))
        sources.append(source)

    def upload() -> None:
        for source in sources:
            acknowledged.append(ingest_path(live_ctx, source).record)

    uploader = threading.Thread(target=upload)
    uploader.start()
    while uploader.is_alive():
        sweep(live_ctx, older_than_seconds=0)
    uploader.join()
    assert len(acknowledged) == 12
    for record in acknowledged:
        assert live_ctx.store.exists(record.blob_key)


def test_sweep_removes_only_what_nothing_refers_to(ctx: ServiceContext, tmp_path: Path) -> None:
    source = tmp_path / "ct.dcm"
    source.write_bytes(copy_with_new_uid(data_file("CT_small.dcm")))
    kept = ingest_path(ctx, source).record
    orphan = ids.instance_key(ids.new_file_id())  # as a crash before the INSERT leaves it
    ctx.store.put_bytes(orphan, b"bytes of an upload that was never indexed")
    abandoned = f"uploads/{ids.new_file_id()}"  # a direct upload never completed
    ctx.store.put_bytes(abandoned, b"never completed")
    fd, scratch = ctx.scratch.new_file()
    os.close(fd)
    os.utime(scratch, (0, 0))

    young = sweep(ctx, older_than_seconds=3600)  # the blobs are new: they stay
    assert young.orphans_removed == 0
    assert ctx.store.exists(orphan) and ctx.store.exists(abandoned)
    assert not scratch.exists()  # an hour-old scratch file goes

    report = sweep(ctx, older_than_seconds=0)
    assert report.orphans_removed == 1
    assert not ctx.store.exists(orphan)
    assert not ctx.store.exists(abandoned)
    assert ctx.store.exists(kept.blob_key)
