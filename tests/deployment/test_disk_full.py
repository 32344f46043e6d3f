"""A full disk: uploads are refused with 507 ``insufficient_storage`` and nothing half-stored,
and the same process stores again once space is freed (a real full filesystem: a 3 MB tmpfs
holding the whole embedded data directory: uploads in progress, blobs and the index)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        if os.environ.get("CI") == "true":
            pytest.fail(f"cannot mount a tmpfs: {done.stderr.decode()}")
        pytest.skip("mounting a tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def server_on_small_disk(small_disk: Path) -> Iterator[Server]:
    srv = start_server(small_disk / "data", {"DICOM_FS_PARSE_PROCESSES": "1"})
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


def test_a_full_disk_is_507_with_nothing_half_stored_and_recovers(
    server_on_small_disk: Server, small_disk: Path
) -> None:
    ballast = small_disk / "ballast"  # what an operator frees when the disk fills
    ballast.write_bytes(bytes(768 * 1024))
    stored: dict[str, bytes] = {}
    with server_on_small_disk.client() as c:
        for _ in range(200):
            data = copy_with_new_uid(data_file("CT_small.dcm"))
            r = c.post("/dicom-image", content=data, headers={"content-type": "application/dicom"})
            if r.status_code != 201:
                break
            stored[r.json()["file_id"]] = data
        else:
            pytest.fail("a 3 MB disk took 200 uploads of 39 KB")
        body = assert_problem(r, 507, "insufficient_storage")
        assert "full" in str(body["detail"])
        assert len(stored) > 5
        listed = c.get("/dicom-image", params={"limit": 1000}).json()["items"]
        assert {item["file_id"] for item in listed} == set(stored)
        for file_id, data in stored.items():
            assert c.get(f"/dicom-image/{file_id}").content == data

        ballast.unlink()  # the fault ends: the same process stores again, by itself
        again = copy_with_new_uid(data_file("CT_small.dcm"))
        r = c.post("/dicom-image", content=again, headers={"content-type": "application/dicom"})
        assert r.status_code == 201, r.text
        assert c.get(f"/dicom-image/{r.json()['file_id']}").content == again
        assert c.delete(f"/dicom-image/{next(iter(stored))}").status_code == 204
