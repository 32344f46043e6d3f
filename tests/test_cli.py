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


def test_deidentify_writes_keyed_copies_without_a_server(tmp_path: Path) -> None:
    import pydicom

    src = tmp_path / "in" / "nested"
    src.mkdir(parents=True)
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = "MRKCLIFAMILY^MRKCLIGIVEN", "MRKCLIPID"
    ds.save_as(src / "marked.dcm", enforce_file_format=True)
    shutil.copy(data_file("MR_small.dcm"), src.parent / "mr.dcm")
    (src / "notes.txt").write_text("not a DICOM file")
    key, other_key = tmp_path / "key", tmp_path / "other-key"
    key.write_text("a secret of at least sixteen characters")
    other_key.write_text("another secret, also long enough")

    def run(out: str, secret: Path, *extra: str) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "deidentify", str(tmp_path / "in"), "-o", str(tmp_path / out),
            "--secret-file", str(secret), "--quiet", *extra, env_dir=tmp_path,
        )  # fmt: skip

    done = run("out", key)
    assert done.returncode == 0, done.stderr
    assert "3 files: 2 de-identified, 1 left out" in done.stdout
    assert "notes.txt: not a readable DICOM file" in done.stderr
    copies = sorted((tmp_path / "out").iterdir())
    assert len(copies) == 2
    for copy in copies:
        data = copy.read_bytes()
        assert b"MRKCLI" not in data
        written = pydicom.dcmread(copy)
        assert written.PatientIdentityRemoved == "YES"
        assert copy.name == f"{written.SOPInstanceUID}.dcm"
        assert written.SOPInstanceUID.startswith("2.25.")
    assert run("again", key).returncode == 0
    assert [c.read_bytes() for c in sorted((tmp_path / "again").iterdir())] == [
        c.read_bytes() for c in copies
    ]  # the same key: the same copies, byte for byte
    assert run("other", other_key).returncode == 0
    assert not {c.name for c in (tmp_path / "other").iterdir()} & {c.name for c in copies}
    dated = run("dated", key, "--option", "retain_longitudinal_modified_dates")
    assert dated.returncode == 0, dated.stderr
    for copy in (tmp_path / "dated").iterdir():
        assert pydicom.dcmread(copy).LongitudinalTemporalInformationModified == "MODIFIED"
    wrong = run("wrong", key, "--option", "shred")
    assert wrong.returncode == 2 and "shred: not an option offered" in wrong.stderr
    cleaned = run("cleaned", key, "--option", "clean_pixel_data", "--pixel-region", "0,0,8,4")
    assert cleaned.returncode == 0, cleaned.stderr
    for copy in (tmp_path / "cleaned").iterdir():
        written = pydicom.dcmread(copy)
        assert written.BurnedInAnnotation == "NO"
        assert (written.pixel_array[:4, :8] == written.pixel_array[0, 0]).all()
    alone = run("alone", key, "--option", "clean_pixel_data")
    assert alone.returncode == 2 and "go together" in alone.stderr
