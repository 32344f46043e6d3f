"""The service behind a real nginx, under ``/pacs/``: every URL it hands out points through
the proxy, and dicomweb-client and the file API work there as they do straight.

The service trusts loopback (its default), so nginx's headers count; a client's own forged
ones do not get past nginx, which sets each of them.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file
from tests.nginx import Nginx, require_nginx, start_nginx

AS_STORED = (("application/dicom", "*"),)
JSON = {"accept": "application/dicom+json"}


@pytest.fixture(scope="module")
def behind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Nginx]]:
    require_nginx()
    root = tmp_path_factory.mktemp("nginx")
    # No public base URL: the URLs come from what nginx says.
    server = start_server(root / "data", {"DICOM_FS_PUBLIC_BASE_URL": ""})
    proxy = start_nginx(root / "nginx", int(server.base_url.rsplit(":", 1)[1]))
    yield server, proxy
    proxy.stop()
    stop_server(server)
    assert "Traceback" not in server.log()


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def test_dicomweb_client_through_the_prefix(behind: tuple[Server, Nginx]) -> None:
    _, proxy = behind
    public = proxy.base_url + "/dicomweb"
    web = DICOMwebClient(public)
    study, series = generate_uid(), generate_uid()
    datasets = []
    for _ in range(2):
        ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("CT_small.dcm"))))
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        datasets.append(ds)
    answer = web.store_instances(datasets)
    assert answer.RetrieveURL == f"{public}/studies/{study}"
    for ref in answer.ReferencedSOPSequence:
        assert ref.RetrieveURL.startswith(f"{public}/studies/{study}/series/{series}/instances/")

    (found,) = web.search_for_studies(search_filters={"StudyInstanceUID": study})
    assert found["00081190"]["Value"] == [f"{public}/studies/{study}"]
    sent = {ds.SOPInstanceUID: _bytes(ds) for ds in datasets}
    got = web.retrieve_study(study, media_types=AS_STORED)
    assert {ds.SOPInstanceUID: _bytes(ds) for ds in got} == sent

    metadata = web.retrieve_series_metadata(study, series)
    for instance in metadata:
        uri = instance["7FE00010"]["BulkDataURI"]
        sop = instance["00080018"]["Value"][0]
        assert uri == f"{public}/studies/{study}/series/{series}/instances/{sop}/bulkdata/7FE00010"
        expected = next(ds for ds in datasets if ds.SOPInstanceUID == sop)
        assert web.retrieve_bulkdata(uri) == [expected.PixelData]

    with httpx.Client(timeout=60) as client:
        r = client.get(f"{public}/studies/{study}/series", headers=JSON)
        assert r.headers["content-location"] == f"{public}/studies/{study}/series"
    web.delete_study(study)
    assert web.search_for_studies(search_filters={"StudyInstanceUID": study}) == []


def test_the_file_api_and_direct_transfer_through_the_prefix(behind: tuple[Server, Nginx]) -> None:
    _, proxy = behind
    origin = f"http://127.0.0.1:{proxy.port}"
    with httpx.Client(base_url=proxy.base_url, timeout=60) as client:
        data = copy_with_new_uid(data_file("CT_small.dcm"))
        created = client.post("/dicom-image", files={"file": ("ct.dcm", data)})
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location.startswith("/pacs/dicom-image/")
        assert httpx.get(origin + location).status_code == 200
        tags = httpx.get(origin + location, params={"dicom_tag": "PixelData"}).json()
        bulk = tags["value"]["bulk_data_uri"]
        assert bulk.startswith(location + "/bulkdata/")
        (metadata,) = httpx.get(origin + location + "/metadata").json()
        assert metadata["7FE00010"]["BulkDataURI"] == bulk
        assert httpx.get(origin + bulk).content == pydicom.dcmread(io.BytesIO(data)).PixelData

        new = client.post("/dicom-image/upload-url").json()
        assert new["upload_url"].startswith(proxy.base_url + "/signed/uploads/")
        put = httpx.put(
            new["upload_url"],
            content=copy_with_new_uid(data_file("CT_small.dcm")),
            headers={"content-type": "application/dicom"},
        )
        assert put.status_code < 300, put.text
        assert new["complete_url"].startswith("/pacs/")
        done = httpx.post(origin + new["complete_url"], timeout=60)
        assert done.status_code == 201, done.text
        assert done.headers["location"].startswith("/pacs/dicom-image/")
        download = client.get(done.headers["location"].removeprefix("/pacs") + "/download-url")
        assert download.json()["url"].startswith(proxy.base_url + "/signed/files/")
        assert httpx.get(download.json()["url"]).status_code == 200

        assert client.get("/ohif", follow_redirects=False).headers["location"] == "/pacs/ohif/"
        config = client.get("/ohif/app-config.js").text
        assert '"/pacs/dicomweb"' in config and '"routerBasename": "/pacs/ohif"' in config


def test_a_client_cannot_forge_the_headers_through_nginx(behind: tuple[Server, Nginx]) -> None:
    _, proxy = behind
    forged = {
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "https",
        "x-forwarded-prefix": "/evil",
        "forwarded": "host=evil.example;proto=https",
    }
    r = httpx.get(f"{proxy.base_url}/dicomweb/studies", headers={**forged, **JSON}, timeout=60)
    assert r.status_code == 200
    assert r.headers["content-location"] == f"{proxy.base_url}/dicomweb/studies"
    for study in r.json():
        assert study["00081190"]["Value"][0].startswith(proxy.base_url + "/dicomweb/")


def test_nginx_configuration_is_the_documented_one() -> None:
    """The location block the test runs is the one operations.md tells operators to use."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for line in (
        "proxy_set_header X-Forwarded-Prefix /pacs;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        'proxy_set_header Forwarded "";',
        "client_max_body_size 0;",
        "proxy_buffering off;",
    ):
        assert line in docs, line
