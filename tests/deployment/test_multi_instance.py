"""Two service instances and a worker on one PostgreSQL database and one bucket: any instance
serves what another stored, racing uploads store exactly one instance per UID, and the
background renderings of every upload get made."""

from __future__ import annotations

import concurrent.futures
import io
import time

import httpx
import pydicom
from pydicom.uid import generate_uid

from dicom_file_service.service.ids import instance_key
from tests.api.dicom_factory import changed_content, copy_with_new_uid
from tests.api.test_upload import post_raw
from tests.datafiles import data_file
from tests.deployment.conftest import Topology, wait_for


def test_an_upload_through_one_instance_is_served_by_the_other(topology: Topology) -> None:
    """The second reads the store; the first keeps a copy of what it stored and reads that
    (the stored bytes). Once the second has deleted the file, the first answers 404 from the
    index, whatever its disk still holds until the copy's sweep."""
    first, second = topology.serve(), topology.serve()
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    with first.client() as a, second.client() as b:
        stored = post_raw(a, data)
        assert stored.status_code == 201, stored.text
        file_id = stored.json()["file_id"]
        assert first.local_copies() == [instance_key(file_id)]
        assert second.local_copies() == []
        assert b.get(f"/dicom-image/{file_id}").content == data
        name = b.get(f"/dicom-image/{file_id}", params={"dicom_tag": "(0010,0010)"}).json()
        assert name["value"] == "CompressedSamples^CT1"
        png = b.get(f"/dicom-image/{file_id}/png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        assert a.get(f"/dicom-image/{file_id}").content == data
        assert a.get(f"/dicom-image/{file_id}/png").content == png.content
        assert b.delete(f"/dicom-image/{file_id}").status_code == 204
        for client in (a, b):
            for path in (f"/dicom-image/{file_id}", f"/dicom-image/{file_id}/png"):
                assert client.get(path).status_code == 404, path


def test_what_an_instance_keeps_in_memory_is_not_served_once_a_delete_elsewhere_returns(
    topology: Topology,
) -> None:
    """Every worker of the second instance has the file's header, location and answers in
    memory (asked again and again); a delete through the first is answered promptly (each
    worker acknowledges it) and from its answer on no worker serves the file."""
    first, second = topology.serve(), topology.serve()
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    tag = {"dicom_tag": "(0010,0010)"}
    with first.client() as a, second.client() as b:
        file_id = post_raw(a, data).json()["file_id"]
        for _ in range(20):  # new connections: both workers answer some
            with second.client() as fresh:
                assert fresh.get(f"/dicom-image/{file_id}", params=tag).status_code == 200
                assert fresh.get(f"/dicom-image/{file_id}/png").status_code == 200
        started = time.monotonic()
        assert a.delete(f"/dicom-image/{file_id}").status_code == 204
        assert time.monotonic() - started < 2.5  # acknowledged, not a lease waited out
        for _ in range(20):
            with second.client() as fresh:
                assert fresh.get(f"/dicom-image/{file_id}", params=tag).status_code == 404
                assert fresh.get(f"/dicom-image/{file_id}/png").status_code == 404
        assert b.get(f"/dicom-image/{file_id}").status_code == 404


def test_fifty_concurrent_uploads_with_races_over_two_instances(topology: Topology) -> None:
    servers = [topology.serve(), topology.serve()]
    template = data_file("CT_small.dcm")
    identical = copy_with_new_uid(template)  # 10 racing byte-identical copies
    contested = copy_with_new_uid(template)  # 5 racing copies with different bytes
    contenders = [changed_content(contested, PatientID=f"RACER-{i}") for i in range(5)]
    distinct = [copy_with_new_uid(template) for _ in range(35)]
    bodies = [identical] * 10 + contenders + distinct
    assert len(bodies) == 50

    def upload(i: int) -> httpx.Response:
        with httpx.Client(base_url=servers[i % 2].base_url, timeout=120) as c:
            return post_raw(c, bodies[i])

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(upload, range(50)))

    statuses = [r.status_code for r in responses]
    assert all(s < 500 for s in statuses), [r.text for r in responses if r.status_code >= 500]
    same = responses[:10]
    assert sorted(r.status_code for r in same).count(201) == 1
    assert {r.status_code for r in same} <= {200, 201}
    assert len({r.json()["file_id"] for r in same}) == 1
    racing = responses[10:15]
    assert [r.status_code for r in racing].count(201) == 1
    assert sorted(r.status_code for r in racing if r.status_code != 201) == [409] * 4
    assert all(r.status_code == 201 for r in responses[15:])

    acknowledged = {r.json()["file_id"]: bodies[i] for i, r in enumerate(responses) if r.is_success}
    assert len(acknowledged) == 1 + 1 + 35
    for uid, count in topology.sql(
        "SELECT sop_instance_uid, count(*) FROM instances GROUP BY sop_instance_uid"
    ):
        assert count == 1, uid
    for srv in servers:
        with srv.client() as c:
            for file_id, data in acknowledged.items():
                assert c.get(f"/dicom-image/{file_id}").content == data


def _renderings_done(topology: Topology, file_ids: list[str]) -> bool:
    keys = set(topology.servers[0].stored_keys("renderings"))
    return all(
        sum(1 for k in keys if f"/{file_id}/" in k) >= 2  # the default PNG and the thumbnail
        for file_id in file_ids
    )


def _slow_file() -> bytes:
    """A JPEG 2000 file with a new identity: a rendering that takes a noticeable time."""
    ds = pydicom.dcmread(data_file("MR2_J2KR.dcm"))
    uid = generate_uid()
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=False)
    return out.getvalue()


def test_every_prerender_job_completes_across_a_killed_worker(topology: Topology) -> None:
    """No worker while 20 files arrive; then a worker is killed (SIGKILL) mid-way and another
    started: every job still completes, none is lost."""
    server = topology.serve()
    with server.client() as c:
        file_ids = [post_raw(c, _slow_file()).json()["file_id"] for _ in range(20)]
    queued = topology.sql(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'prerender_file'"
    )
    assert queued == [(20,)]  # enqueued with the rows, none run yet
    victim = topology.worker()
    wait_for(
        lambda: (
            topology.sql(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'prerender_file' "
                "AND status IN ('doing', 'succeeded')"
            )[0][0]
            > 0
        ),
        60,
        "the first worker to start on the jobs",
    )
    victim.kill()
    victim.wait()
    topology.worker()
    wait_for(
        lambda: (
            topology.sql(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name = 'prerender_file' AND status = 'succeeded'"
            )
            == [(20,)]
        ),
        120,
        "every prerender job to succeed",
    )
    assert _renderings_done(topology, file_ids)
    requeued = topology.sql(
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'prerender_file' "
        "AND attempts > 0"
    )
    assert requeued[0][0] >= 1  # the killed worker's job was taken over, not lost
    with server.client() as c:
        for file_id in file_ids[:3]:  # served from the cache the worker filled
            assert c.get(f"/dicom-image/{file_id}/png").status_code == 200
