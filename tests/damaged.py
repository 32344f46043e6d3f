"""Damaged copies of a DICOM file, for the readers' differential tests."""

from __future__ import annotations

import random
from collections.abc import Iterator


def damaged_copies(data: bytes, seed: int, count: int) -> Iterator[bytes]:
    """Copies cut short, with bytes changed, and with bytes after the end."""
    rng = random.Random(seed)
    for _ in range(count):
        what = rng.randrange(4)
        if what == 0:
            yield data[: rng.randrange(132, len(data))]
        elif what == 1:
            at = rng.randrange(132, min(len(data), 4096))
            yield data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
        elif what == 2:
            at = rng.randrange(132, min(len(data), 4096))
            value = rng.choice([0, 0xFF, 0x80, ord("\\"), ord("="), ord(" ")])
            yield data[:at] + bytes([value]) * rng.randrange(1, 5) + data[at + 4 :]
        else:
            yield data + bytes(rng.randrange(1, 10)) if rng.random() < 0.5 else data + b"\x01"
