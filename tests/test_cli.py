"""The command line: bulk import with a summary, and render."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from tests.api.dicom_factory import copy_with_new_uid
from tests.datafiles import data_file


def run_cli(*args: str, env_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_file_service.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=env_dir,
    )


def test_import_walks_folders_in_parallel_and_summarises(tmp_path: Path) -> None:
    src = tmp_path / "incoming" / "nested"
    src.mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm"):
        shutil.copy(data_file(name), src / name)
    shutil.copy(data_file("CT_small.dcm"), src.parent / "CT_small_again.dcm")  # same bytes
    (src / "notes.txt").write_text("not a DICOM file")
    data = tmp_path / "data"

    done = run_cli(
        "import",
        str(tmp_path / "incoming"),
        "--data-dir",
        str(data),
        "--jobs",
        "2",
        "--quiet",
        env_dir=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "5 files: 3 stored, 1 already present (skipped), 1 rejected" in done.stdout
    assert "notes.txt: invalid_dicom" in done.stderr

    again = run_cli(
        "import", str(tmp_path / "incoming"), "--data-dir", str(data), "--quiet", env_dir=tmp_path
    )
    assert "5 files: 0 stored, 4 already present (skipped), 1 rejected" in again.stdout


def test_import_of_only_bad_files_fails(tmp_path: Path) -> None:
    (tmp_path / "bad.dcm").write_bytes(b"\x00" * 500)
    done = run_cli(
        "import",
        str(tmp_path / "bad.dcm"),
        "--data-dir",
        str(tmp_path / "d"),
        "--quiet",
        env_dir=tmp_path,
    )
    assert done.returncode == 1
    assert "1 rejected" in done.stdout


def test_render_writes_the_same_png_as_the_service_would(
    tmp_path: Path, client: httpx.Client
) -> None:
    """Byte for byte what ``/dicom-image/{id}/png`` answers for the same file and window."""
    out = tmp_path / "ct.png"
    for name in ("CT_small.dcm", "US1_UNCR.dcm"):
        done = run_cli(
            "render",
            str(data_file(name)),
            "-o",
            str(out),
            "--window-center",
            "40",
            "--window-width",
            "400",
            env_dir=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        stored = client.post(
            "/dicom-image",
            content=copy_with_new_uid(data_file(name)),
            headers={"content-type": "application/dicom"},
        ).json()
        served = client.get(
            f"/dicom-image/{stored['file_id']}/png",
            params={"window_center": "40", "window_width": "400"},
        )
        assert served.status_code == 200
        assert out.read_bytes() == served.content, name
    with Image.open(out) as img:
        assert np.asarray(img).std() > 10


def test_render_reports_errors_plainly(tmp_path: Path) -> None:
    done = run_cli(
        "render", str(data_file("rtplan.dcm")), "-o", str(tmp_path / "x.png"), env_dir=tmp_path
    )
    assert done.returncode != 0
    assert "no_pixel_data" in done.stderr
    assert "Traceback" not in done.stderr
