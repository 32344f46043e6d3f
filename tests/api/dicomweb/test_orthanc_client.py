"""Orthanc's DICOMweb plugin as a client of this service (its "DicomWeb.Servers"), on every
backend: Orthanc pushes a study to us with STOW-RS, queries us with QIDO-RS and pulls a study
from us with WADO-RS, each through Orthanc's own REST API, unchanged."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server
from tests.datafiles import data_file

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def orthanc(server: Server, tmp_path: Path) -> Iterator[httpx.Client]:
    """An Orthanc whose DICOMweb plugin knows this service as the server "ours"."""
    if not (shutil.which(ORTHANC) and Path(DICOMWEB_PLUGIN).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("Orthanc's DICOMweb plugin is missing (scripts/test installs it)")
        pytest.skip("Orthanc and orthanc-dicomweb are not installed")
    port = _free_port()
    config = {
        "Name": "client",
        "StorageDirectory": str(tmp_path / "orthanc"),
        "IndexDirectory": str(tmp_path / "orthanc"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [DICOMWEB_PLUGIN],
        "DicomWeb": {"Enable": True, "Servers": {"ours": [f"{server.base_url}/dicomweb/"]}},
    }
    (tmp_path / "orthanc.json").write_text(json.dumps(config))
    log = open(tmp_path / "orthanc.log", "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen([ORTHANC, str(tmp_path / "orthanc.json")], stdout=log, stderr=log)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if client.get("/system").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "orthanc.log").read_text()
            time.sleep(0.1)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_orthanc_pushes_queries_and_pulls_through_its_dicomweb_client(
    orthanc: httpx.Client, client: httpx.Client
) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"), StudyInstanceUID=generate_uid())
    pushed = pydicom.dcmread(io.BytesIO(data))
    orthanc_id = orthanc.post("/instances", content=data).json()["ID"]
    stow = orthanc.post("/dicom-web/servers/ours/stow", json={"Resources": [orthanc_id]})
    assert stow.status_code == 200, stow.text
    stored = client.get("/dicom-image", params={"study_instance_uid": pushed.StudyInstanceUID})
    (item,) = stored.json()["items"]
    assert client.get(f"/dicom-image/{item['file_id']}").content == data

    qido = orthanc.post(
        "/dicom-web/servers/ours/qido",
        json={"Uri": "/studies", "Arguments": {"StudyInstanceUID": pushed.StudyInstanceUID}},
    )
    assert qido.status_code == 200, qido.text
    (found,) = qido.json()  # Orthanc shows our DICOM JSON in its own notation
    assert found["0020000D"]["Value"] == pushed.StudyInstanceUID

    ours = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("MR_small.dcm"))))
    ours.StudyInstanceUID = generate_uid()
    original = io.BytesIO()
    ours.save_as(original, enforce_file_format=True)
    up = client.post(
        "/dicom-image", content=original.getvalue(), headers={"content-type": "application/dicom"}
    )
    assert up.status_code == 201, up.text
    pulled = orthanc.post(
        "/dicom-web/servers/ours/retrieve",
        json={"Resources": [{"Study": ours.StudyInstanceUID}]},
    )
    assert pulled.status_code == 200, pulled.text
    assert int(pulled.json()["ReceivedInstancesCount"]) == 1
    found_in_orthanc = orthanc.post(
        "/tools/find",
        json={"Level": "Instance", "Query": {"SOPInstanceUID": ours.SOPInstanceUID}},
    ).json()
    (instance_id,) = found_in_orthanc
    copy = pydicom.dcmread(io.BytesIO(orthanc.get(f"/instances/{instance_id}/file").content))
    assert copy.SOPInstanceUID == ours.SOPInstanceUID
    assert (copy.pixel_array == ours.pixel_array).all()
