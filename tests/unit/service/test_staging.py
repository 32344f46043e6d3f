"""The staged upload and the pipe that feeds it from the event loop: the bytes and hash on disk
are the bytes sent, whatever the chunking, and the size limit stops an upload at once."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from dicom_file_service.errors import PayloadTooLarge
from dicom_file_service.service import staging
from dicom_file_service.service.staging import StagedUpload, StagingPipe
from dicom_file_service.storage import ScratchArea


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out, at, n = [], 0, 0
    while at < len(data):
        size = sizes[n % len(sizes)]
        out.append(data[at : at + size])
        at, n = at + size, n + 1
    return out


async def _pipe_in(staged: StagedUpload, chunks: list[bytes]) -> None:
    pipe = StagingPipe(staged)
    try:
        for chunk in chunks:
            pipe.add(chunk)
            await pipe.pump()
        await pipe.close()
    except BaseException:
        await pipe.abandon()
        raise


@pytest.mark.parametrize(
    ("total", "sizes"),
    [
        (0, [1]),
        (1000, [7, 1, 300]),  # small: held in memory, written by finish
        (3 * 1024 * 1024 + 17, [65536, 1, 1 << 20]),  # batches handed to the thread
        (2 * 1024 * 1024, [1 << 20]),  # exactly whole batches
    ],
)
def test_piped_bytes_and_hash_are_the_bytes_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, total: int, sizes: list[int]
) -> None:
    monkeypatch.setattr(staging, "HANDOFF_BYTES", 1024 * 1024)
    data = os.urandom(total)
    with StagedUpload(ScratchArea(tmp_path), max_bytes=total + 1) as staged:
        asyncio.run(_pipe_in(staged, _chunks(data, sizes)))
        digest = staged.finish()
        assert staged.size == total
        assert staged.path.read_bytes() == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert not staged.path.exists()  # never consumed: discarded


def test_the_limit_stops_a_piped_upload_at_the_chunk_that_passes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "HANDOFF_BYTES", 4096)
    sent: list[int] = []

    async def feed(staged: StagedUpload) -> None:
        pipe = StagingPipe(staged)
        try:
            for chunk in [b"x" * 1000] * 100:
                pipe.add(chunk)
                sent.append(len(chunk))
                await pipe.pump()
        except BaseException:
            await pipe.abandon()
            raise

    with StagedUpload(ScratchArea(tmp_path), max_bytes=10_500) as staged:
        with pytest.raises(PayloadTooLarge, match="exceeds the limit of 10500 bytes"):
            asyncio.run(feed(staged))
        path = staged.path
    assert len(sent) == 10  # the eleventh chunk was refused before it was taken
    assert not path.exists()


def test_a_failed_write_in_the_thread_reaches_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(staging, "HANDOFF_BYTES", 4096)

    with StagedUpload(ScratchArea(tmp_path), max_bytes=1 << 20) as staged:

        def no_space(chunk: bytes) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(staged, "put", no_space)
        with pytest.raises(OSError, match="No space left"):
            asyncio.run(_pipe_in(staged, [b"y" * 4096] * 4))


def test_a_small_upload_makes_its_file_only_when_finished(tmp_path: Path) -> None:
    """Up to HOLD_BYTES nothing touches the scratch directory before ``finish`` (which the
    ingest calls in its thread): making a file waits on the filesystem's journal, which
    held up the event loop under a stream of uploads."""
    data = os.urandom(staging.HOLD_BYTES)
    with StagedUpload(ScratchArea(tmp_path), max_bytes=1 << 30) as staged:
        staged.write(data[:1000])
        staged.write(data[1000:])
        assert list(tmp_path.iterdir()) == []
        digest = staged.finish()
        assert staged.path.read_bytes() == data
        assert digest == hashlib.sha256(data).hexdigest()
    assert list(tmp_path.iterdir()) == []


def test_a_small_upload_is_at_hand_in_memory_until_its_file_is_made(tmp_path: Path) -> None:
    """What a remote store's put starts from, before ``finish`` makes the file."""
    data = os.urandom(staging.HOLD_BYTES)
    with StagedUpload(ScratchArea(tmp_path), max_bytes=1 << 30) as staged:
        assert staged.held() is None  # nothing yet
        staged.write(data[:1000])
        assert staged.held() == data[:1000]
        staged.write(data[1000:])
        assert staged.held() == data
        staged.finish()
        assert staged.held() is None  # the file is the upload now


def test_a_larger_upload_is_written_as_it_comes(tmp_path: Path) -> None:
    data = os.urandom(staging.HOLD_BYTES + 1)
    with StagedUpload(ScratchArea(tmp_path), max_bytes=1 << 30) as staged:
        staged.write(data[:1000])
        assert list(tmp_path.iterdir()) == []
        staged.write(data[1000:])
        assert staged.held() is None
        assert [p.name for p in tmp_path.iterdir()] == [staged.path.name]
        assert staged.finish() == hashlib.sha256(data).hexdigest()
        assert staged.path.read_bytes() == data
    assert list(tmp_path.iterdir()) == []


def test_a_discarded_upload_that_never_made_its_file_leaves_none(tmp_path: Path) -> None:
    staged = StagedUpload(ScratchArea(tmp_path), max_bytes=1 << 20)
    staged.write(b"abc")
    staged.discard()
    staged.discard()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="discarded"):
        _ = staged.path
