"""Tag selectors (``(0010,0010)``, ``PatientName``, sequence paths) and their JSON answers.

Answers are computed from the DICOM JSON captured at ingest, never from the file: a lookup is
a dictionary walk. Dictionary facts (keyword, name) come from pydicom's data dictionary and are
cached, so a lookup costs microseconds.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydicom.datadict import (
    dictionary_description,
    keyword_dict,
    keyword_for_tag,
    private_dictionary_description,
)

from dicom_file_service.dicom.dicom_json import bulk_data_uri
from dicom_file_service.errors import InvalidTag, TagNotFound

MAX_SELECTOR_LENGTH = 256
MAX_STEPS = 8

FORMS = (
    "(0010,0010), 0010,0010, 00100010, 0x00100010, a keyword such as PatientName, private tags "
    "such as (0029,1010), file-meta tags such as (0002,0010), and sequence paths such as "
    "ReferencedSeriesSequence[0].SeriesInstanceUID or (0008,1115)[0].(0020,000E) (0-based item "
    "index)"
)

_STEP = re.compile(
    r"""^(?:
        \((?P<pg>[0-9A-F]{4}),(?P<pe>[0-9A-F]{4})\)   # (0010,0010)
      | (?P<cg>[0-9A-F]{4}),(?P<ce>[0-9A-F]{4})       # 0010,0010
      | (?:0X)?(?P<hex>[0-9A-F]{8})                   # 00100010 / 0x00100010
      | (?P<kw>[A-Z][A-Z0-9]*)                        # PatientName
    )(?:\[(?P<idx>[0-9]{1,6})\])?$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class TagPath:
    """A parsed selector: (tag, item index) steps; only the last step has no index."""

    steps: tuple[tuple[int, int | None], ...]

    @property
    def tag(self) -> int:
        return self.steps[-1][0]

    def __str__(self) -> str:
        return ".".join(
            _tag_text(tag) + (f"[{idx}]" if idx is not None else "") for tag, idx in self.steps
        )


def _invalid(selector: str, why: str) -> InvalidTag:
    shown = selector if len(selector) <= 80 else selector[:77] + "..."
    return InvalidTag(f"{why} in dicom_tag={shown!r}; accepted forms: {FORMS}")


@lru_cache(maxsize=1)
def _keywords() -> dict[str, int]:
    return {kw.upper(): int(tag) for kw, tag in keyword_dict.items()}


@lru_cache(maxsize=4096)
def parse_selector(text: str) -> TagPath:
    """Parse one ``dicom_tag`` value. Raises InvalidTag naming what was wrong."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise _invalid(text, f"the selector is longer than {MAX_SELECTOR_LENGTH} characters")
    compact = "".join(text.split()).upper()
    if not compact:
        raise _invalid(text, "the selector is empty")
    parts = compact.split(".")
    if len(parts) > MAX_STEPS:
        raise _invalid(text, f"the path has more than {MAX_STEPS} steps")
    steps: list[tuple[int, int | None]] = []
    for position, part in enumerate(parts):
        match = _STEP.match(part)
        if match is None:
            raise _invalid(text, f"{part!r} is not a tag or keyword")
        if match["kw"]:
            tag = _keywords().get(match["kw"])
            if tag is None:
                raise _invalid(text, f"{part!r} is not a DICOM keyword")
        elif match["hex"]:
            tag = int(match["hex"], 16)
        else:
            tag = int((match["pg"] or match["cg"]) + (match["pe"] or match["ce"]), 16)
        index = int(match["idx"]) if match["idx"] is not None else None
        last = position == len(parts) - 1
        if not last and index is None:
            raise _invalid(text, f"{part!r} needs an item index such as [0] to step into")
        if last and index is not None:
            raise _invalid(text, "an item index is allowed only before a '.' step")
        steps.append((tag, index))
    return TagPath(tuple(steps))


@lru_cache(maxsize=4096)
def required_keys(path: TagPath) -> tuple[str, ...]:
    """The top-level header keys ``lookup`` needs for ``path`` (with a private creator's)."""
    tag = path.steps[0][0]
    keys = [f"{tag:08X}"]
    if tag >> 16 & 1 and tag & 0xFFFF >= 0x1000 and len(path.steps) == 1:
        keys.append(f"{tag >> 16:04X}00{tag >> 8 & 0xFF:02X}")
    return tuple(keys)


def lookup(
    header: Mapping[str, Any],
    path: TagPath,
    bulk_lengths: Mapping[str, int],
    bulk_data_base: str = "",
) -> dict[str, Any]:
    """The attribute at ``path`` in a DICOM JSON header. Raises TagNotFound.

    ``bulk_data_base``: where the answer's bulk data URIs point (the stored header names
    bulk values by their location alone)."""
    dataset: Mapping[str, Any] = header
    location = ""
    for tag, index in path.steps[:-1]:
        key = f"{tag:08X}"
        element = dataset.get(key)
        if element is None:
            raise TagNotFound(f"the file has no attribute {_tag_text(tag)} (in {path})")
        if element.get("vr") != "SQ":
            raise TagNotFound(f"{_tag_text(tag)} is not a sequence, so {path} does not exist")
        items = element.get("Value") or []
        assert index is not None
        if index >= len(items):
            raise TagNotFound(
                f"{_tag_text(tag)} has {len(items)} item(s); item [{index}] does not exist"
            )
        dataset = items[index]
        location += f"{key}/{index}/"
    tag = path.tag
    key = f"{tag:08X}"
    element = dataset.get(key)
    if element is None:
        raise TagNotFound(f"the file has no attribute {path}")
    vr = element.get("vr", "UN")
    value, vm = _natural(element, vr, location + key, bulk_lengths, bulk_data_base)
    keyword, name = _names(tag, dataset)
    answer: dict[str, Any] = {
        "tag": _tag_text(tag),
        "keyword": keyword,
        "name": name,
        "vr": vr,
        "vm": vm,
        "value": value,
    }
    if len(path.steps) > 1:
        answer["path"] = str(path)
    return answer


def _natural(
    element: Mapping[str, Any],
    vr: str,
    location: str,
    bulk_lengths: Mapping[str, int],
    base: str,
) -> tuple[Any, int]:
    """(natural JSON value, VM) of one DICOM JSON element."""
    if "BulkDataURI" in element:
        uri = bulk_data_uri(base, element["BulkDataURI"])
        return {"bulk_data_uri": uri, "length": bulk_lengths.get(location)}, 1
    if "InlineBinary" in element:
        data = element["InlineBinary"]
        return {"inline_binary": data, "length": len(base64.b64decode(data))}, 1
    values = element.get("Value")
    if not values:
        return None, 0
    if vr == "SQ":
        items = [
            _item(item, f"{location}/{i}/", bulk_lengths, base) for i, item in enumerate(values)
        ]
        return items, 1
    if vr == "PN":
        values = [v.get("Alphabetic") if isinstance(v, dict) else v for v in values]
    return (values[0] if len(values) == 1 else list(values)), len(values)


def _item(
    item: Mapping[str, Any], location: str, bulk_lengths: Mapping[str, int], base: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, element in item.items():
        tag = int(key, 16)
        keyword, _ = _names(tag, item)
        value, _vm = _natural(element, element.get("vr", "UN"), location + key, bulk_lengths, base)
        out[keyword or _tag_text(tag)] = value
    return out


def _names(tag: int, dataset: Mapping[str, Any]) -> tuple[str, str]:
    if tag >> 16 & 1 and tag & 0xFFFF >= 0x1000:  # a private data element (PS3.5 7.8.1)
        creator_key = f"{tag >> 16:04X}00{tag >> 8 & 0xFF:02X}"
        creator = (dataset.get(creator_key, {}).get("Value") or [None])[0]
        return "", _private_name(tag, creator if isinstance(creator, str) else None)
    return _public_names(tag)


@lru_cache(maxsize=8192)
def _public_names(tag: int) -> tuple[str, str]:
    if tag >> 16 & 1 and tag & 0xFFFF < 0x1000:
        return "", "Private Creator" if tag & 0xFFFF >= 0x10 else "Private tag"
    try:
        return keyword_for_tag(tag) or "", dictionary_description(tag)
    except KeyError:
        return "", "Unknown"


@lru_cache(maxsize=4096)
def _private_name(tag: int, creator: str | None) -> str:
    if creator:
        try:
            return str(private_dictionary_description(tag, creator))
        except KeyError:
            pass
    return "Private tag"


@lru_cache(maxsize=8192)
def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
