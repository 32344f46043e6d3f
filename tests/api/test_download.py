"""GET /dicom-image/{id}: the stored bytes unchanged, with ETag, Range and a filename."""

from __future__ import annotations

import httpx
import pytest

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem, post_raw
from tests.datafiles import data_file


@pytest.fixture
def stored(client: httpx.Client) -> tuple[dict[str, object], bytes]:
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    return post_raw(client, data).json(), data


def test_download_returns_the_bytes_with_headers(
    client: httpx.Client, stored: tuple[dict[str, object], bytes]
) -> None:
    body, data = stored
    r = client.get(f"/dicom-image/{body['file_id']}")
    assert r.status_code == 200
    assert r.content == data
    assert r.headers["content-type"] == "application/dicom"
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["etag"] == f'"{body["sha256"]}"'
    assert r.headers["content-disposition"] == (
        f'attachment; filename="{body["sop_instance_uid"]}.dcm"'
    )
    assert r.headers["accept-ranges"] == "bytes"


def test_range_requests_return_partial_content(
    client: httpx.Client, stored: tuple[dict[str, object], bytes]
) -> None:
    body, data = stored
    r = client.get(f"/dicom-image/{body['file_id']}", headers={"range": "bytes=128-131"})
    assert r.status_code == 206
    assert r.content == data[128:132] == b"DICM"
    assert r.headers["content-range"] == f"bytes 128-131/{len(data)}"
    r = client.get(f"/dicom-image/{body['file_id']}", headers={"range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]


def test_if_none_match_gives_304(
    client: httpx.Client, stored: tuple[dict[str, object], bytes]
) -> None:
    body, _ = stored
    etag = client.get(f"/dicom-image/{body['file_id']}").headers["etag"]
    r = client.get(f"/dicom-image/{body['file_id']}", headers={"if-none-match": etag})
    assert r.status_code == 304 and r.content == b""


@pytest.mark.parametrize("file_id", ["AAAAAAAAAAAAAAAAAAAAAA", "nope", "a" * 300])
def test_unknown_ids_are_404_file_not_found(client: httpx.Client, file_id: str) -> None:
    assert_problem(client.get(f"/dicom-image/{file_id}"), 404, "file_not_found")


def test_path_tricks_reach_no_file(client: httpx.Client) -> None:
    r = client.get("/dicom-image/..%2F..%2Fetc%2Fpasswd")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


def test_bad_ranges(client: httpx.Client, stored: tuple[dict[str, object], bytes]) -> None:
    body, data = stored
    url = f"/dicom-image/{body['file_id']}"
    ignored = client.get(url, headers={"range": "junk"})
    assert ignored.status_code == 200
    assert ignored.content == data
    assert_problem(
        client.get(url, headers={"range": "bytes=9999999-"}), 416, "range_not_satisfiable"
    )


def test_head_gives_the_headers_without_the_body(
    client: httpx.Client, stored: tuple[dict[str, object], bytes]
) -> None:
    body, data = stored
    r = client.head(f"/dicom-image/{body['file_id']}")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == str(len(data))
    assert r.headers["etag"] == f'"{body["sha256"]}"'
    png = client.get(f"/dicom-image/{body['file_id']}/png")
    head = client.head(f"/dicom-image/{body['file_id']}/png")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["etag"] == png.headers["etag"]


def test_if_range_gives_the_range_only_for_the_current_etag(
    client: httpx.Client, stored: tuple[dict[str, object], bytes]
) -> None:
    body, data = stored
    url = f"/dicom-image/{body['file_id']}"
    etag = f'"{body["sha256"]}"'
    same = client.get(url, headers={"range": "bytes=0-9", "if-range": etag})
    assert same.status_code == 206
    assert same.content == data[:10]
    other = client.get(url, headers={"range": "bytes=0-9", "if-range": '"another-version"'})
    assert other.status_code == 200
    assert other.content == data


def test_a_range_near_the_end_of_a_file_in_any_store(
    client: httpx.Client, stored: tuple[dict[str, object], bytes]
) -> None:
    body, data = stored
    r = client.get(f"/dicom-image/{body['file_id']}", headers={"range": "bytes=-100"})
    assert r.status_code == 206
    assert r.content == data[-100:]
    assert r.headers["content-range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
