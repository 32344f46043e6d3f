"""Prometheus metrics, counted in every process and summed when scraped.

With several uvicorn workers each process keeps its own counts; prometheus-client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set by ``serve`` to a directory of its own,
emptied at start) writes them to files that ``/metrics`` sums, so every scrape, whichever
worker answers it, sees the whole service. Labels never carry identifiers: routes are
templates, errors are problem codes.
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict

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
DIMSE_ASSOCIATIONS = Counter(
    "dicom_fs_dimse_associations_total",
    "DICOM network associations by outcome (accepted, rejected, released, aborted)",
    ["outcome"],
)
DIMSE_OPERATIONS = Counter(
    "dicom_fs_dimse_operations_total",
    "DICOM network operations answered, by operation and final status (hex)",
    ["operation", "status"],
)
DIMSE_RECEIVED_BYTES = Counter(
    "dicom_fs_dimse_received_bytes_total", "Bytes of the data sets received by C-STORE"
)
DIMSE_SENT_INSTANCES = Counter(
    "dicom_fs_dimse_sent_instances_total",
    "Instances sent by C-STORE sub-operations (C-MOVE, C-GET) and sending jobs, by outcome",
    ["outcome"],
)
JOB_RUNS = Counter(
    "dicom_fs_jobs_total",
    "Clients' background jobs finished (DICOM sending, retrieving), by kind and outcome",
    ["kind", "outcome"],
)
CONTENT_TYPE = CONTENT_TYPE_LATEST
FLUSH_SECONDS = 1.0
"""How long a request's count may wait in its process before ``/metrics`` sees it."""


class RequestTally:
    """Requests counted in plain dictionaries, added to the Prometheus metrics in bulk.

    Counting a request straight into prometheus-client's multiprocess values costs a label
    lookup, a lock and an mmap write for each of its three samples, several microseconds on
    a path (tag lookups) that answers in tens. Here a request costs two dictionary updates;
    ``flush`` (every ``FLUSH_SECONDS`` on the event loop, before each scrape and at shutdown)
    adds what was counted since the last one.
    """

    def __init__(self) -> None:
        self._bounds = list(REQUEST_SECONDS._upper_bounds)  # ends with +Inf
        self._counts: defaultdict[tuple[str, str, str], int] = defaultdict(int)
        self._durations: dict[str, list[float]] = {}  # per bucket, then the sum

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        self._counts[(method, route, str(status))] += 1
        tally = self._durations.get(route)
        if tally is None:
            tally = self._durations[route] = [0.0] * (len(self._bounds) + 1)
        tally[bisect.bisect_left(self._bounds, seconds)] += 1.0
        tally[-1] += seconds

    def flush(self) -> None:
        counts, self._counts = self._counts, defaultdict(int)
        durations, self._durations = self._durations, {}
        for labels, n in counts.items():
            REQUESTS.labels(*labels).inc(n)
        for route, tally in durations.items():
            child = REQUEST_SECONDS.labels(route)
            # The histogram's own values (per bucket, not cumulative, as ``observe`` keeps
            # them): prometheus-client has no public way to add many observations at once.
            for bucket, observed in zip(child._buckets, tally[:-1], strict=True):
                if observed:
                    bucket.inc(observed)
            child._sum.inc(tally[-1])


REQUEST_TALLY = RequestTally()


def exposition(extra: bytes = b"") -> bytes:
    """Every process's counts, summed (or this process's alone outside ``serve``)."""
    REQUEST_TALLY.flush()
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry) + extra
    return generate_latest() + extra
