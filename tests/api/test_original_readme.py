"""The original README's four curl commands, run against ``serve``, answer as it describes."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from PIL import Image

from tests.conftest import Server
from tests.datafiles import data_file

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def curl(*args: str, cwd: Path) -> bytes:
    return subprocess.run(
        ["curl", "-sS", "--fail-with-body", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        timeout=60,
    ).stdout


def test_the_four_commands_of_the_original_readme(server: Server, tmp_path: Path) -> None:
    shutil.copy(data_file("CT_small.dcm"), tmp_path / "IM000001")
    base = server.base_url

    # 1. Upload: JSON containing the generated file id.
    answer = json.loads(
        curl("-X", "POST", "-F", "file=@IM000001", f"{base}/dicom-image", cwd=tmp_path)
    )
    file_id = answer["file_id"]
    assert isinstance(file_id, str) and file_id

    # 2. Retrieve the uploaded file: the same bytes.
    downloaded = curl(f"{base}/dicom-image/{file_id}", cwd=tmp_path)
    assert downloaded == (tmp_path / "IM000001").read_bytes()

    # 3. A header attribute by tag.
    attr = json.loads(curl(f"{base}/dicom-image/{file_id}?dicom_tag=(0010,0010)", cwd=tmp_path))
    expected_name = str(pydicom.dcmread(tmp_path / "IM000001").PatientName)
    assert attr["value"] == expected_name
    assert attr["tag"] == "(0010,0010)"
    assert attr["keyword"] == "PatientName"

    # 4. A PNG representation, viewable in a browser.
    png = curl("-o", "out.png", f"{base}/dicom-image/{file_id}/png", cwd=tmp_path)
    assert png == b""
    with Image.open(tmp_path / "out.png") as img:
        assert img.format == "PNG"
        assert img.size == (128, 128)
