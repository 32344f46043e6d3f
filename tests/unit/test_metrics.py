"""The request tally adds to the Prometheus metrics exactly what ``observe`` would have."""

from __future__ import annotations

import uuid

from prometheus_client import CollectorRegistry, Histogram

from dicom_file_service import metrics


def _samples(histogram: Histogram, route: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in histogram.collect():
        for sample in family.samples:
            if sample.labels.get("route") == route:
                out[(sample.name, sample.labels.get("le", ""))] = sample.value
    return out


def test_flushed_tally_equals_observing_each_request() -> None:
    route = f"/test/{uuid.uuid4().hex}"
    durations = [0.0004, 0.001, 0.0011, 0.03, 0.7, 45.0, 0.001]
    reference = Histogram(
        "reference_seconds",
        "the same buckets, observed one by one",
        ["route"],
        buckets=metrics.REQUEST_SECONDS._upper_bounds[:-1],
        registry=CollectorRegistry(),
    )
    for seconds in durations:
        metrics.REQUEST_TALLY.record("GET", route, 200, seconds)
        reference.labels(route).observe(seconds)
    metrics.REQUEST_TALLY.record("GET", route, 404, 0.002)
    metrics.REQUEST_TALLY.flush()

    ours = _samples(metrics.REQUEST_SECONDS, route)
    theirs = _samples(reference, route)
    renamed = {
        (name.replace("reference", "dicom_fs_request_duration"), le): v
        for (name, le), v in theirs.items()
        if not name.endswith("_created")
    }
    for key, value in renamed.items():
        expected = value + (1 if key[0].endswith(("_count",)) else 0)
        if key[0].endswith("_bucket") and float(key[1]) >= 0.0025:
            expected = value + 1  # the 404's 2 ms
        if key[0].endswith("_sum"):
            expected = value + 0.002
        assert abs(ours[key] - expected) < 1e-9, key
    assert metrics.REQUESTS.labels("GET", route, "200")._value.get() == len(durations)
    assert metrics.REQUESTS.labels("GET", route, "404")._value.get() == 1


def test_flush_with_nothing_counted_changes_nothing() -> None:
    route = f"/test/{uuid.uuid4().hex}"
    metrics.REQUEST_TALLY.flush()
    metrics.REQUEST_TALLY.flush()
    assert _samples(metrics.REQUEST_SECONDS, route) == {}
