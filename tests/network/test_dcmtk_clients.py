"""The DICOM listener with real clients no one here wrote: DCMTK's echoscu, storescu,
findscu, movescu (to DCMTK's storescp) and getscu, on every backend. What goes in over the
network comes back byte for byte over WADO-RS and C-GET/C-MOVE, and a C-FIND finds what
QIDO-RS finds."""

from __future__ import annotations

import io
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest

from tests.conftest import Server, free_port
from tests.network.dimse_helpers import (
    MIXED,
    data_set_of,
    dcmtk,
    meta_of,
    mixed_study,
    need_dcmtk,
    register,
    run,
    storescu_config,
    wado_stored,
)

pytestmark = pytest.mark.usefixtures("dcmtk_present")
EXPLICIT, DEFLATED = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.1.99"
UNCOMPRESSED = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.1.99",
    "1.2.840.10008.1.2.2",
)


@pytest.fixture(scope="module")
def dcmtk_present() -> None:
    need_dcmtk()


def _peer(server: Server) -> list[str]:
    return ["-aec", "DICOMFS", "127.0.0.1", str(server.dicom_port)]


@pytest.fixture(scope="module")
def stored(server: Server, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A study in every syntax of MIXED, four copies, sent by four storescu at once."""
    files = mixed_study(tmp_path_factory.mktemp("mixed"), copies=4)
    quarters = [files[i::4] for i in range(4)]
    config = storescu_config(files, files[0].parent)

    def send(batch: list[Path]) -> subprocess.CompletedProcess[str]:
        return run(["storescu", *config, "-aet", "MODALITY", *_peer(server), *map(str, batch)])

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(send, quarters))
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Store Failed" not in result.stderr, result.stderr
    return files


@pytest.fixture(scope="module")
def on_the_wire(stored: list[Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What storescu sends of each file (it re-encodes: sequence lengths, padding, VRs), as
    DCMTK's own storescp keeps it with --bit-preserving, by SOP Instance UID."""
    inbox = tmp_path_factory.mktemp("wire")
    port = free_port()
    scp = subprocess.Popen(
        [dcmtk("storescp") or "storescp", "+B", "+xa", "-od", str(inbox), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        config = storescu_config(stored, stored[0].parent)
        for _ in range(50):
            result = run(
                ["storescu", *config, "-aec", "STORESCP", "127.0.0.1", str(port), *map(str, stored)]
            )
            if "Association Request Failed" not in result.stderr:
                break
        assert result.returncode == 0, result.stderr
    finally:
        scp.terminate()
        scp.wait(timeout=10)
    return _by_uid(list(inbox.iterdir()))


def test_echoscu_is_answered(server: Server) -> None:
    result = run(["echoscu", "-v", *_peer(server)])
    assert result.returncode == 0, result.stderr
    assert "Received Echo Response" in result.stderr and "Success" in result.stderr


def test_storescu_of_mixed_syntaxes_comes_back_byte_identical_over_wado(
    stored: list[Path], on_the_wire: dict[str, bytes], client: httpx.Client
) -> None:
    for path in stored:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        back = wado_stored(client, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        sent = on_the_wire[ds.SOPInstanceUID]
        assert data_set_of(back) == data_set_of(sent), path.name
        meta = meta_of(back)
        assert meta.SourceApplicationEntityTitle == "MODALITY"
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        syntax = str(ds.file_meta.TransferSyntaxUID)
        kept = "1.2.840.10008.1.2.1" if syntax == "1.2.840.10008.1.2.1.99" else syntax
        assert meta.TransferSyntaxUID == kept, path.name


def test_an_identical_resend_succeeds(stored: list[Path], server: Server) -> None:
    config = storescu_config(stored, stored[0].parent)
    result = run(["storescu", *config, "-aet", "OTHER", *_peer(server), str(stored[0])])
    assert result.returncode == 0 and "Store Failed" not in result.stderr, result.stderr


def _findscu(server: Server, root: str, keys: dict[str, str], out: Path) -> list[pydicom.Dataset]:
    out.mkdir(parents=True, exist_ok=True)
    args = ["findscu", root, "-aet", "FINDSCU", "-X", "-od", str(out)]
    for key, value in keys.items():
        args += ["-k", f"{key}={value}"]
    result = run([*args, *_peer(server)])
    assert result.returncode == 0, result.stderr
    assert "Unknown Status" not in result.stderr and "Failed" not in result.stderr, result.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


@pytest.fixture(scope="module")
def finder(server: Server) -> None:
    with server.client() as c:
        register(c, "findscu", "FINDSCU", allow=["find"])


@pytest.mark.usefixtures("finder")
@pytest.mark.parametrize("root", ["-S", "-P"])
def test_findscu_at_every_level_finds_what_qido_finds(
    root: str, stored: list[Path], server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    first = pydicom.dcmread(stored[0], stop_before_pixels=True)
    study = first.StudyInstanceUID
    qido = client.get("/dicomweb/studies", params={"PatientID": "DIMSE-MIXED"}).json()
    studies = _findscu(
        server,
        root,
        {
            "QueryRetrieveLevel": "STUDY",
            "PatientID": "DIMSE-MIXED",
            "StudyInstanceUID": "",
            "NumberOfStudyRelatedInstances": "",
            "NumberOfStudyRelatedSeries": "",
        },
        tmp_path / "study",
    )
    assert {d.StudyInstanceUID for d in studies} == {s["0020000D"]["Value"][0] for s in qido}
    ours = next(d for d in studies if d.StudyInstanceUID == study)
    assert int(ours.NumberOfStudyRelatedInstances) == len(stored)
    assert int(ours.NumberOfStudyRelatedSeries) == len(stored)

    upper = {"PatientID": "DIMSE-MIXED"} if root == "-P" else {}
    series = _findscu(
        server,
        root,
        {
            "QueryRetrieveLevel": "SERIES",
            **upper,
            "StudyInstanceUID": study,
            "SeriesInstanceUID": "",
            "Modality": "",
            "NumberOfSeriesRelatedInstances": "",
        },
        tmp_path / "series",
    )
    qido_series = client.get(f"/dicomweb/studies/{study}/series").json()
    assert sorted(d.SeriesInstanceUID for d in series) == sorted(
        s["0020000E"]["Value"][0] for s in qido_series
    )
    assert all(int(d.NumberOfSeriesRelatedInstances) == 1 for d in series)

    images = _findscu(
        server,
        root,
        {
            "QueryRetrieveLevel": "IMAGE",
            **upper,
            "StudyInstanceUID": study,
            "SeriesInstanceUID": first.SeriesInstanceUID,
            "SOPInstanceUID": "",
            "SOPClassUID": "",
        },
        tmp_path / "image",
    )
    assert [(d.SOPInstanceUID, d.SOPClassUID) for d in images] == [
        (first.SOPInstanceUID, first.SOPClassUID)
    ]


@pytest.mark.usefixtures("finder")
def test_findscu_patient_level_counts_the_patients_studies(
    stored: list[Path], server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    patients = _findscu(
        server,
        "-P",
        {
            "QueryRetrieveLevel": "PATIENT",
            "PatientID": "DIMSE-MIX*",
            "PatientName": "",
            "NumberOfPatientRelatedStudies": "",
            "NumberOfPatientRelatedInstances": "",
        },
        tmp_path,
    )
    assert [p.PatientID for p in patients] == ["DIMSE-MIXED"]
    # Other tests store studies of this patient too: the counts are QIDO-RS's.
    studies = client.get("/dicomweb/studies", params={"PatientID": "DIMSE-MIXED"}).json()
    assert int(patients[0].NumberOfPatientRelatedStudies) == len(studies)
    assert int(patients[0].NumberOfPatientRelatedInstances) == sum(
        s["00201208"]["Value"][0] for s in studies
    )
    assert len(studies) >= 1 and sum(s["00201208"]["Value"][0] for s in studies) >= len(stored)


def test_findscu_from_an_unregistered_ae_is_refused(server: Server, tmp_path: Path) -> None:
    result = run(
        [
            "findscu",
            "-v",
            "-S",
            "-aet",
            "STRANGER",
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            "StudyInstanceUID=",
            *_peer(server),
        ]
    )
    assert "0x124" in result.stderr.lower(), result.stderr  # Refused: Not Authorized
    assert "Pending" not in result.stderr


def _by_uid(files: list[Path]) -> dict[str, bytes]:
    return {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID: p.read_bytes() for p in files
    }


def test_getscu_retrieves_the_study_as_stored_or_transcoded(
    stored: list[Path], server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    """getscu accepts only uncompressed syntaxes: what is stored so comes back byte for byte
    (+B keeps the bytes received), what is compressed comes back decoded, the same pixels."""
    register(client, "getscu", "GETSCU", allow=["get"])
    study = pydicom.dcmread(stored[0], stop_before_pixels=True).StudyInstanceUID
    result = run(
        [
            "getscu",
            "-S",
            "+B",
            "-aet",
            "GETSCU",
            "-od",
            str(tmp_path),
            "-k",
            "QueryRetrieveLevel=STUDY",
            "-k",
            f"StudyInstanceUID={study}",
            *_peer(server),
        ]
    )
    assert result.returncode == 0, result.stderr
    received = _by_uid(list(tmp_path.iterdir()))
    sent = _by_uid(stored)
    assert received.keys() == sent.keys()
    for uid, original in sent.items():
        ds = pydicom.dcmread(io.BytesIO(original))
        got = received[uid]
        back = pydicom.dcmread(io.BytesIO(got))
        # getscu proposes one context per SOP class, and we accept Explicit VR Little Endian
        assert back.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        if ds.file_meta.TransferSyntaxUID in (EXPLICIT, DEFLATED):
            ours = wado_stored(client, ds.StudyInstanceUID, ds.SeriesInstanceUID, uid)
            assert data_set_of(got) == data_set_of(ours)  # as stored (a deflated one inflated)
            continue
        if ds.file_meta.TransferSyntaxUID in UNCOMPRESSED:  # made explicit, swapped
            assert [e.value for e in back if e.keyword != "PixelData"] == [
                e.value for e in ds if e.keyword != "PixelData"
            ]
            assert np.array_equal(back.pixel_array, ds.pixel_array)
            continue
        lossy = ds.file_meta.TransferSyntaxUID in ("1.2.840.10008.1.2.4.50",)
        difference = np.abs(back.pixel_array.astype(int) - ds.pixel_array.astype(int)).max()
        assert difference <= (8 if lossy else 0), (ds.file_meta.TransferSyntaxUID, difference)


def test_movescu_sends_a_series_to_a_registered_storescp(
    stored: list[Path], server: Server, client: httpx.Client, tmp_path: Path
) -> None:
    port = free_port()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    scp = subprocess.Popen(
        [dcmtk("storescp") or "storescp", "-aet", "STORESCP", "-od", str(inbox), "+xa", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        register(client, "storescp", "STORESCP", port=port, allow=[])
        register(client, "movescu", "MOVESCU", allow=["move"])
        first = pydicom.dcmread(stored[1], stop_before_pixels=True)
        result = run(
            [
                "movescu",
                "-S",
                "-aet",
                "MOVESCU",
                "-aem",
                "STORESCP",
                "-k",
                "QueryRetrieveLevel=SERIES",
                "-k",
                f"StudyInstanceUID={first.StudyInstanceUID}",
                "-k",
                f"SeriesInstanceUID={first.SeriesInstanceUID}",
                *_peer(server),
            ]
        )
        assert result.returncode == 0, result.stderr
        received = list(inbox.iterdir())
        assert len(received) == 1
        ours = wado_stored(
            client, first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID
        )  # storescp +B keeps the bytes as they came: ours, as stored
        assert data_set_of(received[0].read_bytes()) == data_set_of(ours)
        unknown = run(
            [
                "movescu",
                "-S",
                "-aet",
                "MOVESCU",
                "-aem",
                "NOWHERE",
                "-k",
                "QueryRetrieveLevel=STUDY",
                "-k",
                f"StudyInstanceUID={first.StudyInstanceUID}",
                *_peer(server),
            ]
        )
        assert "MoveDestinationUnknown" in unknown.stderr, unknown.stderr  # 0xA801
    finally:
        scp.terminate()
        scp.wait(timeout=10)


def test_the_mixed_set_covers_its_syntaxes() -> None:
    syntaxes = {
        str(pydicom.dcmread(p, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        for p in map(lambda n: __import__("tests.datafiles").datafiles.data_file(n), MIXED)
    }
    assert len(syntaxes) >= 9
