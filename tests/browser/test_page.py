"""The built-in page at ``/`` in a real browser: upload by drag and drop and by keyboard, the
study list with thumbnails and search, the viewer (windowing by mouse and keys, presets,
frames, zoom, the header tree and its search), download, delete; at a desktop window's size
and a phone's, with no console errors."""

from __future__ import annotations

import base64
import io
import re
import uuid
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.browser.conftest import PHONE, Watched, watch
from tests.conftest import Server
from tests.datafiles import data_file

pytestmark = pytest.mark.browser


def a_study(name: str, patient: str) -> bytes:
    """A copy of a test file in a study of its own, for a patient no other test has."""
    return copy_with_new_uid(
        data_file(name),
        PatientName=patient,
        PatientID=patient.split("^")[0],
        StudyInstanceUID=generate_uid(),
        SeriesInstanceUID=generate_uid(),
    )


def drop(page: Page, files: list[tuple[str, bytes]]) -> None:
    """Drop files on the drop zone as a browser does: dragenter, dragover, drop with a
    DataTransfer holding them."""
    payload = [{"name": n, "b64": base64.b64encode(b).decode()} for n, b in files]
    page.evaluate(
        """(files) => {
            const dt = new DataTransfer();
            for (const f of files) {
                const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
                dt.items.add(new File([bytes], f.name, { type: "application/dicom" }));
            }
            const zone = document.getElementById("drop");
            for (const type of ["dragenter", "dragover", "drop"]) {
                const init = { bubbles: true, cancelable: true, dataTransfer: dt };
                zone.dispatchEvent(new DragEvent(type, init));
            }
        }""",
        payload,
    )


def search(page: Page, patient: str) -> None:
    """Search by patient name and wait for the list to show that search's answer."""
    page.fill("#q-name", patient)
    page.press("#q-name", "Enter")
    expect(page.locator("#studies")).to_have_attribute(
        "data-query", re.compile(r"PatientName=" + re.escape(quote_plus(f"*{patient}*", safe="*")))
    )


def wait_for_image(page: Page) -> bytes:
    """Wait until the image shown is the one last asked for; its pixels as the browser drew
    them (a screenshot of the image element)."""
    page.wait_for_function(
        """() => {
            const image = document.getElementById("image");
            const stage = document.getElementById("stage");
            return stage.dataset.wanted && image.dataset.url === stage.dataset.wanted
                && image.complete && image.naturalWidth > 0 && !stage.classList.contains("busy");
        }"""
    )
    return page.locator("#image").screenshot()


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)


def differ(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two screenshots' pixels (0-255)."""
    pa, pb = pixels(a), pixels(b)
    assert pa.shape == pb.shape
    return float(np.abs(pa - pb).mean())


def store(server: Server, name: str, prefix: str) -> tuple[str, bytes]:
    """A copy of test file ``name`` stored for a new patient: (patient, the bytes)."""
    patient = f"{prefix}{uuid.uuid4().hex[:10]}^{name[:2].title()}"
    data = a_study(name, patient)
    with httpx.Client(base_url=server.base_url) as client:
        assert client.post("/dicom-image", files={"file": (name, data)}).status_code == 201
    return patient, data


def store_and_open(page: Page, server: Server, name: str, prefix: str) -> tuple[str, bytes, str]:
    """``store`` a copy, then open it from the list: (patient, the bytes, its file id)."""
    patient, data = store(server, name, prefix)
    return patient, data, open_file(page, server, patient)


def open_file(page: Page, server: Server, patient: str) -> str:
    """From the list, open the one file of ``patient``'s study; its file id."""
    page.goto(server.base_url + "/")
    search(page, patient)
    expect(page.locator(".study")).to_have_count(1)  # the search's answer, not the first list
    study = page.locator(".study", has_text=patient)
    study.get_by_role("button", name="Files").click()
    link = study.locator(".files a").first
    href = link.get_attribute("href") or ""
    link.click()
    expect(page.locator("#file-view")).to_be_visible()
    return href.rsplit("/", 1)[1]


def test_dropped_files_are_stored_and_listed_with_thumbnails(
    server: Server, desktop: Watched
) -> None:
    page = desktop.page
    tag = uuid.uuid4().hex[:10]
    page.goto(server.base_url + "/")
    drop(
        page,
        [
            ("ct.dcm", a_study("CT_small.dcm", f"Drop{tag}^Ct")),
            ("mr.dcm", a_study("MR_small.dcm", f"Drop{tag}^Mr")),
        ],
    )
    expect(page.locator("#upload-summary")).to_have_text(
        "Done. 2 stored · 0 already present · 0 rejected"
    )
    expect(page.locator("#upload-list .stored")).to_have_count(2)

    search(page, f"Drop{tag}")
    studies = page.locator(".study")
    expect(studies).to_have_count(2)
    expect(studies.filter(has_text=f"Drop{tag}^Ct")).to_contain_text("Modalities: CT")
    expect(studies.filter(has_text=f"Drop{tag}^Mr")).to_contain_text("Instances: 1")
    page.wait_for_function(
        """() => [...document.querySelectorAll('.study .thumb')]
            .every((img) => img.complete && img.naturalWidth > 0)"""
    )
    page.locator(".study").first.get_by_role("button", name="Files").click()
    page.wait_for_function(
        """() => { const img = document.querySelector('.study .files .thumb');
                   return img && img.complete && img.naturalWidth > 0; }"""
    )
    ohif = page.locator(".study").first.get_by_role("link", name="Open in OHIF")
    resolved = ohif.evaluate("(link) => link.href")  # relative: the page's URLs are
    assert resolved.startswith(server.base_url + "/ohif/viewer?StudyInstanceUIDs=")


def test_a_file_sent_twice_is_already_present_and_a_bad_one_is_rejected_with_the_reason(
    server: Server, desktop: Watched
) -> None:
    page = desktop.page
    desktop.expect_error("status of 422")  # the rejected upload's answer, as Chromium logs it
    data = a_study("CT_small.dcm", f"Twice{uuid.uuid4().hex[:10]}^Ct")
    page.goto(server.base_url + "/")
    drop(page, [("first.dcm", data)])
    expect(page.locator("#upload-summary")).to_contain_text("1 stored")
    drop(page, [("again.dcm", data), ("notes.txt", b"not a DICOM file at all" * 10)])
    expect(page.locator("#upload-summary")).to_have_text(
        "Done. 1 stored · 1 already present · 1 rejected"
    )
    rejected = page.locator("#upload-list li", has_text="notes.txt").locator(".rejected")
    expect(rejected).to_contain_text("rejected: ")
    expect(rejected).to_contain_text("DICM")  # the problem document's detail


def test_upload_by_keyboard_through_the_file_chooser(server: Server, desktop: Watched) -> None:
    page = desktop.page
    patient = f"Keys{uuid.uuid4().hex[:10]}^Ct"
    # File choosers are intercepted from the start: Playwright turns interception on
    # asynchronously, and a chooser opened before that is a native one nobody sees.
    page.on("filechooser", lambda chooser: None)
    page.goto(server.base_url + "/")
    page.locator("#drop").focus()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(
        [
            {
                "name": "ct.dcm",
                "mimeType": "application/dicom",
                "buffer": a_study("CT_small.dcm", patient),
            }
        ]
    )
    expect(page.locator("#upload-summary")).to_contain_text("1 stored")


def test_the_viewer_windows_by_drag_keys_and_presets_and_zooms(
    server: Server, desktop: Watched
) -> None:
    page = desktop.page
    patient, _, _ = store_and_open(page, server, "CT_small.dcm", "Window")
    expect(page.locator("#file-title")).to_contain_text(patient)
    before = wait_for_image(page)

    box = page.locator("#stage").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    # The file has no window: it is shown min-max, and dragging starts from that window,
    # read from the image (CT_small: stored 128..2191, intercept -1024: HU -896..1167).
    expect(page.locator("#stage")).to_have_attribute("data-range", "136,2064")
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 2, y, steps=2)
    page.mouse.up()
    assert differ(before, wait_for_image(page)) < 3  # a small drag, a small change
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 150, y + 80, steps=6)  # narrower window, higher centre
    page.mouse.up()
    dragged = wait_for_image(page)
    assert "window_center=" in (page.locator("#image").get_attribute("data-url") or "")
    assert differ(before, dragged) > 5
    expect(page.locator("#preset")).to_have_value("custom")
    expect(page.locator("#window-label")).to_contain_text("C ")

    page.select_option("#preset", "bone")
    bone = wait_for_image(page)
    assert "window_center=300.00&window_width=1500.00" in (
        page.locator("#image").get_attribute("data-url") or ""
    )
    assert differ(dragged, bone) > 5
    page.locator("#stage").focus()
    page.keyboard.press("ArrowLeft")  # narrower by a step
    keyed = wait_for_image(page)
    assert "window_width=1470.00" in (page.locator("#image").get_attribute("data-url") or "")
    assert differ(bone, keyed) > 0
    page.select_option("#preset", "file")
    # The file's own rendering again (a pixel of layout shift may resample its edges).
    assert differ(before, wait_for_image(page)) < 1.5
    assert (page.locator("#image").get_attribute("data-url") or "").endswith("/png")

    width_fit = page.locator("#image").bounding_box()
    page.keyboard.press("+")
    expect(page.locator("#zoom-label")).not_to_have_text("fit")
    page.get_by_role("button", name="Fit").click()
    expect(page.locator("#zoom-label")).to_have_text("fit")
    assert page.locator("#image").bounding_box() == width_fit


def test_the_viewer_steps_through_frames(server: Server, desktop: Watched) -> None:
    page = desktop.page
    _, _, _ = store_and_open(page, server, "emri_small.dcm", "Frames")
    expect(page.locator("#frame-control")).to_be_visible()
    expect(page.locator("#frame-label")).to_have_text("1 / 10")
    first = wait_for_image(page)
    page.locator("#frame").fill("5")
    fifth = wait_for_image(page)
    expect(page.locator("#frame-label")).to_have_text("5 / 10")
    assert "frame=5" in (page.locator("#image").get_attribute("data-url") or "")
    assert differ(first, fifth) > 1
    page.locator("#stage").focus()
    page.keyboard.press("PageDown")
    sixth = wait_for_image(page)
    expect(page.locator("#frame-label")).to_have_text("6 / 10")
    assert differ(fifth, sixth) > 0


def test_the_header_tree_searches_and_links_each_attribute_to_its_lookup(
    server: Server, desktop: Watched
) -> None:
    page = desktop.page
    patient, _, _ = store_and_open(page, server, "CT_small.dcm", "Tree")
    rows = page.locator("#tree .row")
    expect(rows.first).to_be_attached()  # the tree is made in one go
    total = rows.count()
    assert total > 50
    expect(page.locator("#tree details.seq").first).not_to_have_attribute("open", "")

    page.fill("#tag-filter", "patientname")
    visible = page.locator("#tree .row:not(.hidden-by-filter)")
    expect(visible).to_have_count(1)
    row = visible.first
    expect(row).to_contain_text("(0010,0010)")
    expect(row).to_contain_text(patient)
    href = row.get_by_role("link", name="lookup").get_attribute("href") or ""
    with httpx.Client(base_url=server.base_url) as client:
        answer = client.get(href)
    assert answer.status_code == 200
    assert answer.json()["value"] == patient

    # A match inside a sequence opens the items that hold it, and its lookup is a path.
    page.fill("#tag-filter", "TypeOfPatientID")
    nested = page.locator("#tree .row.hit")
    expect(nested).to_have_count(2)
    expect(nested.first).to_be_visible()
    nested_href = nested.nth(1).get_by_role("link", name="lookup").get_attribute("href") or ""
    assert "%5B1%5D." in nested_href  # (0010,1002)[1].(0010,0022)
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get(nested_href).json()["value"] == "TEXT"

    page.fill("#tag-filter", "")
    expect(page.locator("#tree .row:not(.hidden-by-filter)")).to_have_count(total)


def test_download_and_delete_with_a_confirmation(server: Server, desktop: Watched) -> None:
    page = desktop.page
    _, data, file_id = store_and_open(page, server, "CT_small.dcm", "Delete")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download", exact=True).click()
    assert Path(download.value.path()).read_bytes() == data

    page.get_by_role("button", name="Delete…").click()
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # cancelled: nothing happens
    expect(dialog).to_be_hidden()
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get(f"/dicom-image/{file_id}").status_code == 200

    page.get_by_role("button", name="Delete…").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("#list-view")).to_be_visible()
    expect(page.locator("#notice")).to_have_text("The file was deleted.")
    expect(page.locator("#list-message")).to_have_text("No study matches the search.")
    with httpx.Client(base_url=server.base_url) as client:
        assert client.get(f"/dicom-image/{file_id}").status_code == 404


def test_a_phone_sized_window_shows_list_and_viewer_without_sideways_scrolling(
    server: Server, browser: Browser
) -> None:
    watched = watch(browser, PHONE)
    page = watched.page
    patient, _ = store(server, "CT_small.dcm", "Phone")
    try:
        no_overflow = "() => document.documentElement.scrollWidth <= window.innerWidth"
        open_file(page, server, patient)
        wait_for_image(page)
        assert page.evaluate(no_overflow)
        image = page.locator("#image").bounding_box()
        assert image is not None and image["width"] > 300
        page.goto(server.base_url + "/")
        search(page, patient)
        expect(page.locator(".study")).to_have_count(1)
        assert page.evaluate(no_overflow)
    finally:
        page.context.close()
    assert watched.unexpected_errors() == []


def test_a_chosen_folder_is_uploaded_whole(
    server: Server, desktop: Watched, tmp_path: Path
) -> None:
    page = desktop.page
    tag = uuid.uuid4().hex[:10]
    folder = tmp_path / "exam"
    (folder / "series1").mkdir(parents=True)
    (folder / "series1" / "IM0001").write_bytes(a_study("CT_small.dcm", f"Folder{tag}^Ct"))
    (folder / "IM0002").write_bytes(a_study("MR_small.dcm", f"Folder{tag}^Mr"))
    page.goto(server.base_url + "/")
    page.set_input_files("#pick-folder", str(folder))
    expect(page.locator("#upload-summary")).to_have_text(
        "Done. 2 stored · 0 already present · 0 rejected"
    )
    expect(page.locator("#upload-list")).to_contain_text("exam/series1/IM0001")


def test_the_study_list_pages(server: Server, desktop: Watched) -> None:
    page = desktop.page
    tag = uuid.uuid4().hex[:10]
    with httpx.Client(base_url=server.base_url) as client:
        for n in range(23):
            data = a_study("CT_small.dcm", f"Pages{tag}^{n:02d}")
            assert client.post("/dicom-image", files={"file": ("ct.dcm", data)}).status_code == 201
    page.goto(server.base_url + "/")
    search(page, f"Pages{tag}")
    expect(page.locator("#page-label")).to_have_text("Studies 1–20")
    expect(page.locator(".study")).to_have_count(20)
    expect(page.get_by_role("button", name="Previous")).to_be_disabled()
    first_page = set(page.locator(".study .study-title").all_inner_texts())
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#page-label")).to_have_text("Studies 21–23")
    expect(page.locator(".study")).to_have_count(3)
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    second_page = set(page.locator(".study .study-title").all_inner_texts())
    assert not first_page & second_page
    assert len(first_page | second_page) == 23
    page.get_by_role("button", name="Previous").click()
    expect(page.locator("#page-label")).to_have_text("Studies 1–20")


def test_a_studys_files_are_named_and_ordered_as_a_viewer_stacks_them(
    server: Server, desktop: Watched
) -> None:
    page = desktop.page
    patient = f"Order{uuid.uuid4().hex[:10]}^Mr"
    study, series = generate_uid(), generate_uid()
    with httpx.Client(base_url=server.base_url) as client:
        for number in (3, 1, 2):
            data = copy_with_new_uid(
                data_file("MR_small.dcm"),
                PatientName=patient,
                StudyInstanceUID=study,
                SeriesInstanceUID=series,
                SeriesNumber="7",
                SeriesDescription="T1 AX",
                InstanceNumber=str(number),
            )
            assert client.post("/dicom-image", files={"file": ("mr.dcm", data)}).status_code == 201
    page.goto(server.base_url + "/")
    search(page, patient)
    expect(page.locator(".study")).to_have_count(1)
    page.locator(".study").get_by_role("button", name="Files").click()
    names = page.locator(".files a .file-text > span")
    expect(names).to_have_text(
        ["MR · series 7 T1 AX · #1", "MR · series 7 T1 AX · #2", "MR · series 7 T1 AX · #3"]
    )


def test_the_page_says_how_a_modality_reaches_the_dicom_door(
    server: Server, desktop: Watched
) -> None:
    page = desktop.page
    page.goto(server.base_url + "/")
    expect(page.locator("#dicom-door")).to_have_text(
        f"DICOM: AE title DICOMFS at 127.0.0.1, port {server.dicom_port}"
    )


def test_a_study_is_de_identified_from_the_list_with_its_progress_and_copy(
    server: Server, desktop: Watched
) -> None:
    page = desktop.page
    patient, _ = store(server, "CT_small.dcm", "Deid")
    page.goto(server.base_url + "/")
    search(page, patient)
    study = page.locator(".study", has_text=patient)
    study.get_by_role("button", name="De-identify").click()
    status = study.get_by_role("status")
    expect(status).to_contain_text("De-identified copy: 1 instance in the new study 2.25.")
    new_study = re.search(r"new study (2\.25\.\d+)", status.inner_text())
    assert new_study is not None
    copy_link = study.get_by_role("link", name="Open the copy in OHIF")
    assert new_study[1] in (copy_link.get_attribute("href") or "")
    with httpx.Client(base_url=server.base_url) as client:
        found = client.get("/dicomweb/studies", params={"StudyInstanceUID": new_study[1]})
        assert found.status_code == 200 and len(found.json()) == 1
        name = found.json()[0]["00100010"]["Value"][0]["Alphabetic"]
        assert patient.split("^")[0] not in name
