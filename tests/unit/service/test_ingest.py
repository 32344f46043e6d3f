"""Ingest ordering under faults: nothing acknowledged is lost, nothing half-done remains."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection

from dicom_file_service.errors import DuplicateInstance, IndexUnavailable, StorageUnavailable
from dicom_file_service.index import repository as repo
from dicom_file_service.service import files as files_service
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.ingest import ingest_path
from dicom_file_service.settings import Settings
from tests.api.dicom_factory import changed_content, copy_with_new_uid
from tests.conftest import new_bucket_name
from tests.datafiles import data_file
from tests.s3server import S3Server


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[ServiceContext]:
    # No sweep floor: these tests sweep what they just made (no live instance beside them).
    context = ServiceContext.create(Settings(data_dir=tmp_path / "data", sweep_min_age_seconds=0))
    yield context
    context.close()


def _file(tmp_path: Path, data: bytes, name: str = "in.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _objects(ctx: ServiceContext) -> list[Path]:
    root = ctx.settings.data_dir / "blobs" / "objects"
    return [p for p in root.rglob("*") if p.is_file()]


def _staging(ctx: ServiceContext) -> list[Path]:
    return list(ctx.scratch.directory.iterdir())


def test_a_failed_blob_write_leaves_no_index_row(
    ctx: ServiceContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(key: str, path: Path) -> None:
        raise StorageUnavailable("cannot write to the blob store: No space left on device")

    monkeypatch.setattr(ctx.store, "put_file", disk_full)
    with pytest.raises(StorageUnavailable):
        ingest_path(ctx, _file(tmp_path, copy_with_new_uid(data_file("CT_small.dcm"))))
    assert files_service.list_files(ctx, limit=10, cursor=None, filters={}).items == []
    assert _staging(ctx) == []


def test_a_failed_index_write_removes_the_blob(
    ctx: ServiceContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def db_down(*_args: object, **_kwargs: object) -> int:
        raise IndexUnavailable("the index database is unavailable (OperationalError)")

    monkeypatch.setattr(repo, "insert_instance", db_down)
    with pytest.raises(IndexUnavailable):
        ingest_path(ctx, _file(tmp_path, copy_with_new_uid(data_file("CT_small.dcm"))))
    assert _objects(ctx) == []
    assert _staging(ctx) == []


def test_a_rejected_duplicate_leaves_the_stored_file_untouched(
    ctx: ServiceContext, tmp_path: Path
) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    first = ingest_path(ctx, _file(tmp_path, data))
    with pytest.raises(DuplicateInstance):
        ingest_path(ctx, _file(tmp_path, changed_content(data, PatientID="X"), "b.dcm"))
    assert len(_objects(ctx)) == 1
    blob = ctx.store.file_of(  # type: ignore[attr-defined]
        first.record.blob_key
    )
    assert blob is not None and blob.read_bytes() == data


def test_the_database_settles_a_race_between_two_uploads_of_one_instance(
    ctx: ServiceContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pre-check misses a concurrent insert; the unique constraint still holds."""
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    ingest_path(ctx, _file(tmp_path, data))
    monkeypatch.setattr(repo, "get_by_sop_instance_uid", lambda *_a, **_k: None)
    with pytest.raises(DuplicateInstance):
        ingest_path(ctx, _file(tmp_path, changed_content(data, PatientID="Y"), "c.dcm"))
    assert len(_objects(ctx)) == 1


def test_an_abandoned_upload_is_swept_at_start_up(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", pending_upload_ttl_seconds=60, presign_expiry_seconds=60
    )
    ServiceContext.create(settings).close()
    leftover = settings.data_dir / "scratch" / "upload-crashed.dcm"
    leftover.write_bytes(b"half an upload")
    os.utime(leftover, (0, 0))
    ServiceContext.create(settings).close()
    assert not leftover.exists()


def test_sweep_removes_blobs_no_row_refers_to_and_keeps_the_rest(
    ctx: ServiceContext, tmp_path: Path
) -> None:
    from dicom_file_service.service import ids
    from dicom_file_service.service.sweep import sweep

    kept = ingest_path(ctx, _file(tmp_path, copy_with_new_uid(data_file("CT_small.dcm"))))
    orphan_key = ids.instance_key(ids.new_file_id())  # as a crash before the INSERT leaves it
    ctx.store.put_bytes(orphan_key, b"bytes of an upload that was never indexed")
    young = sweep(ctx, older_than_seconds=3600)  # both are new: nothing may go yet
    assert young.orphans_removed == 0
    assert ctx.store.exists(orphan_key)
    orphan_path = ctx.store.file_of(  # type: ignore[attr-defined]
        orphan_key
    )
    assert orphan_path is not None
    os.utime(orphan_path, (0, 0))  # as old as a crash long ago left it
    report = sweep(ctx, older_than_seconds=0)  # raised to the floor: the young file stays
    assert report.blobs_checked == 2
    assert report.orphans_removed == 1
    assert not ctx.store.exists(orphan_key)
    assert ctx.store.exists(kept.record.blob_key)


def test_a_failure_after_the_commit_never_removes_the_new_file(
    ctx: ServiceContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Overwrite commits, then removing the old bytes fails: the new file must stay whole."""
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    old = ingest_path(ctx, _file(tmp_path, data))

    def broken_delete_prefix(prefix: str) -> None:
        raise OSError("I/O error")

    monkeypatch.setattr(ctx.store, "delete_prefix", broken_delete_prefix)
    new = ingest_path(
        ctx, _file(tmp_path, changed_content(data, PatientID="NEW"), "n.dcm"), overwrite=True
    )
    assert new.created
    assert new.replaced_file_id == old.record.file_id
    assert ctx.store.exists(new.record.blob_key)
    assert files_service.get_record(ctx, new.record.file_id).sha256 == new.record.sha256
    identical = ingest_path(
        ctx, _file(tmp_path, changed_content(data, PatientID="NEW"), "m.dcm"), overwrite=True
    )
    assert not identical.created
    assert identical.record.file_id == new.record.file_id
    assert len(_objects(ctx)) == 1  # the new file only: the old one and the retry's copy went


def test_a_commit_of_unknown_outcome_keeps_the_blob_for_sweep(
    ctx: ServiceContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection dies during COMMIT: the row may exist, so its blob must stay; if the
    row does not exist, sweep removes the blob later."""
    from contextlib import contextmanager

    from dicom_file_service.errors import CommitOutcomeUnknown
    from dicom_file_service.service.sweep import sweep

    real = ctx.index.transaction

    @contextmanager
    def commit_lost() -> Iterator[Connection]:
        with real() as conn:
            transaction = conn.get_transaction()
            yield conn
            assert transaction is not None
            transaction.rollback()  # the server never saw the COMMIT
        raise CommitOutcomeUnknown("the connection died during COMMIT")

    monkeypatch.setattr(ctx.index, "transaction", commit_lost)
    with pytest.raises(CommitOutcomeUnknown):
        ingest_path(ctx, _file(tmp_path, copy_with_new_uid(data_file("CT_small.dcm"))))
    assert len(_objects(ctx)) == 1  # kept: for all the service knows, a row refers to it
    monkeypatch.undo()
    assert sweep(ctx, older_than_seconds=0).orphans_removed == 1  # no row did
    assert _objects(ctx) == []


@pytest.mark.parametrize("prerender", [False, True])
def test_the_job_queue_is_woken_only_by_a_commit_that_enqueued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prerender: bool
) -> None:
    """A wake-up makes the queue's runners claim in a write transaction of their own: an
    upload that enqueued nothing must not cost one (with prerendering, each upload does)."""
    settings = Settings(data_dir=tmp_path / "data", prerender=prerender)
    context = ServiceContext.create(settings)
    try:
        wakes: list[None] = []
        monkeypatch.setattr(context.jobs, "committed", lambda: wakes.append(None))
        for i in range(3):
            data = copy_with_new_uid(data_file("CT_small.dcm"))
            ingest_path(context, _file(tmp_path, data, f"{i}.dcm"))
        overwrite = changed_content(data, PatientID="AGAIN")
        ingest_path(context, _file(tmp_path, overwrite, "again.dcm"), overwrite=True)
        assert len(wakes) == (4 if prerender else 0)
        listed = files_service.list_files(context, limit=10, cursor=None, filters={})
        assert len(listed.items) == 3  # the overwrite replaced the last
    finally:
        context.close()


def test_on_a_remote_store_an_upload_held_in_memory_goes_up_before_its_file_is_made(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The put starts from the bytes in memory and does not wait for the scratch file, whose
    making waits its turn with the filesystem's journal: here the file can be made only once
    the put has begun (or after 10 s, which fails the test)."""
    for k, v in s3_server.env(new_bucket_name(), "ingest").items():
        monkeypatch.setenv(k, v)
    ctx = ServiceContext.create(Settings(data_dir=tmp_path / "data"))
    try:
        put_began = threading.Event()
        put_bytes = ctx.store.put_bytes

        def noted_put(key: str, data: bytes, **kwargs: bool) -> None:
            put_began.set()
            put_bytes(key, data, **kwargs)

        new_file = ctx.scratch.new_file
        waited: list[bool] = []

        def file_after_the_put(*args: str) -> tuple[int, Path]:
            waited.append(put_began.wait(timeout=10))
            return new_file(*args)

        monkeypatch.setattr(ctx.store, "put_bytes", noted_put)
        monkeypatch.setattr(ctx.scratch, "new_file", file_after_the_put)
        data = copy_with_new_uid(data_file("CT_small.dcm"))
        result = ingest_path(ctx, _file(tmp_path, data))
        assert waited == [True]
        assert ctx.store.get_bytes(result.record.blob_key) == data
        assert ctx.store.at_hand(result.record.blob_key)  # its local copy, from the bytes
        assert [p for p in _staging(ctx) if p.is_file()] == []  # the scratch file went
    finally:
        ctx.close()
