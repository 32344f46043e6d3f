"""GET /dicom-image/{id}/png: the rendering pipeline through HTTP, its cache and its errors."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem, post_raw
from tests.datafiles import data_file


def upload(client: httpx.Client, name: str) -> str:
    r = post_raw(client, copy_with_new_uid(data_file(name)))
    assert r.status_code == 201, r.text
    return str(r.json()["file_id"])


def png(client: httpx.Client, file_id: str, **params: object) -> httpx.Response:
    return client.get(f"/dicom-image/{file_id}/png", params=params)  # type: ignore[arg-type]


def image(response: httpx.Response) -> Image.Image:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return Image.open(io.BytesIO(response.content))


def test_png_is_cached_immutable_and_etagged(client: httpx.Client) -> None:
    file_id = upload(client, "CT_small.dcm")
    first = png(client, file_id)
    img = image(first)
    assert img.size == (128, 128) and img.mode == "L"
    assert "immutable" in first.headers["cache-control"]
    second = png(client, file_id)
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    r = client.get(f"/dicom-image/{file_id}/png", headers={"if-none-match": first.headers["etag"]})
    assert r.status_code == 304
    # Whether it is also in the shared render cache depends on how long it took to make
    # (a quick one stays in memory): tests/unit/service/test_rendering.py pins the rule.


def test_window_override_and_downscale(client: httpx.Client) -> None:
    file_id = upload(client, "CT_small.dcm")
    default = np.asarray(image(png(client, file_id)))
    narrow = np.asarray(image(png(client, file_id, window_center=40, window_width=80)))
    assert not np.array_equal(default, narrow)
    assert (
        png(client, file_id, window_center=40, window_width=80).headers["etag"]
        != png(client, file_id).headers["etag"]
    )
    small = image(png(client, file_id, width=64))
    assert small.size == (64, 64)
    minmax = np.asarray(image(png(client, file_id, voi="minmax")))
    assert minmax.min() == 0 and minmax.max() == 255


def test_sixteen_bit_png(client: httpx.Client) -> None:
    file_id = upload(client, "CT_small.dcm")
    img = image(png(client, file_id, bit_depth=16))
    assert img.mode in ("I;16", "I;16B", "I")
    assert np.asarray(img).max() > 255


def test_colour_and_multiframe(client: httpx.Client) -> None:
    assert image(png(client, upload(client, "US1_UNCR.dcm"))).mode == "RGB"
    mf = upload(client, "emri_small.dcm")
    f1 = np.asarray(image(png(client, mf, frame=1)))
    f2 = np.asarray(image(png(client, mf, frame=2)))
    assert not np.array_equal(f1, f2)
    body = assert_problem(png(client, mf, frame=11), 400, "frame_out_of_range")
    assert "10" in str(body["detail"])


def test_no_pixel_data_is_422(client: httpx.Client) -> None:
    r = client.post(
        "/dicom-image",
        content=data_file("rtplan.dcm").read_bytes(),
        headers={"content-type": "application/dicom"},
    )
    file_id = r.json()["file_id"]
    assert_problem(png(client, file_id), 422, "no_pixel_data")


@pytest.mark.parametrize(
    "params",
    [
        {"frame": 0},
        {"frame": "x"},
        {"voi": "best"},
        {"bit_depth": 12},
        {"width": 0},
        {"window_center": 40},
        {"window_width": -5, "window_center": 1},
    ],
)
def test_bad_parameters_are_400(client: httpx.Client, params: dict[str, object]) -> None:
    file_id = upload(client, "CT_small.dcm")
    r = png(client, file_id, **params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "invalid_parameter"


def test_unknown_file_png_is_404(client: httpx.Client) -> None:
    assert_problem(png(client, "AAAAAAAAAAAAAAAAAAAAAA"), 404, "file_not_found")


def test_undecodable_pixel_data_is_422_naming_the_transfer_syntax(client: httpx.Client) -> None:
    r = client.post(
        "/dicom-image",
        content=copy_with_new_uid(data_file("JPEG2000-embedded-sequence-delimiter.dcm")),
        headers={"content-type": "application/dicom"},
    )
    assert r.status_code in (200, 201), r.text
    body = assert_problem(png(client, r.json()["file_id"]), 422, "undecodable_pixel_data")
    assert "1.2.840.10008.1.2.4.91" in str(body["detail"])
