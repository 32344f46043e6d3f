"""The de-identification job's bound on memory: copies overlap only while their sources' sizes
fit the budget; a source larger than it is copied alone, and nothing waits for ever."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from dicom_file_service.service.deid_jobs import _InFlight


def _peak(sizes: list[int], limit: int) -> tuple[int, int]:
    """(most bytes in flight at once, most copies at once) over ``sizes`` run 4 at a time."""
    in_flight = _InFlight(limit)
    lock = threading.Lock()
    now = [0, 0]
    peak = [0, 0]

    def copy(size: int) -> None:
        with in_flight.room(size):
            with lock:
                now[0] += size
                now[1] += 1
                peak[0], peak[1] = max(peak[0], now[0]), max(peak[1], now[1])
            time.sleep(0.02)
            with lock:
                now[0] -= size
                now[1] -= 1

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(copy, sizes))
    return peak[0], peak[1]


def test_small_copies_overlap_and_large_ones_go_alone() -> None:
    assert _peak([10] * 12, limit=100) == (40, 4)
    most, _ = _peak([60, 60, 60, 10, 10], limit=100)
    assert most <= 100
    assert _peak([500, 500, 500], limit=100) == (500, 1)  # each alone, none stuck
