"""Noticing that the process that started this one has gone.

A child the kernel reparents when its parent dies (``kill -9``, an out-of-memory kill) is
told nothing: a parser process waiting on its pool's queue, or ``serve``'s DICOM listener,
would run on, unseen, for ever.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable


def watch_parent(parent: int, on_gone: Callable[[], None]) -> None:
    """Call ``on_gone`` once the parent ``parent`` has gone (checked every second), from a
    daemon thread of its own."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        on_gone()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
