"""Prometheus metrics, counted in every process and summed when scraped.

With several uvicorn workers each process keeps its own counts; prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``serve`` to a directory of its own,
emptied at start) writes them to files that ``/metrics`` sums, so every scrape, whichever
worker answers it, sees the whole service. Labels never carry identifiers: routes are
templates, errors are problem codes.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "dicom_fs_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
REQUEST_SECONDS = Histogram(
    "dicom_fs_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UPLOADS = Counter("dicom_fs_uploads_total", "Uploads by outcome", ["outcome"])
STORED_BYTES = Counter("dicom_fs_stored_bytes_total", "Bytes of the files stored")
REJECTIONS = Counter("dicom_fs_rejections_total", "Problem documents sent, by code", ["code"])
RENDER_SECONDS = Histogram(
    "dicom_fs_render_seconds",
    "Time to decode and render one frame",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
RENDER_CACHE = Counter(
    "dicom_fs_render_cache_total", "Rendering requests by cache result", ["result"]
)
JOBS = Counter("dicom_fs_prerender_jobs_total", "Background renderings by outcome", ["outcome"])
BACKEND_ERRORS = Counter(
    "dicom_fs_backend_errors_total", "Index and store failures seen by requests", ["backend"]
)
CONTENT_TYPE = CONTENT_TYPE_LATEST


def exposition(extra: bytes = b"") -> bytes:
    """Every process's counts, summed (or this process's alone outside ``serve``)."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry) + extra
    return generate_latest() + extra
