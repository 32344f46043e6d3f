"""/metrics: what operators watch, counted in every process and summed whichever answers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dicom_file_service import metrics
from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server, start_server, stop_server
from tests.datafiles import data_file


def _value(text: str, name: str, **labels: str) -> float:
    """The sample of ``name`` with exactly these labels (0 when absent)."""
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if found == labels:
                return float(match.group(2))
    return 0.0


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Server]:
    srv = start_server(tmp_path / "data", args=("--workers", "2"))
    yield srv
    stop_server(srv)


def test_counts_of_every_worker_are_summed_in_every_scrape(two_workers: Server) -> None:
    # A new connection per request: the workers share the listening socket, so requests and
    # scrapes are spread over both, and a scrape must still see every worker's counts.
    with two_workers.client(limits=httpx.Limits(max_keepalive_connections=0)) as c:
        ids, sizes = [], 0
        for _ in range(6):
            data = copy_with_new_uid(data_file("CT_small.dcm"))
            r = c.post("/dicom-image", content=data, headers={"content-type": "application/dicom"})
            assert r.status_code == 201
            ids.append(r.json()["file_id"])
            sizes += len(data)
        for file_id in ids:
            assert c.get(f"/dicom-image/{file_id}", params={"dicom_tag": "PatientName"}).is_success
            assert c.get(f"/dicom-image/{file_id}/png").is_success
            assert c.get(f"/dicom-image/{file_id}/png").is_success  # from the cache
        assert c.get("/dicom-image/AAAAAAAAAAAAAAAAAAAAAA").status_code == 404
        assert c.post("/dicom-image", content=b"not dicom" * 20).status_code in (415, 422)
        # Each worker adds its request counts to the shared ones every FLUSH_SECONDS.
        time.sleep(metrics.FLUSH_SECONDS + 0.5)
        scrapes = [c.get("/metrics") for _ in range(6)]  # answered by either worker
    for scrape in scrapes:
        assert scrape.status_code == 200
        assert scrape.headers["content-type"].startswith("text/plain")
        text = scrape.text
        created = _value(
            text, "dicom_fs_requests_total", method="POST", route="/dicom-image", status="201"
        )
        assert created == 6
        assert (
            _value(
                text,
                "dicom_fs_requests_total",
                method="GET",
                route="/dicom-image/{file_id}/png",
                status="200",
            )
            == 12
        )
        assert _value(text, "dicom_fs_uploads_total", outcome="stored") == 6
        assert _value(text, "dicom_fs_stored_bytes_total") == sizes
        assert _value(text, "dicom_fs_rejections_total", code="file_not_found") == 1
        hits = _value(text, "dicom_fs_render_cache_total", result="hit")
        misses = _value(text, "dicom_fs_render_cache_total", result="miss")
        assert hits + misses == 12 and hits >= 1  # a cache written just after an answer
        assert "dicom_fs_render_seconds_bucket" in text
        assert "dicom_fs_request_duration_seconds_bucket" in text
        assert "dicom_fs_prerender_queue_depth 0" in text


def test_metrics_on_every_backend(client: httpx.Client) -> None:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert "dicom_fs_requests_total" in r.text
    assert re.search(r"^dicom_fs_prerender_queue_depth \d+$", r.text, re.M)
