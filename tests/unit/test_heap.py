"""``heap.settle``: what exists is frozen out of the collector's walks, cycles still go."""

from __future__ import annotations

import gc
import weakref

from dicom_file_service import heap


def test_settle_freezes_what_exists_and_still_collects_cycles() -> None:
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 1000  # the modules' objects, at least
        assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD

        class Node:
            other: object

        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle made after settling
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
