"""Conditional and partial requests (RFC 9110 13 and 14), judged in one place for every door:
``If-None-Match`` against an entity tag, and a ``Range`` (with ``If-Range``) against a size.

Stored files never change (an overwrite gets a new file id), so every entity tag here is
strong and a match means the client's copy is the one we would send.
"""

from __future__ import annotations

from dicom_file_service.errors import RangeNotSatisfiable


def _opaque(tag: str) -> str:
    """An entity tag without its weakness indicator (RFC 9110 8.8.3.2, weak comparison)."""
    tag = tag.strip()
    return tag[2:] if tag.startswith("W/") else tag


def not_modified(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (or is ``*``): then the answer is a 304.

    RFC 9110 13.1.2: a list of entity tags compared weakly."""
    if if_none_match is None:
        return False
    if if_none_match.strip() == "*":
        return True
    wanted = _opaque(etag)
    return any(_opaque(tag) == wanted for tag in if_none_match.split(",") if tag.strip())


def byte_range(
    range_header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int] | None:
    """The one byte range ``[start, end)`` to send, or None for the whole representation.

    RFC 9110 14.2: a Range that does not parse is ignored, and so is one whose If-Range names
    another representation; several ranges get the whole file (allowed, and simpler for
    clients than multipart/byteranges); a range wholly outside the file is a 416.
    """
    if range_header is None or (if_range is not None and if_range.strip() != etag):
        return None
    unit, _, spec = range_header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first or last) or not all(p.isdigit() for p in (first, last) if p):
        return None
    if not first:  # a suffix: the last N bytes
        if int(last) == 0:
            raise _unsatisfiable(range_header, size)
        return max(size - int(last), 0), size
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise _unsatisfiable(range_header, size)
    return start, min(int(last) + 1, size) if last else size


def _unsatisfiable(range_header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(f"the range {range_header!r} lies outside the file's {size} bytes")
