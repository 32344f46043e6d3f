"""The browser's routes over HTTP: the built-in page and its files, the data dictionary, and
OHIF under /ohif/ (not installed: how to install it; installed: its files, its page for any
viewer route, the service's own configuration, nothing outside its directory)."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from dicom_file_service.service import ohif
from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file


def test_the_page_and_its_files(client: httpx.Client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="ui/app.js">' in page.text  # relative: under a prefix
    assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/ui/app.css").headers["content-type"].startswith("text/css")
    missing = client.get("/ui/index.html")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert client.get("/ui/..%2F..%2Fsettings.py").status_code == 404


def test_the_dictionary_names_every_standard_attribute(client: httpx.Client) -> None:
    answer = client.get("/ui/dictionary.json")
    names = answer.json()
    assert names["00100010"] == ["PatientName", "Patient's Name"]
    assert names["7FE00010"] == ["PixelData", "Pixel Data"]
    assert len(names) > 4000
    again = client.get("/ui/dictionary.json", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304


def test_ohif_not_installed_says_how_to_install_it(client: httpx.Client) -> None:
    assert client.get("/ohif").headers["location"] == "/ohif/"
    page = client.get("/ohif/")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "dicom-file-service ohif install" in page.text
    assert f"@ohif/app@{ohif.OHIF_VERSION}" in page.text
    assert client.get("/ohif/viewer?StudyInstanceUIDs=1.2.3").status_code == 404
    config = client.get("/ohif/app-config.js")
    assert config.status_code == 200 and '"routerBasename": "/ohif"' in config.text


@pytest.fixture
def with_ohif(tmp_path: Path) -> Iterator[Server]:
    build = tmp_path / "ohif"
    build.mkdir()
    (build / "index.html").write_text('<html><script>window.PUBLIC_URL="/"</script></html>')
    (build / "app.bundle.0f61.js").write_text('__webpack_require__.p = "/";')
    (build / "7463.css").write_text("a{}")
    (build / "0ddf.wasm").write_bytes(b"\0asm")
    (build / "assets").mkdir()
    (build / "assets" / "favicon.ico").write_bytes(b"icon")
    (build / ohif.VERSION_FILE).write_text("3.0.0\n")
    ohif.prepare_build(build, "/ohif/")
    (tmp_path / "secret.txt").write_text("not for the web")
    server = start_server(tmp_path / "data", {"DICOM_FS_OHIF_DIR": str(build)})
    yield server
    stop_server(server)


def test_installed_ohif_is_served_with_its_page_for_every_viewer_route(
    with_ohif: Server,
) -> None:
    with with_ohif.client() as client:
        page = client.get("/ohif/")
        assert page.status_code == 200 and 'window.PUBLIC_URL="/ohif/"' in page.text
        assert page.headers["cache-control"] == "no-cache"
        routed = client.get("/ohif/viewer", params={"StudyInstanceUIDs": "1.2.3"})
        assert routed.status_code == 200 and routed.text == page.text
        bundle = client.get("/ohif/app.bundle.0f61.js")
        assert bundle.text == '__webpack_require__.p = "/ohif/";'
        assert bundle.headers["content-type"].startswith("text/javascript")
        assert "immutable" in bundle.headers["cache-control"]
        assert client.get("/ohif/0ddf.wasm").headers["content-type"] == "application/wasm"
        assert client.get("/ohif/assets/favicon.ico").content == b"icon"
        assert "window.config" in client.get("/ohif/app-config.js").text
    # Sent as written, over a socket: an HTTP client would remove the dot segments first.
    for escape in ("/ohif/../secret.txt", "/ohif/%2E%2E/secret.txt", "/ohif/..%2Fsecret.txt"):
        status, body = raw_get(with_ohif.base_url, escape)
        assert status == 200 and b"window.PUBLIC_URL" in body, escape  # the viewer's page
        assert b"not for the web" not in body, escape


def raw_get(base_url: str, target: str) -> tuple[int, bytes]:
    """``GET target`` with the request target exactly as given: the status and the body."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_page_thumbnails_are_images_or_a_placeholder(client: httpx.Client) -> None:
    study = generate_uid()
    image = copy_with_new_uid(data_file("CT_small.dcm"), StudyInstanceUID=study)
    stored = client.post("/dicom-image", files={"file": ("ct.dcm", image)}).json()
    thumb = client.get(f"/ui/thumbnails/file/{stored['file_id']}")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert client.get(f"/ui/thumbnails/study/{study}").headers["content-type"] == "image/png"

    other = generate_uid()
    ds = pydicom.dcmread(
        io.BytesIO(copy_with_new_uid(data_file("CT_small.dcm"), StudyInstanceUID=other))
    )
    for keyword in (
        "PixelData",
        "Rows",
        "Columns",
        "BitsAllocated",
        "SamplesPerPixel",
        "PhotometricInterpretation",
    ):
        delattr(ds, keyword)  # a header without an image (as of a report), not a truncated one
    header_only = io.BytesIO()
    ds.save_as(header_only, enforce_file_format=False)
    answer = client.post("/dicom-image", files={"file": ("h.dcm", header_only.getvalue())})
    stored = answer.json()
    assert answer.status_code == 201, stored
    for url in (f"/ui/thumbnails/file/{stored['file_id']}", f"/ui/thumbnails/study/{other}"):
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert answer.headers["content-type"] == "image/svg+xml"
    assert client.get("/ui/thumbnails/file/no-such-file").status_code == 404
