"""QIDO-RS on any attribute through HTTP, on every backend: a private tag, an attribute in a
sequence, a standard attribute without a column, each as a key and as includefield; names in
every character set; and the extra keys' index, used once ``db reindex`` (the CLI, run
beside the live server) has indexed what is stored.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_charset_files
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem
from tests.conftest import Backend, Server, start_server, stop_server
from tests.datafiles import data_file


def _instances(patient: str, count: int) -> list[Dataset]:
    """``count`` instances of one study: instance ``n`` has private value ``Scanner n`` (in
    GEMS_IDEN_01's block), body part CHEST for even ``n``, a referenced study ``1.2.n``."""
    study, series = generate_uid(), generate_uid()
    out = []
    for n in range(count):
        ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("CT_small.dcm"))))
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, series
        ds.InstanceNumber = n + 1
        ds[0x00091001].value = f"Scanner {n}"
        if n % 2 == 0:
            ds.BodyPartExamined = "CHEST"
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        ref.ReferencedSOPInstanceUID = f"1.2.{n}"
        ds.ReferencedStudySequence = Sequence([ref])
        out.append(ds)
    return out


def _sops(found: list[dict[str, Any]]) -> set[str]:
    return {item["00080018"]["Value"][0] for item in found}


def test_private_sequence_and_unindexed_keys_match_and_are_returned(
    server: Server, client: httpx.Client
) -> None:
    web = DICOMwebClient(f"{server.base_url}/dicomweb")
    patient = f"ANY-{uuid.uuid4().hex[:8]}"
    datasets = _instances(patient, 3)
    web.store_instances(datasets)
    sops = [ds.SOPInstanceUID for ds in datasets]

    def search(level: str = "instances", **params: str) -> list[dict[str, Any]]:
        r = client.get(f"/dicomweb/{level}", params={"PatientID": patient, **params})
        assert r.status_code == 200, r.text
        assert "warning" not in r.headers, r.headers["warning"]
        assert r.headers["content-type"] == "application/dicom+json"
        found: list[dict[str, Any]] = r.json()
        return found

    assert _sops(search(**{"00091001": "Scanner 1"})) == {sops[1]}
    assert _sops(search(**{"00091001": "Scanner*"})) == set(sops)
    assert _sops(search(**{"00081110.00081155": "1.2.2"})) == {sops[2]}
    assert _sops(search(**{"ReferencedStudySequence.ReferencedSOPInstanceUID": "1.2.0,1.2.1"})) == {
        sops[0],
        sops[1],
    }
    assert _sops(search(BodyPartExamined="CHEST")) == {sops[0], sops[2]}
    assert _sops(search(ImageType="AXIAL", InstanceNumber="2")) == {sops[1]}  # with an indexed key
    assert search(BodyPartExamined="HEAD") == []
    (study,) = search("studies", **{"00091001": "Scanner 2"})  # any instance of the study
    assert study["0020000D"]["Value"] == [datasets[0].StudyInstanceUID]
    assert search("series", **{"00081110.00081155": "9.9"}) == []

    (hit,) = search(
        InstanceNumber="3",
        includefield="00091001,ReferencedStudySequence.ReferencedSOPInstanceUID,BodyPartExamined",
    )
    assert hit["00091001"]["Value"] == ["Scanner 2"]
    assert hit["00081110"]["Value"][0]["00081155"]["Value"] == ["1.2.2"]
    assert hit["00180015"]["Value"] == ["CHEST"]

    for params, named in [
        ({"0009100": "x"}, "0009100"),  # malformed tag
        ({"PatientName.PatientID": "x"}, "PatientName.PatientID"),  # not a sequence
        ({"ReferencedStudySequence": "x"}, "ReferencedStudySequence"),  # a sequence's value
        ({"AcquisitionDate": "2024"}, "AcquisitionDate"),
    ]:
        r = client.get("/dicomweb/instances", params={"PatientID": patient, **params})
        assert named in assert_problem(r, 400, "invalid_parameter")["detail"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "matches"),
    [
        ("chrFren.dcm", [("buc^jérôme", False), ("BUC^JEROME", True)]),
        ("chrX1.dcm", [("王^小東", False), ("wang^xiaodong", False)]),
        ("chrX2.dcm", [("王^小东", False), ("Wang*", False)]),
        ("chrH31.dcm", [("山田*", False), ("やまだ^たろう", False)]),
        ("chrI2.dcm", [("홍^길동", False)]),
    ],
)
def test_names_without_a_column_match_in_every_character_set(
    server: Server, client: httpx.Client, name: str, matches: list[tuple[str, bool]]
) -> None:
    """Operators' Name (no column) holds the file's Patient's Name, in its character set."""
    path = next(f for f in get_charset_files() if f.endswith(name))
    ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(Path(path))))
    ds.StudyInstanceUID = generate_uid()
    ds.OperatorsName = ds.PatientName
    DICOMwebClient(f"{server.base_url}/dicomweb").store_instances([ds])
    for value, fuzzy in matches:
        params = {"StudyInstanceUID": ds.StudyInstanceUID, "OperatorsName": value}
        if fuzzy:
            params["fuzzymatching"] = "true"
        r = client.get("/dicomweb/studies", params={**params, "includefield": "OperatorsName"})
        assert r.status_code == 200, r.text
        (hit,) = r.json()
        assert Dataset.from_json(hit).OperatorsName == pydicom.dcmread(path).PatientName


@pytest.fixture(scope="module")
def indexing_server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    """A server with extra keys configured and a scan bound of 2 instances."""
    env = {
        **backend.env,
        "DICOM_FS_EXTRA_QUERY_KEYS": "BodyPartExamined,00091001,00081110.00081155",
        "DICOM_FS_QIDO_MAX_SCANNED": "2",
    }
    srv = start_server(tmp_path_factory.mktemp("extra") / "data", env, ("--workers", "1"))
    yield srv
    stop_server(srv)
    assert "Traceback" not in srv.log(), srv.log()


def _reindex(server: Server, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_FS_", "AWS_"))}
    env.update(server.env)
    command = [sys.executable, "-m", "dicom_file_service.cli", "db", "reindex"]
    done = subprocess.run(
        [*command, "--data-dir", str(server.data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_extra_keys_are_matched_on_their_index_after_db_reindex(indexing_server: Server) -> None:
    patient = f"EXTRA-{uuid.uuid4().hex[:8]}"
    datasets = _instances(patient, 5)
    DICOMwebClient(f"{indexing_server.base_url}/dicomweb").store_instances(datasets)
    sops = [ds.SOPInstanceUID for ds in datasets]
    queries = [
        ({"BodyPartExamined": "CHEST"}, {sops[0], sops[2], sops[4]}),
        ({"00091001": "Scanner 4"}, {sops[4]}),
        ({"00081110.00081155": "1.2.3"}, {sops[3]}),
    ]
    with indexing_server.client() as client:

        def search(params: dict[str, str]) -> httpx.Response:
            r = client.get("/dicomweb/instances", params={"PatientID": patient, **params})
            assert r.status_code == 200, r.text
            return r

        for params, _ in queries:  # not reindexed yet: the headers, two instances at most
            assert "DICOM_FS_QIDO_MAX_SCANNED" in search(params).headers["warning"]
        assert "not complete" in _reindex(
            indexing_server, "--batch-size", "1", "--max-batches", "1"
        )
        assert "complete" in _reindex(indexing_server, "--quiet")  # continues where it stopped
        for params, expected in queries:
            r = search(params)
            assert "warning" not in r.headers  # the index: nothing scanned, nothing cut
            assert _sops(r.json()) == expected
