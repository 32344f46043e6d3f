"""Direct transfer on every backend: presigned S3 URLs, or the service's own."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.api.dicom_factory import changed_content, copy_with_new_uid
from tests.api.test_upload import UPLOAD_FIELDS, assert_problem, post_raw
from tests.conftest import Backend, Server, start_server, stop_server
from tests.datafiles import data_file


def _upload_url(client: httpx.Client) -> dict[str, str]:
    r = client.post("/dicom-image/upload-url")
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"upload_id", "upload_url", "expires_at", "headers"}
    assert body["expires_at"].endswith("Z")
    return dict(body)


def _put(url: str, data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    all_headers = {"content-type": "application/dicom", **(headers or {})}
    return httpx.put(url, content=data, headers=all_headers, timeout=30)


def direct_upload(client: httpx.Client, data: bytes, query: str = "") -> httpx.Response:
    grant = _upload_url(client)
    put = _put(grant["upload_url"], data, dict(grant["headers"]))
    assert put.status_code == 200, put.text
    return client.post(f"/dicom-image/uploads/{grant['upload_id']}/complete{query}")


def test_direct_upload_round_trip(client: httpx.Client) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    done = direct_upload(client, data)
    assert done.status_code == 201, done.text
    body = done.json()
    assert set(body) == UPLOAD_FIELDS
    assert done.headers["location"] == f"/dicom-image/{body['file_id']}"
    assert client.get(f"/dicom-image/{body['file_id']}").content == data
    assert client.get(f"/dicom-image/{body['file_id']}?dicom_tag=PatientName").status_code == 200

    grant = client.get(f"/dicom-image/{body['file_id']}/download-url").json()
    assert set(grant) == {"url", "expires_at"}
    fetched = httpx.get(grant["url"], timeout=30)
    assert fetched.status_code == 200
    assert fetched.content == data


def test_completing_follows_the_upload_rules(client: httpx.Client) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    first = post_raw(client, data).json()
    again = direct_upload(client, data)
    assert again.status_code == 200
    assert again.json()["file_id"] == first["file_id"]
    other = changed_content(data, PatientID="DIRECT-OTHER")
    assert_problem(direct_upload(client, other), 409, "duplicate_sop_instance")
    replaced = direct_upload(client, other, "?overwrite=true")
    assert replaced.status_code == 201
    assert replaced.json()["file_id"] != first["file_id"]


def test_an_invalid_file_is_refused_and_its_bytes_removed(client: httpx.Client) -> None:
    grant = _upload_url(client)
    assert _put(grant["upload_url"], b"not a DICOM file" * 100).status_code == 200
    complete = f"/dicom-image/uploads/{grant['upload_id']}/complete"
    assert_problem(client.post(complete), 422, "invalid_dicom")
    assert_problem(client.post(complete), 404, "upload_not_found")  # the bytes went


def test_completing_an_upload_that_never_came_is_404(client: httpx.Client) -> None:
    grant = _upload_url(client)
    assert_problem(
        client.post(f"/dicom-image/uploads/{grant['upload_id']}/complete"), 404, "upload_not_found"
    )
    assert_problem(client.post("/dicom-image/uploads/..%2Fetc/complete"), 404, "not_found")


def test_urls_are_bound_to_their_object_and_method(client: httpx.Client) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    grant = _upload_url(client)
    other = _upload_url(client)
    moved = grant["upload_url"].replace(grant["upload_id"], other["upload_id"])
    assert _put(moved, data).status_code == 403  # another object
    tampered = grant["upload_url"][:-4] + (
        "0000" if not grant["upload_url"].endswith("0000") else "1111"
    )
    assert _put(tampered, data).status_code == 403
    assert httpx.get(grant["upload_url"]).status_code == 403  # another method
    unsigned = grant["upload_url"].split("?", 1)[0]
    assert _put(unsigned, data).status_code == 403
    garbled = grant["upload_url"].split("signature=", 1)[0] + "signature=%C3%A9"
    assert _put(garbled, data).status_code in (400, 403)  # never a 500
    assert client.post(f"/dicom-image/uploads/{other['upload_id']}/complete").status_code == 404

    file_id = post_raw(client, data).json()["file_id"]
    url = client.get(f"/dicom-image/{file_id}/download-url").json()["url"]
    assert httpx.put(url, content=b"overwrite").status_code == 403
    assert httpx.get(url[:-4] + ("0000" if not url.endswith("0000") else "1111")).status_code == 403
    assert client.get(f"/dicom-image/{file_id}").content == data  # nothing altered


def test_a_download_url_for_an_unknown_file_is_404(client: httpx.Client) -> None:
    assert_problem(
        client.get("/dicom-image/AAAAAAAAAAAAAAAAAAAAAA/download-url"), 404, "file_not_found"
    )


@pytest.fixture(scope="module")
def short_lived_server(
    tmp_path_factory: pytest.TempPathFactory, backend: Backend
) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("short") / "data",
        {**backend.env, "DICOM_FS_PRESIGN_EXPIRY_SECONDS": "1"},
    )
    yield srv
    stop_server(srv)


def test_expired_urls_are_refused(short_lived_server: Server) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    with short_lived_server.client() as c:
        grant = _upload_url(c)
        file_id = post_raw(c, data).json()["file_id"]
        download = c.get(f"/dicom-image/{file_id}/download-url").json()["url"]
        time.sleep(2.5)
        assert _put(grant["upload_url"], data).status_code == 403
        assert httpx.get(download).status_code == 403
