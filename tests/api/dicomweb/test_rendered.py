"""WADO-RS rendered and thumbnail resources: the same renderings as /dicom-image/{id}/png."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pydicom
from PIL import Image

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.dicomweb.test_stow_wado import _bytes, _parts, _study
from tests.api.test_upload import assert_problem
from tests.conftest import Server
from tests.datafiles import data_file
from tests.unit.service.test_rendering import _multiframe


def _store(client: httpx.Client, data: bytes) -> tuple[str, str]:
    body = client.post(
        "/dicom-image", content=data, headers={"content-type": "application/dicom"}
    ).json()
    url = (
        f"/dicomweb/studies/{body['study_instance_uid']}/series/{body['series_instance_uid']}"
        f"/instances/{body['sop_instance_uid']}"
    )
    return body["file_id"], url


def test_rendered_png_is_the_file_apis_png(client: httpx.Client) -> None:
    file_id, url = _store(client, copy_with_new_uid(data_file("CT_small.dcm")))
    r = client.get(f"{url}/rendered", headers={"accept": "image/png"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == client.get(f"/dicom-image/{file_id}/png").content
    windowed = client.get(f"{url}/rendered", params={"window": "40,400", "accept": "image/png"})
    same = client.get(
        f"/dicom-image/{file_id}/png", params={"window_center": 40, "window_width": 400}
    )
    assert windowed.content == same.content != r.content


def test_rendered_is_jpeg_by_default_and_thumbnails_are_small(client: httpx.Client) -> None:
    _, url = _store(client, copy_with_new_uid(data_file("MR_small.dcm")))
    jpeg = client.get(f"{url}/rendered", params={"quality": 80})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (64, 64)
    thumb = client.get(f"{url}/thumbnail", params={"viewport": "32,32"})
    assert Image.open(io.BytesIO(thumb.content)).size == (32, 32)


def test_a_frame_is_rendered_on_its_own(client: httpx.Client, tmp_path: Path) -> None:
    _, url = _store(client, _multiframe(tmp_path, 5, compressed=True).read_bytes())
    pngs = [
        client.get(f"{url}/frames/{n}/rendered", params={"accept": "image/png"}).content
        for n in (1, 4)
    ]
    assert pngs[0] != pngs[1]
    assert_problem(client.get(f"{url}/frames/9/rendered"), 400, "frame_out_of_range")


def test_rendered_requests_that_cannot_be_served(client: httpx.Client) -> None:
    _, url = _store(client, copy_with_new_uid(data_file("CT_small.dcm")))
    assert_problem(
        client.get(f"{url}/rendered", headers={"accept": "image/gif"}), 406, "not_acceptable"
    )
    assert_problem(client.get(f"{url}/rendered", params={"window": "40"}), 400, "invalid_parameter")
    assert_problem(client.get(f"{url}/rendered", params={"quality": 0}), 400, "invalid_parameter")
    assert_problem(
        client.get("/dicomweb/studies/1.2/series/3.4/instances/5.6/rendered"), 404, "file_not_found"
    )


def test_bulk_data_under_dicomweb_is_the_elements_value(client: httpx.Client) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    _, url = _store(client, data)
    pixels = pydicom.dcmread(io.BytesIO(data)).PixelData
    r = client.get(f"{url}/bulkdata/7FE00010")  # */*: PS3.18's multipart/related form
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(
        'multipart/related; type="application/octet-stream"'
    )
    assert _parts(r) == [pixels]
    bare = client.get(f"{url}/bulkdata/7FE00010", headers={"accept": "application/octet-stream"})
    assert bare.headers["content-type"] == "application/octet-stream"
    assert bare.content == pixels
    assert_problem(client.get(f"{url}/bulkdata/00100010"), 404, "tag_not_found")
    assert_problem(
        client.get(f"{url}/bulkdata/7FE00010", headers={"accept": "image/png"}),
        406,
        "not_acceptable",
    )


def test_bulk_data_uris_are_made_for_the_route_that_answers(
    client: httpx.Client, server: Server
) -> None:
    """One stored element, reachable from the file API's and from DICOMweb's metadata, each
    pointing at its own route: no route is stored with the header."""
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    file_id, url = _store(client, data)
    pixels = pydicom.dcmread(io.BytesIO(data)).PixelData
    (web,) = client.get(f"{url}/metadata").json()
    web_uri = web["7FE00010"]["BulkDataURI"]
    assert web_uri == f"{server.base_url}{url}/bulkdata/7FE00010"
    (own,) = client.get(f"/dicom-image/{file_id}/metadata").json()
    assert own["7FE00010"]["BulkDataURI"] == f"/dicom-image/{file_id}/bulkdata/7FE00010"
    tag = client.get(f"/dicom-image/{file_id}", params={"dicom_tag": "(7FE0,0010)"}).json()
    assert tag["value"]["bulk_data_uri"] == f"/dicom-image/{file_id}/bulkdata/7FE00010"
    assert _parts(client.get(web_uri)) == [pixels]
    assert client.get(own["7FE00010"]["BulkDataURI"]).content == pixels


def test_wado_uri_answers_dicom_and_renderings(client: httpx.Client) -> None:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    file_id, url = _store(client, data)
    study, series, sop = url.split("/")[3], url.split("/")[5], url.split("/")[7]
    base = {"requestType": "WADO", "studyUID": study, "seriesUID": series, "objectUID": sop}
    dicom = client.get("/wado", params={**base, "contentType": "application/dicom"})
    assert dicom.status_code == 200 and dicom.content == data
    png = client.get(
        "/wado",
        params={**base, "contentType": "image/png", "windowCenter": 40, "windowWidth": 400},
    )
    same = client.get(
        f"/dicom-image/{file_id}/png", params={"window_center": 40, "window_width": 400}
    )
    assert png.content == same.content
    jpeg = client.get("/wado", params={**base, "rows": 64, "columns": 64})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (64, 64)
    assert_problem(
        client.get("/wado", params={**base, "requestType": "X"}), 400, "invalid_parameter"
    )
    gif = client.get("/wado", params={**base, "contentType": "image/gif"})
    assert_problem(gif, 406, "not_acceptable")
    assert_problem(client.get("/wado", params={"requestType": "WADO"}), 400, "invalid_parameter")


def test_study_and_series_renderings_and_thumbnails(client: httpx.Client) -> None:

    study = _study(2, 3)
    for ds in study:
        client.post(
            "/dicom-image", content=_bytes(ds), headers={"content-type": "application/dicom"}
        )
    uid, series = study[0].StudyInstanceUID, study[0].SeriesInstanceUID
    thumb = client.get(f"/dicomweb/studies/{uid}/series/{series}/thumbnail")
    assert thumb.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 128
    assert client.get(
        f"/dicomweb/studies/{uid}/thumbnail", params={"accept": "image/png"}
    ).content.startswith(b"\x89PNG")
    rendered = client.get(f"/dicomweb/studies/{uid}/rendered", params={"accept": "image/png"})
    assert rendered.headers["content-type"].startswith('multipart/related; type="image/png"')
    assert len(_parts(rendered)) == 6
    assert all(p.startswith(b"\x89PNG") for p in _parts(rendered))
    assert len(_parts(client.get(f"/dicomweb/studies/{uid}/series/{series}/rendered"))) == 3
    assert_problem(client.get("/dicomweb/studies/1.2.3.4/thumbnail"), 404, "file_not_found")
