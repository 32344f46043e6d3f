"""Requests racing each other through HTTP, on every backend: never a 500, never a torn or
lost file, and every answer consistent with some order of the requests."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from tests.api.dicom_factory import changed_content, copy_with_new_uid
from tests.conftest import Server
from tests.datafiles import data_file

RAW = {"content-type": "application/dicom"}


def _together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once (released by one barrier), in threads of their own."""
    barrier = threading.Barrier(len(calls))

    def released(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(released, calls))


def test_racing_uploads_of_one_instance_store_it_once(server: Server) -> None:
    """Eight identical uploads and four of other content under one SOP Instance UID: one
    row, the identical ones all answer its file id, the others a 409."""
    data = copy_with_new_uid(data_file("CT_small.dcm"))
    other = changed_content(data, PatientID="SOMEONE-ELSE")
    with server.client() as c:

        def post(body: bytes) -> httpx.Response:
            return c.post("/dicom-image", content=body, headers=RAW)

        answers = _together([lambda: post(data)] * 8 + [lambda: post(other)] * 4)
    statuses = [r.status_code for r in answers]
    assert all(s in (200, 201, 409) for s in statuses), statuses
    winners = {r.json()["file_id"] for r in answers if r.status_code in (200, 201)}
    assert len(winners) == 1
    (file_id,) = winners
    with server.client() as c:
        stored = c.get(f"/dicom-image/{file_id}").content
    assert stored in (data, other)
    # Whichever content won, every upload of the same content got its id; the other a 409.
    for body, r in zip([data] * 8 + [other] * 4, answers, strict=True):
        assert (r.status_code != 409) == (body == stored), (r.status_code, r.text)


def test_a_delete_racing_reads_leaves_answers_whole_or_404(server: Server) -> None:
    """Downloads, PNGs and tag lookups racing the delete of their file: each answer is the
    whole file (or rendering, or value) or a 404, never a 500 or a torn body."""
    for _ in range(5):
        data = copy_with_new_uid(data_file("CT_small.dcm"))
        with server.client() as c:
            file_id = c.post("/dicom-image", content=data, headers=RAW).json()["file_id"]
            png = c.get(f"/dicom-image/{file_id}/png", params={"width": "32"}).content

            def read(path: str, params: dict[str, str]) -> Callable[[], httpx.Response]:
                return lambda: c.get(path, params=params)

            def delete(target: str = file_id) -> httpx.Response:
                return c.delete(f"/dicom-image/{target}")

            calls = [
                read(f"/dicom-image/{file_id}", {}),
                read(f"/dicom-image/{file_id}/png", {}),
                read(f"/dicom-image/{file_id}/png", {"width": "32"}),
                read(f"/dicom-image/{file_id}", {"dicom_tag": "(0010,0010)"}),
                read(f"/dicom-image/{file_id}/bulkdata/7FE00010", {}),
                delete,
            ]
            answers = _together(calls * 2)
        for r in answers:
            assert r.status_code in (200, 204, 404), (r.status_code, r.text[:300])
        download, small = answers[0], answers[2]
        if download.status_code == 200:
            assert download.content == data
        if small.status_code == 200:
            assert small.content == png
        assert sorted(r.status_code for r in (answers[5], answers[11])) == [204, 404]


def test_an_overwrite_racing_renders_serves_one_content_or_the_other(server: Server) -> None:
    """``?overwrite=true`` replacing a file while its PNG is asked for: each answer is one
    whole rendering of the old or of the new content, and the new one stays."""
    first = copy_with_new_uid(data_file("CT_small.dcm"))
    second = changed_content(first, WindowCenter="400", WindowWidth="100")
    with server.client() as c:
        old_id = c.post("/dicom-image", content=first, headers=RAW).json()["file_id"]
        old_png = c.get(f"/dicom-image/{old_id}/png").content
        calls: list[Callable[[], httpx.Response]] = [
            lambda: c.post(
                "/dicom-image", params={"overwrite": "true"}, content=second, headers=RAW
            )
        ] + [lambda: c.get(f"/dicom-image/{old_id}/png")] * 6
        answers = _together(calls)
        replaced = answers[0]
        assert replaced.status_code == 201, replaced.text
        new_id = replaced.json()["file_id"]
        new_png = c.get(f"/dicom-image/{new_id}/png").content
        assert c.get(f"/dicom-image/{new_id}").content == second
        assert c.get(f"/dicom-image/{old_id}").status_code == 404
    assert new_png != old_png
    for r in answers[1:]:
        assert r.status_code in (200, 404), (r.status_code, r.text[:300])
        if r.status_code == 200:
            assert r.content == old_png
