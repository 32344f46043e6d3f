"""The OHIF viewer, installed as the README says, on this service's DICOMweb in a real browser:
the study list shows the stored studies, and a CT study opens with its image drawn.

Needs the build: ``scripts/test`` installs it (``dicom-file-service ohif install``) and names
its directory in DICOM_FS_TEST_OHIF_DIR.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, expect
from pydicom.uid import generate_uid

from dicom_file_service.service import ohif
from tests.api.dicom_factory import copy_with_new_uid
from tests.browser.conftest import watch
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file

pytestmark = pytest.mark.browser

_SHOTS = os.environ.get("DICOM_FS_TEST_SCREENSHOTS")
SCREENSHOTS = Path(_SHOTS) if _SHOTS else None  # where to keep the views, when asked


@pytest.fixture
def ohif_server(tmp_path: Path) -> Iterator[Server]:
    build = os.environ.get("DICOM_FS_TEST_OHIF_DIR")
    if not build:
        pytest.skip("OHIF's build is not installed: scripts/test installs it")
    assert ohif.installed_version(Path(build)) == ohif.OHIF_VERSION, (
        f"{build} holds another OHIF than {ohif.OHIF_VERSION}: run scripts/test again"
    )
    server = start_server(
        tmp_path / "data", {"DICOM_FS_OHIF_DIR": build}, args=("--log-level", "info")
    )
    yield server
    stop_server(server)


def upload(server: Server, name: str, patient: str) -> None:
    data = copy_with_new_uid(
        data_file(name),
        PatientName=patient,
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
    )
    with server.client() as client:
        assert client.post("/dicom-image", files={"file": (name, data)}).status_code == 201


def request_lines(server: Server) -> list[dict[str, object]]:
    lines = []
    for line in server.log().splitlines():
        if line.startswith("{"):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if "route" in entry and "status" in entry:
                lines.append(entry)
    return lines


def test_ohif_lists_the_stored_studies_and_draws_a_ct_image(
    ohif_server: Server, browser: Browser
) -> None:
    upload(ohif_server, "CT_small.dcm", "Ohif^Ct")
    upload(ohif_server, "MR_small.dcm", "Ohif^Mr")
    watched = watch(browser)
    page = watched.page
    try:
        page.goto(ohif_server.base_url + "/ohif/")
        ct_row = page.get_by_text("Ohif, Ct")
        expect(ct_row).to_be_visible(timeout=60_000)
        expect(page.get_by_text("Ohif, Mr")).to_be_visible()
        if SCREENSHOTS:
            page.screenshot(path=str(SCREENSHOTS / "ohif-study-list.png"))

        ct_row.click()
        page.get_by_role("button", name="Basic Viewer").click()
        viewport = page.locator("[data-viewport-uid]").first
        expect(viewport.locator("canvas").first).to_be_visible(timeout=60_000)
        # Drawn: the viewport's pixels vary (a blank viewport is one colour).
        spread = 0.0
        for _ in range(60):
            shot = viewport.screenshot()
            pixels = np.asarray(Image.open(io.BytesIO(shot)).convert("L"), dtype=np.float64)
            spread = float(pixels.std())
            if spread > 20:
                break
            page.wait_for_timeout(500)
        if SCREENSHOTS:
            page.screenshot(path=str(SCREENSHOTS / "ohif-viewer.png"))
        assert spread > 20, "the viewport stayed blank"
    finally:
        page.context.close()

    # The built-in page's link opens the same study in OHIF's viewer.
    watched = watch(browser)
    page = watched.page
    try:
        page.goto(ohif_server.base_url + "/")
        page.fill("#q-name", "Ohif^Ct")
        page.press("#q-name", "Enter")
        expect(page.locator(".study")).to_have_count(1)
        page.get_by_role("link", name="Open in OHIF").click()
        expect(page).to_have_url(re.compile(r"/ohif/viewer\?StudyInstanceUIDs="))
        expect(page.locator("[data-viewport-uid] canvas").first).to_be_visible(timeout=60_000)
    finally:
        page.context.close()

    lines = request_lines(ohif_server)
    instance_reads = [line for line in lines if "/instances/{" in str(line.get("route", ""))]
    assert instance_reads, "the viewer asked for no instance"
    assert {line["status"] for line in instance_reads} == {200}
    assert all(int(str(line["status"])) < 400 for line in lines if "dicomweb" in str(line["route"]))
