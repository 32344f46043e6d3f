"""The built-in page and the OHIF viewer through a real nginx under ``/pacs/``, in a real
browser. The built-in page lists an uploaded file, shows its PNG and downloads its study as a
ZIP, every request inside the prefix. OHIF: the page, its scripts, chunks, workers and
stylesheets, its configuration and every DICOMweb request come through the proxy's prefix,
and a CT study opens with its image drawn.

OHIF's test needs the build (``scripts/test`` installs it and names it in
DICOM_FS_TEST_OHIF_DIR); both need nginx.
"""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Response, expect
from pydicom.uid import generate_uid

from dicom_file_service.service import ohif
from tests.api.dicom_factory import copy_with_new_uid
from tests.browser.conftest import watch
from tests.browser.test_ohif import request_lines
from tests.browser.test_page import search, wait_for_image
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file
from tests.nginx import Nginx, require_nginx, start_nginx

pytestmark = pytest.mark.browser


@pytest.fixture
def proxied_ohif(tmp_path: Path) -> Iterator[tuple[Server, Nginx]]:
    build = os.environ.get("DICOM_FS_TEST_OHIF_DIR")
    if not build:
        pytest.skip("OHIF's build is not installed: scripts/test installs it")
    assert ohif.installed_version(Path(build)) == ohif.OHIF_VERSION
    require_nginx()
    server = start_server(
        tmp_path / "data",
        {"DICOM_FS_OHIF_DIR": build, "DICOM_FS_PUBLIC_BASE_URL": ""},
        args=("--log-level", "info"),
    )
    try:
        proxy = start_nginx(tmp_path / "nginx", int(server.base_url.rsplit(":", 1)[1]))
    except BaseException:
        stop_server(server)
        raise
    yield server, proxy
    proxy.stop()
    stop_server(server)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Server, Nginx]]:
    require_nginx()
    server = start_server(tmp_path / "data", {"DICOM_FS_PUBLIC_BASE_URL": ""})
    try:
        proxy = start_nginx(tmp_path / "nginx", int(server.base_url.rsplit(":", 1)[1]))
    except BaseException:
        stop_server(server)
        raise
    yield server, proxy
    proxy.stop()
    stop_server(server)
    assert "Traceback" not in server.log()


def _watch_requests(page: Page) -> tuple[list[str], list[str]]:
    """Every URL the page asks for, and every answer of 400 or more or failed request."""
    asked: list[str] = []
    failed: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("request", lambda request: asked.append(request.url))
    page.on("response", on_response)
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    return asked, failed


def test_the_built_in_page_works_through_nginx_under_a_prefix(
    proxied: tuple[Server, Nginx], browser: Browser, tmp_path: Path
) -> None:
    _, proxy = proxied
    patient = f"Prefix{uuid.uuid4().hex[:10]}^Ct"
    data = copy_with_new_uid(
        data_file("CT_small.dcm"),
        PatientName=patient,
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
    )
    created = httpx.post(
        proxy.base_url + "/dicom-image", files={"file": ("ct.dcm", data)}, timeout=60
    )
    assert created.status_code == 201, created.text

    watched = watch(browser)
    page = watched.page
    asked, failed = _watch_requests(page)
    try:
        page.goto(proxy.base_url + "/")
        search(page, patient)
        study = page.locator(".study", has_text=patient)
        expect(study).to_have_count(1)
        page.wait_for_function(
            "() => { const img = document.querySelector('.study .thumb');"
            " return img && img.complete && img.naturalWidth > 0; }"
        )
        with page.expect_download() as started:
            study.get_by_role("link", name="Download study (ZIP)").click()
        path = tmp_path / started.value.suggested_filename
        started.value.save_as(path)
        with zipfile.ZipFile(path) as archive:
            assert [archive.read(n) for n in archive.namelist()] == [data]
        study.get_by_role("button", name="Files").click()
        study.locator(".files a").first.click()
        expect(page.locator("#file-title")).to_contain_text(patient)
        shot = wait_for_image(page)
        pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
        assert pixels.std() > 20, "the image is blank"
        assert (page.locator("#image").get_attribute("data-url") or "").endswith("/png")
        expect(page.locator("#tree .row").first).to_be_attached()
    finally:
        page.context.close()
    assert watched.unexpected_errors() == []

    origin = f"http://127.0.0.1:{proxy.port}"
    ours = [url for url in asked if url.startswith(origin)]
    assert ours and all(url.startswith(proxy.base_url + "/") for url in ours), [
        url for url in ours if not url.startswith(proxy.base_url + "/")
    ]
    for path_part in ("/pacs/ui/app.js", "/pacs/dicomweb/studies?", "/pacs/dicom-image/"):
        assert any(path_part in url for url in ours), path_part
    assert failed == []


def test_ohif_opens_a_study_through_nginx_under_a_prefix(
    proxied_ohif: tuple[Server, Nginx], browser: Browser
) -> None:
    server, proxy = proxied_ohif
    data = copy_with_new_uid(
        data_file("CT_small.dcm"),
        PatientName="Proxied^Ct",
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
    )
    created = httpx.post(
        proxy.base_url + "/dicom-image", files={"file": ("ct.dcm", data)}, timeout=60
    )
    assert created.status_code == 201, created.text

    watched = watch(browser)
    page = watched.page
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    failed: list[str] = []

    def on_response(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", on_response)
    page.on("requestfailed", lambda request: failed.append(f"failed {request.url}"))
    try:
        page.goto(proxy.base_url + "/ohif/")
        row = page.get_by_text("Proxied, Ct")
        expect(row).to_be_visible(timeout=90_000)
        row.click()
        page.get_by_role("button", name="Basic Viewer").click()
        viewport = page.locator("[data-viewport-uid]").first
        expect(viewport.locator("canvas").first).to_be_visible(timeout=90_000)
        spread = 0.0
        for _ in range(60):
            shot = viewport.screenshot()
            pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
            spread = float(pixels.std())
            if spread > 20:
                break
            page.wait_for_timeout(500)
        assert spread > 20, "the viewport stayed blank"
        assert page.url.startswith(proxy.base_url + "/ohif/viewer")
    finally:
        page.context.close()

    origin = f"http://127.0.0.1:{proxy.port}"
    ours = [url for url in asked if url.startswith(origin)]
    assert ours and all(url.startswith(proxy.base_url + "/") for url in ours), [
        url for url in ours if not url.startswith(proxy.base_url + "/")
    ]
    assert any("/pacs/dicomweb/studies/" in url for url in ours)
    assert failed == []
    instance_reads = [
        line for line in request_lines(server) if "/instances/{" in str(line.get("route", ""))
    ]
    assert instance_reads, "the viewer asked for no instance"
    assert {line["status"] for line in instance_reads} == {200}
