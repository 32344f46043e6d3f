"""Every door's thumbnail is ``DICOM_FS_THUMBNAIL_SIZE`` on its longer side, and where the
prerenderer made it ahead, that is the one served (no door renders it again)."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from tests.api.test_upload import post_raw
from tests.conftest import Backend, Server, start_server, stop_server

SIZE = 200


def wide_image() -> bytes:
    """A 512 x 384 (columns x rows) MONOCHROME2 CT image with a gradient to show."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientName, ds.PatientID = "CT", "Thumb^Nail", "THUMB"
    ds.Rows, ds.Columns = 384, 512
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    pixels = np.add.outer(np.arange(384), np.arange(512)).astype(np.uint16) * 4
    ds.PixelData = pixels.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def door_urls(c: httpx.Client, answer: dict[str, str]) -> list[str]:
    study, series = answer["study_instance_uid"], answer["series_instance_uid"]
    instance = f"/dicomweb/studies/{study}/series/{series}/instances/{answer['sop_instance_uid']}"
    return [
        f"{instance}/thumbnail",
        f"{instance}/thumbnail?accept=image/png",
        f"{instance}/frames/1/thumbnail",
        f"/dicomweb/studies/{study}/series/{series}/thumbnail",
        f"/dicomweb/studies/{study}/thumbnail",
        f"/ui/thumbnails/file/{answer['file_id']}",
        f"/ui/thumbnails/study/{study}",
    ]


def assert_every_door_is_200_by_150(c: httpx.Client, answer: dict[str, str]) -> None:
    for url in door_urls(c, answer):
        r = c.get(url)
        assert r.status_code == 200, (url, r.text)
        assert Image.open(io.BytesIO(r.content)).size == (200, 150), url


def renders(c: httpx.Client) -> float:
    """How many frames the service has rendered, summed over its worker processes."""
    match = re.search(r"^dicom_fs_render_seconds_count (\S+)$", c.get("/metrics").text, re.M)
    return float(match.group(1)) if match else 0.0


def test_every_door_serves_the_configured_thumbnail_size(backend: Backend, tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", {**backend.env, "DICOM_FS_THUMBNAIL_SIZE": str(SIZE)})
    try:
        with srv.client() as c:
            answer = post_raw(c, wide_image()).json()
            assert_every_door_is_200_by_150(c, answer)
    finally:
        stop_server(srv)
    assert "Traceback" not in srv.log()


@pytest.fixture
def prerendering(tmp_path: Path) -> Iterator[Server]:
    env = {"DICOM_FS_THUMBNAIL_SIZE": str(SIZE), "DICOM_FS_PRERENDER": "true"}
    srv = start_server(tmp_path / "data", env)
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log()


def test_prerendered_thumbnails_are_the_ones_every_door_serves(prerendering: Server) -> None:
    with prerendering.client() as c:
        answer = post_raw(c, wide_image()).json()
        wanted = {"r1-f1-file-8.png", f"r1-f1-file-{SIZE}x{SIZE}-8.png"}
        deadline = time.monotonic() + 30
        while True:
            keys = prerendering.stored_keys("renderings")
            made = {k.rsplit("/", 1)[1] for k in keys if f"/{answer['file_id']}/" in k}
            if made >= wanted:
                break
            assert time.monotonic() < deadline, made
            time.sleep(0.1)
        assert made == wanted  # the job made the default rendering and the thumbnail only
        rendered_ahead = renders(c)
        assert rendered_ahead == 2
        assert_every_door_is_200_by_150(c, answer)
        assert renders(c) == rendered_ahead  # every door served the prerendered thumbnail
