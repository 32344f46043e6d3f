"""No request, however malformed, gets a 500: every answer is a 2xx/3xx or a problem document."""

from __future__ import annotations

import random

import httpx

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import post_raw
from tests.datafiles import data_file

JUNK = [
    "",
    "0",
    "-1",
    "1e309",
    "nan",
    "x" * 5000,
    "%00",
    "../..",
    "(0010,0010",
    "[]",
    "🙂",
    "99999999999999999999",
    "0x",
    "\\",
    "a,b",
    "[0].",
    "true",
]


def test_malformed_requests_never_get_a_500(client: httpx.Client) -> None:
    file_id = post_raw(client, copy_with_new_uid(data_file("CT_small.dcm"))).json()["file_id"]
    rng = random.Random(3)
    routes = [
        ("GET", f"/dicom-image/{file_id}", ["dicom_tag"]),
        (
            "GET",
            f"/dicom-image/{file_id}/png",
            ["frame", "window_center", "window_width", "voi", "width", "height", "bit_depth"],
        ),
        ("GET", "/dicom-image", ["limit", "cursor", "patient_id", "modality"]),
        ("GET", f"/dicom-image/{file_id}/bulkdata/{rng.choice(JUNK)}", []),
        ("POST", "/dicom-image", ["overwrite"]),
        ("DELETE", "/dicom-image/" + "A" * 22, []),
    ]
    for _ in range(300):
        method, path, names = rng.choice(routes)
        params = [(n, rng.choice(JUNK)) for n in names if rng.random() < 0.7]
        headers = {
            "content-type": rng.choice(
                [
                    "application/dicom",
                    "multipart/form-data",
                    "multipart/form-data; boundary=zz",
                    "text/plain",
                ]
            ),
            "range": rng.choice(["bytes=0-1", "bytes=-0", "bytes=9999999-", "junk"]),
        }
        content = rng.choice([b"", b"DICM", b"--zz\r\n\r\n", bytes(rng.randbytes(300))])
        r = client.request(
            method,
            path,
            params=params,
            headers=headers,
            content=content if method == "POST" else None,
        )
        assert r.status_code < 500, (method, path, params, r.status_code, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"] == "application/problem+json", (path, r.text)
