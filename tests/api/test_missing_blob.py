"""A stored file whose bytes are gone (deleted meanwhile, or lost by the store): every route
that reads them answers 404 ``file_not_found``, never a 500, on every backend."""

from __future__ import annotations

import httpx

from dicom_file_service.service.ids import instance_key
from dicom_file_service.storage import open_blob_store
from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem
from tests.conftest import Server
from tests.datafiles import data_file

FRAMES = {"accept": "multipart/related; type=application/octet-stream; transfer-syntax=*"}
AS_STORED = {"accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}


def test_every_route_that_reads_a_lost_blob_answers_404(
    server: Server, client: httpx.Client
) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    body = client.post(
        "/dicom-image", content=data, headers={"content-type": "application/dicom"}
    ).json()
    file_id = body["file_id"]
    open_blob_store(server.settings()).delete(instance_key(file_id))
    instance = (
        f"/dicomweb/studies/{body['study_instance_uid']}/series/{body['series_instance_uid']}"
        f"/instances/{body['sop_instance_uid']}"
    )
    wado = {
        "requestType": "WADO",
        "studyUID": body["study_instance_uid"],
        "seriesUID": body["series_instance_uid"],
        "objectUID": body["sop_instance_uid"],
    }
    for path, params, headers in [
        (f"/dicom-image/{file_id}", {}, {}),
        (f"/dicom-image/{file_id}/png", {}, {}),
        (f"/dicom-image/{file_id}/png", {"width": "64"}, {}),
        (f"/dicom-image/{file_id}/bulkdata/7FE00010", {}, {}),
        (instance, {}, AS_STORED),
        (instance, {}, {}),  # transcoded: Explicit VR Little Endian asked
        (f"{instance}/frames/1", {}, FRAMES),
        (f"{instance}/rendered", {}, {}),
        (f"{instance}/bulkdata/7FE00010", {}, {}),
        ("/wado", {**wado, "contentType": "application/dicom"}, {}),
        ("/wado", {**wado, "contentType": "image/jpeg"}, {}),
    ]:
        r = client.get(path, params=params, headers=headers)
        if r.status_code == 200 and r.headers["content-type"].startswith("multipart/related"):
            # A stream had begun: it ends short, with no part, rather than with a 500.
            assert b"DICM" not in r.content, path
            continue
        assert_problem(r, 404, "file_not_found"), path
    # The header is in the index: what needs no bytes still answers.
    assert client.get(f"/dicom-image/{file_id}", params={"dicom_tag": "(0010,0010)"}).is_success
