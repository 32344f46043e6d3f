"""DELETE removes bytes, index row and renderings; GET /dicom-image lists and paginates."""

from __future__ import annotations

import time

import httpx

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import UPLOAD_FIELDS, assert_problem, post_raw
from tests.conftest import Server
from tests.datafiles import data_file


def test_delete_removes_everything(server: Server, client: httpx.Client) -> None:
    # A JPEG 2000 decode: a rendering dear enough to be shared on S3 too.
    file_id = post_raw(client, copy_with_new_uid(data_file("MR2_J2KR.dcm"))).json()["file_id"]
    assert client.get(f"/dicom-image/{file_id}/png").status_code == 200

    def stored() -> list[str]:
        keys = server.stored_keys("instances") + server.stored_keys("renderings")
        return [k for k in keys if file_id in k]

    deadline = time.monotonic() + 10  # the rendering is cached just after the answer
    while len(stored()) < 2:  # the file and its rendering
        assert time.monotonic() < deadline
        time.sleep(0.05)
    copy = [k for k in server.local_copies() if file_id in k]  # beside S3: the file's copy
    assert len(copy) == server.on_s3()
    r = client.delete(f"/dicom-image/{file_id}")
    assert r.status_code == 204 and r.content == b""
    assert stored() == []
    assert [k for k in server.local_copies() if file_id in k] == []
    for path in ("", "/png", "/metadata", "?dicom_tag=PatientName"):
        assert_problem(client.get(f"/dicom-image/{file_id}{path}"), 404, "file_not_found")
    assert_problem(client.delete(f"/dicom-image/{file_id}"), 404, "file_not_found")


def test_list_is_newest_first_paginated_and_filtered(client: httpx.Client) -> None:
    patient = "LIST-TEST-PATIENT"
    ids = [
        post_raw(client, copy_with_new_uid(data_file("CT_small.dcm"), PatientID=patient)).json()[
            "file_id"
        ]
        for _ in range(5)
    ]
    page1 = client.get("/dicom-image", params={"limit": 2, "patient_id": patient}).json()
    assert [i["file_id"] for i in page1["items"]] == ids[::-1][:2]
    assert set(page1["items"][0]) == UPLOAD_FIELDS
    page2 = client.get(
        "/dicom-image", params={"limit": 2, "patient_id": patient, "cursor": page1["next_cursor"]}
    ).json()
    page3 = client.get(
        "/dicom-image", params={"limit": 2, "patient_id": patient, "cursor": page2["next_cursor"]}
    ).json()
    assert [i["file_id"] for i in page2["items"] + page3["items"]] == ids[::-1][2:]
    assert page3["next_cursor"] is None
    none = client.get("/dicom-image", params={"modality": "XX-NONE"}).json()
    assert none == {"items": [], "next_cursor": None}


def test_list_rejects_bad_cursor_and_limit(client: httpx.Client) -> None:
    assert_problem(
        client.get("/dicom-image", params={"cursor": "garbage!"}), 400, "invalid_parameter"
    )
    assert_problem(client.get("/dicom-image", params={"limit": 0}), 400, "invalid_parameter")
    assert_problem(client.get("/dicom-image", params={"limit": 100000}), 400, "invalid_parameter")


def test_a_rendering_left_behind_is_unreachable_after_the_delete(
    server: Server, client: httpx.Client
) -> None:
    """A rendering that outlived its file (a failed cache delete, a cache of another store or
    instance) is never served: every route asks the index first."""
    from dicom_file_service.dicom.render import RenderOptions
    from dicom_file_service.storage import BlobRenderCache, open_blob_store

    file_id = post_raw(client, copy_with_new_uid(data_file("CT_small.dcm"))).json()["file_id"]
    png = client.get(f"/dicom-image/{file_id}/png")
    small = client.get(f"/dicom-image/{file_id}/png", params={"width": "64"})
    assert png.status_code == small.status_code == 200
    assert client.delete(f"/dicom-image/{file_id}").status_code == 204
    left_behind = BlobRenderCache(open_blob_store(server.settings()))
    left_behind.put(file_id, RenderOptions(frame=1).cache_key(), png.content)
    left_behind.put(file_id, RenderOptions(frame=1, width=64).cache_key(), small.content)
    for params in ({}, {"width": "64"}):
        r = client.get(f"/dicom-image/{file_id}/png", params=params)
        assert_problem(r, 404, "file_not_found")
