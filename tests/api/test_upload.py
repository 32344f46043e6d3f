"""POST /dicom-image: storing files, duplicates, and every kind of bad upload."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dicom_file_service.service.ids import instance_key
from tests.api.dicom_factory import changed_content, copy_with_new_uid, nested_sequences, without
from tests.conftest import Backend, Server, start_server, stop_server
from tests.datafiles import data_file

CT = data_file("CT_small.dcm")
UPLOAD_FIELDS = {
    "file_id",
    "warnings",
    "sop_instance_uid",
    "series_instance_uid",
    "study_instance_uid",
    "sop_class_uid",
    "transfer_syntax_uid",
    "size",
    "sha256",
}


def post_form(client: httpx.Client, data: bytes, **params: str) -> httpx.Response:
    return client.post("/dicom-image", files={"file": ("IM000001", data)}, params=params)


def post_raw(
    client: httpx.Client, data: bytes, content_type: str = "application/dicom", **params: str
) -> httpx.Response:
    return client.post(
        "/dicom-image", content=data, params=params, headers={"content-type": content_type}
    )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    assert body["title"] and body["type"]
    return body  # type: ignore[no-any-return]


def test_multipart_upload_is_stored_and_described(client: httpx.Client) -> None:
    data = copy_with_new_uid(CT)
    r = post_form(client, data)
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == UPLOAD_FIELDS
    assert r.headers["location"] == f"/dicom-image/{body['file_id']}"
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["study_instance_uid"] == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert body["transfer_syntax_uid"] == "1.2.840.10008.1.2.1"
    assert body["sop_class_uid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert client.get(f"/dicom-image/{body['file_id']}").content == data


def test_raw_application_dicom_upload(client: httpx.Client) -> None:
    data = copy_with_new_uid(CT)
    r = post_raw(client, data)
    assert r.status_code == 201, r.text
    assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()


def test_file_ids_are_opaque_and_unguessable(client: httpx.Client) -> None:
    ids = {post_raw(client, copy_with_new_uid(CT)).json()["file_id"] for _ in range(3)}
    assert len(ids) == 3
    for file_id in ids:
        assert len(file_id) >= 22 and "/" not in file_id and "." not in file_id


def test_identical_bytes_again_return_200_and_the_same_id(client: httpx.Client) -> None:
    data = copy_with_new_uid(CT)
    first = post_form(client, data)
    again = post_raw(client, data)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()


def test_other_bytes_under_a_stored_uid_are_a_conflict(client: httpx.Client) -> None:
    data = copy_with_new_uid(CT)
    first = post_form(client, data).json()
    other = changed_content(data, PatientName="Other^Name")
    conflict = post_form(client, other)
    body = assert_problem(conflict, 409, "duplicate_sop_instance")
    assert "overwrite=true" in str(body["detail"])
    # Nothing stored was altered.
    assert client.get(f"/dicom-image/{first['file_id']}").content == data

    replaced = post_form(client, other, overwrite="true")
    assert replaced.status_code == 201
    new = replaced.json()
    assert new["file_id"] != first["file_id"]
    assert new["sop_instance_uid"] == first["sop_instance_uid"]
    assert client.get(f"/dicom-image/{new['file_id']}").content == other
    assert_problem(client.get(f"/dicom-image/{first['file_id']}"), 404, "file_not_found")


def test_refused_uploads_leave_no_blob_behind(server: Server, client: httpx.Client) -> None:
    """On S3 an upload's bytes go up while it is parsed: a file the parse or the index then
    refuses has its blob removed before the answer (on local disk it was never written)."""
    stored = copy_with_new_uid(CT)
    first = post_form(client, stored)
    assert first.status_code == 201
    blobs = server.stored_keys("instances/")
    data = copy_with_new_uid(CT)
    assert_problem(post_raw(client, bytes(range(256)) * 64), 422, "invalid_dicom")
    assert_problem(post_form(client, data[: len(data) // 2]), 422, "invalid_dicom")
    assert_problem(post_form(client, without(CT, "SOPInstanceUID")), 422, "missing_identity")
    other = changed_content(stored, PatientName="Other^Name")
    assert_problem(post_form(client, other), 409, "duplicate_sop_instance")
    assert server.stored_keys("instances/") == blobs
    assert server.scratch_files() == []
    # Beside S3, copies of stored files are kept: of these, and of no refused one.
    copies = server.local_copies()
    assert set(copies) <= set(blobs)
    assert (instance_key(first.json()["file_id"]) in copies) == server.on_s3()


def test_empty_body_is_rejected(client: httpx.Client) -> None:
    assert_problem(post_raw(client, b""), 400, "empty_upload")
    assert_problem(post_form(client, b""), 400, "empty_upload")


def test_missing_file_field_is_rejected(client: httpx.Client) -> None:
    r = client.post("/dicom-image", files={"upload": ("IM000001", CT.read_bytes())})
    assert_problem(r, 400, "missing_file_field")
    r = client.post(
        "/dicom-image",
        data={"note": "no file here"},
        headers={"content-type": "multipart/form-data; boundary=xyz"},
    )
    assert r.status_code == 400


def test_two_file_parts_are_rejected(client: httpx.Client) -> None:
    r = client.post(
        "/dicom-image", files=[("file", ("a", CT.read_bytes())), ("file", ("b", CT.read_bytes()))]
    )
    assert_problem(r, 400, "malformed_body")


def test_not_dicom_is_rejected(client: httpx.Client) -> None:
    assert_problem(post_form(client, b"hello, I am a text file\n" * 50), 422, "invalid_dicom")
    assert_problem(post_raw(client, bytes(range(256)) * 64), 422, "invalid_dicom")


def test_truncated_file_is_rejected_and_nothing_stored(client: httpx.Client) -> None:
    data = copy_with_new_uid(CT)
    before = client.get("/dicom-image", params={"limit": 1000}).json()["items"]
    for cut in (200, 1000, len(data) // 2, len(data) - 10):
        assert_problem(post_form(client, data[:cut]), 422, "invalid_dicom")
    after = client.get("/dicom-image", params={"limit": 1000}).json()["items"]
    assert after == before


def test_sequences_nested_2000_deep_are_refused_naming_the_limit(
    server: Server, client: httpx.Client
) -> None:
    """Once a 500 (the JSON encoder's recursion limit) with the blob left behind."""
    blobs = server.stored_keys("instances/")
    body = assert_problem(post_form(client, nested_sequences(2000)), 422, "too_deeply_nested")
    assert "64 levels" in str(body["detail"])
    assert server.stored_keys("instances/") == blobs
    assert server.scratch_files() == []
    ok = post_form(client, nested_sequences(40))  # deep, but within what IODs use
    assert ok.status_code == 201, ok.text


def test_more_frames_than_a_file_can_hold_are_refused(client: httpx.Client) -> None:
    """Number of Frames over 2**31 - 1 overflowed the PostgreSQL column: a 500 there."""
    # Encapsulated, so that no Pixel Data length check stops it first.
    data = copy_with_new_uid(data_file("MR2_J2KR.dcm"), NumberOfFrames="3000000000")
    body = assert_problem(post_form(client, data), 422, "invalid_dicom")
    assert "Number of Frames" in str(body["detail"])


@pytest.mark.parametrize("missing", ["SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"])
def test_missing_identity_is_rejected(client: httpx.Client, missing: str) -> None:
    data = without(CT, missing)
    body = assert_problem(post_form(client, data), 422, "missing_identity")
    assert "UID" in str(body["detail"])


@pytest.fixture(scope="module")
def hasty_render_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[Server]:
    """Renderings must finish within a millisecond: more than any real one takes."""
    srv = start_server(
        tmp_path_factory.mktemp("hasty") / "data",
        {**backend.env, "DICOM_FS_RENDER_TIMEOUT_SECONDS": "0.001"},
    )
    yield srv
    stop_server(srv)


def test_uploads_are_not_bound_by_the_render_timeout(hasty_render_server: Server) -> None:
    """Ingest once ran under the render timeout: an upload was told 503 render_timeout while
    its work went on and could still commit. It has its own pool and no such bound."""
    with hasty_render_server.client() as c:
        for data in (copy_with_new_uid(CT), copy_with_new_uid(data_file("MR2_J2KR.dcm"))):
            r = post_form(c, data)
            assert r.status_code == 201, r.text
            assert c.get(f"/dicom-image/{r.json()['file_id']}").content == data
        assert_problem(c.get(f"/dicom-image/{r.json()['file_id']}/png"), 503, "render_timeout")


def test_wrong_content_type_is_415(client: httpx.Client) -> None:
    assert_problem(post_raw(client, CT.read_bytes(), "text/plain"), 415, "unsupported_media_type")
    r = client.post("/dicom-image", json={"file": "x"})
    assert_problem(r, 415, "unsupported_media_type")


def test_broken_multipart_is_rejected(client: httpx.Client) -> None:
    body = b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + CT.read_bytes()
    r = client.post(
        "/dicom-image", content=body, headers={"content-type": "multipart/form-data; boundary=xyz"}
    )
    assert_problem(r, 400, "malformed_body")
    r = client.post(
        "/dicom-image", content=b"whatever", headers={"content-type": "multipart/form-data"}
    )
    assert_problem(r, 400, "malformed_body")


@pytest.fixture(scope="module")
def small_limit_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("small") / "data",
        {
            **backend.env,
            "DICOM_FS_MAX_UPLOAD_BYTES": "20000",
            "DICOM_FS_MAX_DECODED_PIXELS": "1000",
            "DICOM_FS_UPLOAD_TIMEOUT_SECONDS": "1",
        },
    )
    yield srv
    stop_server(srv)


def test_uploads_over_the_limit_are_413_and_leave_nothing(small_limit_server: Server) -> None:
    with small_limit_server.client() as c:
        before = c.get("/dicom-image", params={"limit": 1000}).json()["items"]
        data = CT.read_bytes()  # ~39 KB, over the 20,000-byte limit
        assert_problem(post_raw(c, data), 413, "payload_too_large")
        assert_problem(post_form(c, data), 413, "payload_too_large")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while streaming
            for i in range(0, len(data), 4096):
                yield data[i : i + 4096]

        r = c.post("/dicom-image", content=chunks(), headers={"content-type": "application/dicom"})
        assert_problem(r, 413, "payload_too_large")
        assert c.get("/dicom-image", params={"limit": 1000}).json()["items"] == before
    assert small_limit_server.scratch_files() == []


def test_staging_is_empty_after_rejections(server: Server, client: httpx.Client) -> None:
    post_form(client, b"garbage" * 100)
    post_raw(client, b"")
    assert [name for name in server.scratch_files() if name.startswith("upload-")] == []


def test_uploaded_blob_is_under_a_sharded_opaque_key(server: Server, client: httpx.Client) -> None:
    file_id = post_raw(client, copy_with_new_uid(CT)).json()["file_id"]
    assert f"instances/{file_id[:2]}/{file_id}" in server.stored_keys(f"instances/{file_id[:2]}/")


def test_every_file_in_a_folder_upload_roundtrips(client: httpx.Client, tmp_path: Path) -> None:
    for name in ("MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "emri_small.dcm"):
        data = data_file(name).read_bytes()
        r = post_form(client, data)
        assert r.status_code in (200, 201), r.text
        assert client.get(f"/dicom-image/{r.json()['file_id']}").content == data


def test_frames_over_the_pixel_budget_are_refused(small_limit_server: Server) -> None:
    with small_limit_server.client() as c:
        r = post_raw(c, data_file("MR_small.dcm").read_bytes())  # 64 x 64 > 1,000 samples
        assert r.status_code in (200, 201), r.text  # 200: stored by another test already
        body = assert_problem(
            c.get(f"/dicom-image/{r.json()['file_id']}/png"), 422, "image_too_large"
        )
        assert "4096" in str(body["detail"])


def test_an_upload_that_trickles_past_the_deadline_is_408(small_limit_server: Server) -> None:
    def trickle() -> Iterator[bytes]:
        for _ in range(4):
            time.sleep(0.5)
            yield b"\x00" * 16

    with small_limit_server.client() as c:
        r = c.post("/dicom-image", content=trickle(), headers={"content-type": "application/dicom"})
        assert_problem(r, 408, "request_timeout")


def test_a_direct_upload_over_the_limit_is_refused_and_removed(
    small_limit_server: Server,
) -> None:
    """The service's own signed PUT stops at the limit; an S3 presigned PUT cannot, so
    completing it is refused (before fetching it) and the bytes removed."""
    with small_limit_server.client() as c:
        grant = c.post("/dicom-image/upload-url").json()
        put = httpx.put(
            grant["upload_url"],
            content=CT.read_bytes(),  # ~39 KB, over the 20,000-byte limit
            headers={"content-type": "application/dicom"},
            timeout=30,
        )
        complete = f"/dicom-image/uploads/{grant['upload_id']}/complete"
        if put.status_code == 200:  # an object store took it
            assert_problem(c.post(complete), 413, "payload_too_large")
        else:
            assert_problem(put, 413, "payload_too_large")
        assert_problem(c.post(complete), 404, "upload_not_found")


def test_an_upload_answered_before_the_framework_answers_as_its_route(
    client: httpx.Client,
) -> None:
    """``POST /dicom-image`` without parameters is answered by the fast path, with the route's
    parameters by the route (``overwrite=false`` is the default): the same answers."""
    requests: list[dict[str, Any]] = [
        {"files": {"file": ("x", b"not dicom at all" * 10)}},
        {"files": {"other": ("x", b"data")}},
        {"content": b"", "headers": {"content-type": "application/dicom"}},
        {"content": b"x", "headers": {"content-type": "text/plain"}},
        {"content": b"--b\r\n", "headers": {"content-type": "multipart/form-data; boundary=b"}},
    ]
    for request in requests:
        fast = client.post("/dicom-image", **request)
        routed = client.post("/dicom-image", params={"overwrite": "false"}, **request)
        assert fast.status_code >= 400
        assert (fast.status_code, fast.json()) == (routed.status_code, routed.json())
        assert fast.headers["content-type"] == routed.headers["content-type"]
    first = post_form(client, copy_with_new_uid(CT))
    second = post_form(client, copy_with_new_uid(CT), overwrite="false")
    assert first.status_code == second.status_code == 201
    assert set(first.json()) == set(second.json()) == UPLOAD_FIELDS
    for r in (first, second):
        assert r.headers["location"].endswith(f"/dicom-image/{r.json()['file_id']}")
    again = client.post("/dicom-image", files={"file": ("IM", CT.read_bytes())})
    again_routed = post_form(client, CT.read_bytes(), overwrite="false")
    assert again.json() == again_routed.json()
    assert again.status_code in (200, 201) and again_routed.status_code == 200
