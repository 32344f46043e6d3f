"""The archive as a DICOM network client, over REST, on every backend: C-ECHO now, C-STORE and
C-MOVE as background jobs polled at /jobs/{id}, against pynetdicom SCPs run here and the
server's own listener; the bytes a peer receives are the bytes stored."""

from __future__ import annotations

import contextlib
import io
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from tests.api.test_upload import assert_problem, post_raw
from tests.conftest import (
    Backend,
    Server,
    free_port,
    postgres_schema,
    start_server,
    stop_server,
)
from tests.datafiles import data_file
from tests.network.dimse_helpers import DEFLATED, data_set_of, meta_of, mixed_study


class StorageScp:
    """A pynetdicom Storage SCP keeping each received data set's bytes as they came."""

    def __init__(self, ae_title: str = "TESTSCP") -> None:
        self.received: dict[str, tuple[str, bytes]] = {}
        ae = AE(ae_title=ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        ae.add_supported_context(Verification)
        self.ae_title = ae_title
        self.port = free_port()
        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._store)]
        )

    def _store(self, event: Any) -> int:
        syntax = str(event.context.transfer_syntax)
        data = event.encoded_dataset(include_meta=False)
        self.received[str(event.request.AffectedSOPInstanceUID)] = (syntax, data)
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()


class MoveScp:
    """A pynetdicom Q/R SCP answering any C-MOVE by sending ``dataset`` to the destination,
    which it knows as ``destinations`` (AE title: (host, port))."""

    def __init__(self, dataset: Dataset, destinations: dict[str, tuple[str, int]]) -> None:
        self.dataset = dataset
        self.destinations = destinations
        self.identifiers: list[Dataset] = []
        ae = AE(ae_title="QRSCP")
        ae.add_supported_context(StudyRootQueryRetrieveInformationModelMove)
        ae.add_supported_context(PatientRootQueryRetrieveInformationModelMove)
        ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
        self.port = free_port()
        self.server = ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_MOVE, self._move)]
        )

    def _move(self, event: Any) -> Iterator[Any]:
        self.identifiers.append(event.identifier)
        destination = str(event.move_destination).strip()
        if destination not in self.destinations:
            yield None, None
            return
        yield self.destinations[destination]
        yield 1
        yield 0xFF00, self.dataset

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def storage_scp() -> Iterator[StorageScp]:
    scp = StorageScp()
    yield scp
    scp.stop()


@pytest.fixture
def names(client: httpx.Client) -> Iterator[list[str]]:
    """Modalities registered by a test, removed after it (the server is shared)."""
    registered: list[str] = []
    yield registered
    for name in registered:
        client.delete(f"/modalities/{name}")


def _register(
    client: httpx.Client, names: list[str], ae_title: str, port: int, **extra: Any
) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    body = {"ae_title": ae_title, "host": "127.0.0.1", "port": port, **extra}
    r = client.put(f"/modalities/{name}", json=body)
    assert r.status_code == 201, r.text
    names.append(name)
    return name


def _finished(client: httpx.Client, response: httpx.Response, seconds: float = 90) -> Any:
    """The job the 202 ``response`` started, polled until it ends."""
    assert response.status_code == 202, response.text
    location = response.headers["location"]
    job_id = response.json()["job"]
    assert location.endswith(f"/jobs/{job_id}")
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(location).json()
        assert job["id"] == job_id
        if job["state"] in ("succeeded", "failed"):
            return job
        assert job["state"] in ("pending", "running"), job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_echo_answers_success_or_says_why_not(
    client: httpx.Client, storage_scp: StorageScp, names: list[str]
) -> None:
    up = _register(client, names, storage_scp.ae_title, storage_scp.port)
    r = client.post(f"/modalities/{up}/echo")
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "0x0000", "success": True}

    down = _register(client, names, "NOBODY", free_port())
    r = client.post(f"/modalities/{down}/echo")
    assert r.status_code == 200, r.text
    assert r.json()["success"] is False
    assert "cannot be reached" in r.json()["detail"]

    assert_problem(client.post("/modalities/never-registered/echo"), 404, "modality_not_found")


def _upload_mixed(client: httpx.Client, tmp_path: Path) -> dict[str, str]:
    """A study of files in ten transfer syntaxes, uploaded; SOP Instance UID -> file id."""
    uploaded = {}
    for path in mixed_study(tmp_path / "mixed"):
        r = post_raw(client, path.read_bytes())
        assert r.status_code in (200, 201), r.text
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        uploaded[str(ds.SOPInstanceUID)] = r.json()["file_id"]
    return uploaded


def test_a_study_is_sent_as_stored(
    client: httpx.Client, storage_scp: StorageScp, names: list[str], tmp_path: Path
) -> None:
    uploaded = _upload_mixed(client, tmp_path)
    study = str(pydicom.dcmread(next(iter((tmp_path / "mixed").iterdir()))).StudyInstanceUID)
    name = _register(client, names, storage_scp.ae_title, storage_scp.port)

    job = _finished(client, client.post(f"/modalities/{name}/store", json={"resources": [study]}))
    assert job["state"] == "succeeded", job
    assert job["kind"] == "dimse-store"
    assert job["error"] is None
    assert (job["done"], job["total"]) == (len(uploaded), len(uploaded))
    assert job["result"]["sent"] == len(uploaded)
    assert job["result"]["failed"] == 0 and job["result"]["failed_sop_instance_uids"] == []
    assert job["created_at"] <= job["updated_at"]

    assert set(storage_scp.received) == set(uploaded)
    for sop, file_id in uploaded.items():
        stored = client.get(f"/dicom-image/{file_id}").content
        syntax, data = storage_scp.received[sop]
        assert syntax == str(meta_of(stored).TransferSyntaxUID), sop  # sent as stored
        if syntax == DEFLATED:
            data = zlib.decompress(data, -zlib.MAX_WBITS)
        assert data == data_set_of(stored), sop


def test_a_series_and_an_instance_are_sent_once_each(
    client: httpx.Client, storage_scp: StorageScp, names: list[str], tmp_path: Path
) -> None:
    uploaded = _upload_mixed(client, tmp_path)
    sop = next(iter(uploaded))
    ds = pydicom.dcmread(
        next(p for p in (tmp_path / "mixed").iterdir() if pydicom.dcmread(p).SOPInstanceUID == sop)
    )
    name = _register(client, names, storage_scp.ae_title, storage_scp.port)
    body = {"resources": [str(ds.SeriesInstanceUID), sop]}
    job = _finished(client, client.post(f"/modalities/{name}/store", json=body))
    assert job["state"] == "succeeded", job
    assert job["result"]["sent"] == 1
    assert set(storage_scp.received) == {sop}


def test_a_store_to_a_modality_that_is_down_fails_with_the_reason(
    client: httpx.Client, names: list[str]
) -> None:
    ds = _fresh_ct()
    assert post_raw(client, _encoded(ds)).status_code in (200, 201)
    name = _register(client, names, "NOBODY", free_port())
    body = {"resources": [str(ds.StudyInstanceUID)]}
    job = _finished(client, client.post(f"/modalities/{name}/store", json=body))
    assert job["state"] == "failed", job
    assert "cannot be reached" in job["error"]


def _encoded(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _fresh_ct() -> Dataset:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def test_unknown_modalities_jobs_and_uids_are_404s(client: httpx.Client, names: list[str]) -> None:
    uid = generate_uid()
    for op, body in (
        ("store", {"resources": [uid]}),
        ("retrieve", {"level": "STUDY", "uids": [uid]}),
    ):
        r = client.post(f"/modalities/never-registered/{op}", json=body)
        assert_problem(r, 404, "modality_not_found")
    assert_problem(client.get("/jobs/AAAAAAAAAAAAAAAAAAAAAA"), 404, "job_not_found")
    assert_problem(client.get("/jobs/not-an-id"), 404, "job_not_found")
    name = _register(client, names, "SOMEONE", free_port())
    r = client.post(f"/modalities/{name}/store", json={"resources": [uid]})
    body = assert_problem(r, 404, "resource_not_found")
    assert uid in str(body["detail"])


@pytest.mark.parametrize(
    ("op", "content", "named"),
    [
        ("store", b"{not json", "JSON"),
        ("store", b"[]", "object"),
        ("store", b"{}", "resources"),
        ("store", b'{"resources": []}', "resources"),
        ("store", b'{"resources": ["not a uid"]}', "resources"),
        ("store", b'{"resources": ["1.2"], "extra": 1}', "extra"),
        ("retrieve", b'{"uids": ["1.2"]}', "level"),
        ("retrieve", b'{"level": "FRAME", "uids": ["1.2"]}', "level"),
        ("retrieve", b'{"level": "STUDY"}', "uids"),
        ("retrieve", b'{"level": "STUDY", "uids": "1.2"}', "uids"),
        ("retrieve", b'{"level": "STUDY", "uids": ["1.2"], "study": "1.3"}', "study"),
        ("retrieve", b'{"level": "IMAGE", "uids": ["1.2"], "series": "x"}', "series"),
    ],
)
def test_a_bad_body_is_a_problem_naming_the_field(
    client: httpx.Client, names: list[str], op: str, content: bytes, named: str
) -> None:
    name = _register(client, names, "SOMEONE", free_port())
    r = client.post(
        f"/modalities/{name}/{op}", content=content, headers={"content-type": "application/json"}
    )
    body = assert_problem(r, 400, "malformed_body")
    assert named in str(body["detail"])


def test_a_retrieve_asks_the_modality_to_send_here(
    client: httpx.Client, server: Server, names: list[str], tmp_path: Path
) -> None:
    ds = _fresh_ct()
    path = tmp_path / "remote.dcm"
    ds.save_as(path, enforce_file_format=True)
    scp = MoveScp(pydicom.dcmread(path), {"DICOMFS": ("127.0.0.1", server.dicom_port)})
    try:
        name = _register(client, names, "QRSCP", scp.port)
        body = {"level": "STUDY", "uids": [str(ds.StudyInstanceUID)]}
        job = _finished(client, client.post(f"/modalities/{name}/retrieve", json=body))
    finally:
        scp.stop()
    assert job["state"] == "succeeded", job
    assert job["kind"] == "dimse-retrieve"
    assert job["result"]["status"] == "0x0000"
    assert (job["result"]["completed"], job["result"]["failed"]) == (1, 0)
    assert scp.identifiers[0].QueryRetrieveLevel == "STUDY"
    assert scp.identifiers[0].StudyInstanceUID == ds.StudyInstanceUID
    found = client.get("/dicomweb/instances", params={"SOPInstanceUID": str(ds.SOPInstanceUID)})
    assert found.status_code == 200, found.text
    assert len(found.json()) == 1


def test_a_retrieve_from_our_own_listener_and_a_refused_one(
    client: httpx.Client, server: Server, names: list[str]
) -> None:
    """Our listener as the remote: a C-MOVE of a stored instance to ourselves completes; one
    by a modality that does not know us as a destination fails, with its status."""
    ds = _fresh_ct()
    assert post_raw(client, _encoded(ds)).status_code in (200, 201)
    own = _register(client, names, "DICOMFS", server.dicom_port, allow=["echo", "store", "move"])
    assert client.post(f"/modalities/{own}/echo").json()["success"] is True
    body = {"level": "IMAGE", "uids": [str(ds.SOPInstanceUID)], "study": str(ds.StudyInstanceUID)}
    job = _finished(client, client.post(f"/modalities/{own}/retrieve", json=body))
    assert job["state"] == "succeeded", job
    assert job["result"]["completed"] + job["result"]["warning"] == 1
    client.delete(f"/modalities/{own}")  # no longer a known destination: 0xA801
    names.remove(own)

    scp = MoveScp(ds, {})
    try:
        name = _register(client, names, "QRSCP", scp.port)
        body = {"level": "PATIENT", "uids": ["SOMEONE"]}
        job = _finished(client, client.post(f"/modalities/{name}/retrieve", json=body))
    finally:
        scp.stop()
    assert job["state"] == "failed", job
    assert "0xA801" in job["error"]
    assert scp.identifiers[0].QueryRetrieveLevel == "PATIENT"


def test_a_job_waiting_when_the_service_stops_runs_when_it_is_back(
    backend: Backend, tmp_path: Path
) -> None:
    """Durable on either queue: a job made while no process runs jobs stays pending through a
    restart, and runs once one does."""
    with contextlib.ExitStack() as stack:
        env = dict(backend.env)
        if "DICOM_FS_DATABASE_URL" in env:  # a schema of its own: no other server's workers
            env["DICOM_FS_DATABASE_URL"] = stack.enter_context(postgres_schema())
        _durable(env, tmp_path)


def _durable(env: dict[str, str], tmp_path: Path) -> None:
    scp = StorageScp()
    srv = start_server(tmp_path / "data", {**env, "DICOM_FS_JOBS_IN_PROCESS": "false"})
    try:
        with srv.client() as c:
            ds = _fresh_ct()
            assert post_raw(c, _encoded(ds)).status_code in (200, 201)
            r = c.put(
                "/modalities/scp",
                json={"ae_title": scp.ae_title, "host": "127.0.0.1", "port": scp.port},
            )
            assert r.status_code == 201
            r = c.post("/modalities/scp/store", json={"resources": [str(ds.StudyInstanceUID)]})
            assert r.status_code == 202, r.text
            location = r.headers["location"]
            time.sleep(2)
            assert c.get(location).json()["state"] == "pending"
    finally:
        stop_server(srv)
    srv = start_server(tmp_path / "data", {**env, "DICOM_FS_JOBS_IN_PROCESS": "true"})
    try:
        with srv.client() as c:
            job = _finished(c, _Accepted(location))
        assert job["state"] == "succeeded", job
        assert set(scp.received) == {str(ds.SOPInstanceUID)}
    finally:
        stop_server(srv)
        scp.stop()
    assert "Traceback" not in srv.log()


class _Accepted(httpx.Response):
    """A 202 naming ``location`` (for polling a job made by an earlier process)."""

    def __init__(self, location: str) -> None:
        job = location.rsplit("/", 1)[1]
        super().__init__(202, headers={"location": location}, json={"job": job})
