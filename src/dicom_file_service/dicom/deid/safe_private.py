"""The Retain Safe Private Option's list (PS3.15 E.3.10, Table E.3.10-1), kept as data.

A private attribute is named by its group, its private creator (the value of the block's
(gggg,00xx) element) and its element's low byte: ``(0019,xx0C)`` of ``SIEMENS MR HEADER`` is
(0019,100C) when that creator holds block 10, (0019,110C) when it holds block 11. The table
(``table_e3_10_1.csv``: the 2026d edition's 479 rows; where it comes from: ``SOURCES.md``) is
the standard's list of attributes "thought to be safe": vendors do not guarantee them. What is
kept under the option is exactly what it lists, with the creators that define it.
"""

from __future__ import annotations

import csv
import functools
from importlib import resources

SafeKey = tuple[int, str, int]  # (group, private creator, element's low byte)


@functools.cache
def safe_private() -> dict[SafeKey, str]:
    """The safe attributes and the VR the table gives each ("" where it gives none)."""
    text = resources.files(__package__).joinpath("table_e3_10_1.csv").read_text("utf-8")
    out: dict[SafeKey, str] = {}
    for row in csv.DictReader(text.splitlines()):
        written = row["data_element"].strip("()")
        group, element = written.split(",")
        out[(int(group, 16), row["private_creator"].strip(), int(element[2:], 16))] = row["vr"]
    return out
