"""The built-in page's ZIP downloads in a real browser: "Download study (ZIP)" on a study of
the list and "Download series (ZIP)" on a file's view save WADO-RS's ZIP (asked for by a
plain link, with PS3.18's accept query parameter), holding the stored files byte for byte."""

from __future__ import annotations

import re
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.browser.conftest import Watched
from tests.browser.test_page import search
from tests.conftest import Server
from tests.datafiles import data_file

pytestmark = pytest.mark.browser


def _store_study(server: Server, patient: str) -> dict[str, list[bytes]]:
    """Two series (two CT instances, one MR) of one study: each series' files' bytes."""
    study = generate_uid()
    stored: dict[str, list[bytes]] = {}
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        for name, count in (("CT_small.dcm", 2), ("MR_small.dcm", 1)):
            series = generate_uid()
            for n in range(count):
                data = copy_with_new_uid(
                    data_file(name),
                    PatientName=patient,
                    StudyInstanceUID=study,
                    SeriesInstanceUID=series,
                    InstanceNumber=str(n + 1),
                )
                answer = client.post("/dicom-image", files={"file": (name, data)})
                assert answer.status_code == 201, answer.text
                stored.setdefault(name, []).append(data)
    return stored


def _download(page: Page, link_name: str, into: Path) -> tuple[str, dict[str, bytes]]:
    """Click the link, wait for the download: (its suggested name, its members)."""
    with page.expect_download() as started:
        page.get_by_role("link", name=link_name).click()
    download = started.value
    assert download.failure() is None
    path = into / download.suggested_filename
    download.save_as(path)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        return download.suggested_filename, {n: archive.read(n) for n in archive.namelist()}


def test_the_page_downloads_a_study_and_a_series_as_zip(
    server: Server, desktop: Watched, tmp_path: Path
) -> None:
    page = desktop.page
    tag = uuid.uuid4().hex[:10]
    patient = f"Zip{tag}^Ct"
    stored = _store_study(server, patient)
    page.goto(server.base_url + "/")
    search(page, f"Zip{tag}")
    expect(page.locator(".study")).to_have_count(1)

    name, members = _download(page, "Download study (ZIP)", tmp_path)
    assert name.startswith(f"Zip{tag} Ct") and name.endswith(".zip")
    assert sorted(members.values()) == sorted(b for files in stored.values() for b in files)
    assert all(path.startswith(f"Zip{tag} Ct") for path in members)
    series_folders = {path.split("/")[1] for path in members}
    assert len(series_folders) == 2 and all(len(path.split("/")) == 3 for path in members)

    page.locator(".study").get_by_role("button", name="Files").click()
    page.locator(".files a", has_text="MR").first.click()
    expect(page.locator("#file-view")).to_be_visible()
    expect(page.locator("#series-zip")).to_have_attribute(
        "href", re.compile(r"^dicomweb/studies/[0-9.]+/series/[0-9.]+\?accept=application%2Fzip$")
    )
    _, series_members = _download(page, "Download series (ZIP)", tmp_path)
    assert list(series_members.values()) == stored["MR_small.dcm"]
