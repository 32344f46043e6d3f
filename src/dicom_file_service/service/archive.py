"""A study or series as one ZIP of its stored files, streamed: what WADO-RS answers to
``Accept: application/zip`` and the built-in page's "Download study".

Every member is the Part 10 file byte for byte as stored, in a folder per series, under names
a person recognises (``<patient>_<study date>_<study description>/<series number>_<modality>_
<series description>/<instance number>_<SOP Instance UID>.dcm``), made safe for every
operating system's file system: no path separators nor ``..``, no control or invisible
characters, none of Windows' reserved names or characters, bounded length, unique in their
folder (case-insensitively, for the file systems that fold case).

The archive is written by the standard library's ``zipfile`` onto a sink that is not seekable,
so each member's CRC and sizes follow its data in a data descriptor, and ZIP64 records are
written where a member or an offset passes 4 GiB: no temporary copy of the study, one chunk of
one file in memory at a time (and, until the central directory at the end, one small entry per
member). Members are STORED, not deflated: most DICOM pixel data is already compressed (and
deflating what is not would make every download CPU-bound on the server for a modest gain);
CRC-32 is the only work per byte. The names come from the headers stored at ingest, read one
series at a time; no blob is read before its own member is written.
"""

from __future__ import annotations

import re
import time
import unicodedata
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from dicom_file_service.errors import FileNotFound
from dicom_file_service.index import repository as repo
from dicom_file_service.service import instances
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.records import InstanceRecord

#: Bounds of one folder's or file's name: far below every file system's 255 bytes, and short
#: enough that study, series and file together stay under Windows' 260 characters of a path.
MAX_CHARS = 64
MAX_BYTES = 128
_FORBIDDEN = re.compile(r'[<>:"/\\|?*]')  # Windows' reserved characters, both separators
_DOTS = re.compile(r"\.{2,}")
_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{n}" for d in ("COM", "LPT") for n in range(10)}


@dataclass(frozen=True)
class Member:
    """One file of the archive: its path inside it and the instance it holds."""

    name: str
    record: InstanceRecord


@dataclass(frozen=True)
class Archive:
    """A study's or series' archive, ready to stream: its download name, its members in
    order, and the bytes of the ZIP as an iterator of chunks (blocking store reads)."""

    filename: str
    members: list[Member]
    chunks: Iterator[bytes]


def study_archive(ctx: ServiceContext, study: str, series: str | None = None) -> Archive:
    """The study's (or one series') archive. Its rows are found (none is a 404) and the first
    file's bytes opened before this returns, so a blob already gone is a 404, not an empty
    archive; the rest is read as the archive is sent."""
    records = instances.find_instances(ctx, study, series)
    members, study_folder, series_folders = _members(ctx, study, records)
    first = instances.stored_bytes(ctx, members[0].record)
    stem = study_folder if series is None else f"{study_folder}_{series_folders[series]}"
    filename = safe_name(stem, "study", max_chars=2 * MAX_CHARS, max_bytes=2 * MAX_BYTES - 8)
    filename += ".zip"
    return Archive(filename, members, zip_stream(ctx, members, first))


def zip_stream(
    ctx: ServiceContext, members: list[Member], first: Iterator[bytes]
) -> Iterator[bytes]:
    """The ZIP, chunk by chunk as the stored bytes are read (``first``: the first member's,
    already opened). An instance deleted before its turn is left out: the archive is the
    study as it is when that member comes. One whose bytes vanish while being read ends the
    archive short, without its central directory, which every unzipper refuses: an archive
    is never silently missing part of a file."""
    sink = _Sink()
    archive = zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True)
    for i, member in enumerate(members):
        try:
            source = first if i == 0 else instances.stored_bytes(ctx, member.record)
        except FileNotFound:
            continue
        out = archive.open(_entry(member), "w")
        try:
            for chunk in source:
                out.write(chunk)
                yield from sink.take()
        except FileNotFound:
            return  # neither the member nor the archive is closed: no central directory
        out.close()  # its data descriptor
        yield from sink.take()
    archive.close()  # the central directory (ZIP64 end records where needed)
    yield from sink.take()


class _Sink:
    """Where ``zipfile`` writes: it keeps what was written until it is taken. It has no
    ``tell`` nor ``seek``, so ``zipfile`` streams (data descriptors, nothing rewritten)."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._pending.append(data)
        return len(data)

    def flush(self) -> None:
        """Nothing is buffered here; ``zipfile`` calls it."""

    def close(self) -> None:
        """Nothing to close: what was written is taken."""

    def take(self) -> Iterator[bytes]:
        pending, self._pending = self._pending, []
        return (piece for piece in pending if piece)


def _entry(member: Member) -> zipfile.ZipInfo:
    """The member's entry: its size known ahead (``zipfile`` writes ZIP64 fields for a file
    over 4 GiB from it), stored at the time it was stored, readable by everyone."""
    year, *rest = time.gmtime(member.record.created_at)[:6]
    stamp = (year, *rest) if year >= 1980 else (1980, 1, 1, 0, 0, 0)  # ZIP's epoch
    info = zipfile.ZipInfo(member.name, date_time=stamp)  # type: ignore[arg-type]
    info.compress_type = zipfile.ZIP_STORED
    info.file_size = member.record.size
    info.external_attr = 0o644 << 16
    return info


def _members(
    ctx: ServiceContext, study: str, records: list[InstanceRecord]
) -> tuple[list[Member], str, dict[str, str]]:
    """The members in order (series by Series Number, instances by Instance Number, then as
    stored), the study's folder and each series' folder, named from the stored headers."""
    by_series: dict[str, list[InstanceRecord]] = {}
    for record in records:
        by_series.setdefault(record.series_instance_uid, []).append(record)
    described: dict[str, dict[str, Any]] = {}
    with ctx.index.read() as conn:
        for series_uid in by_series:  # one series' headers in memory at a time
            for header, _, _, sop in repo.headers_of(conn, study, series_uid):
                described[sop] = _about(orjson.loads(header))
    first = described.get(records[0].sop_instance_uid, {})
    study_folder = safe_name(
        _joined(
            first.get("patient") or first.get("patient_id"), first.get("date"), first.get("study")
        ),
        study,
    )

    def number(value: int | None, then: int) -> tuple[bool, int, int]:
        return (value is None, value or 0, then)

    def series_key(uid: str) -> tuple[bool, int, int]:
        about = described.get(by_series[uid][0].sop_instance_uid, {})
        return number(about.get("series_number"), by_series[uid][0].seq)

    members: list[Member] = []
    folders: dict[str, str] = {}
    taken: set[str] = set()
    for series_uid in sorted(by_series, key=series_key):
        about = described.get(by_series[series_uid][0].sop_instance_uid, {})
        folder = unique(
            safe_name(
                _joined(about.get("series_number"), about.get("modality"), about.get("series")),
                series_uid,
            ),
            taken,
        )
        folders[series_uid] = folder
        files: set[str] = set()
        ordered = sorted(
            by_series[series_uid],
            key=lambda r: number(described.get(r.sop_instance_uid, {}).get("instance"), r.seq),
        )
        for record in ordered:
            instance = described.get(record.sop_instance_uid, {}).get("instance")
            stem = _joined(None if instance is None else f"{instance:04d}", record.sop_instance_uid)
            name = unique(safe_name(stem, "instance", max_chars=MAX_CHARS + 12), files, ".dcm")
            members.append(Member(f"{study_folder}/{folder}/{name}", record))
    return members, study_folder, folders


def _about(header: dict[str, Any]) -> dict[str, Any]:
    """What the names are made of, from an instance's DICOM JSON header."""
    return {
        "patient": _text(header, "00100010"),
        "patient_id": _text(header, "00100020"),
        "date": _text(header, "00080020"),
        "study": _text(header, "00081030"),
        "series_number": _integer(header, "00200011"),
        "modality": _text(header, "00080060"),
        "series": _text(header, "0008103E"),
        "instance": _integer(header, "00200013"),
    }


def _text(header: dict[str, Any], tag: str) -> str:
    values = (header.get(tag) or {}).get("Value") or [None]
    value = values[0]
    if isinstance(value, dict):  # a person name: its alphabetic group, else another
        value = value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic")
    return "" if value is None else str(value)


def _integer(header: dict[str, Any], tag: str) -> int | None:
    text = _text(header, tag).strip()
    try:
        return int(float(text)) if text else None
    except (ValueError, OverflowError):
        return None


def _joined(*parts: object) -> str:
    return "_".join(str(p).strip() for p in parts if p is not None and str(p).strip())


def safe_name(
    text: str, fallback: str, max_chars: int = MAX_CHARS, max_bytes: int = MAX_BYTES
) -> str:
    """``text`` as one folder's or file's name on any file system: NFC; control, format and
    unassigned characters, person names' ``^`` and runs of white space each one space;
    separators and Windows' reserved characters ``_``; runs of dots one dot (no ``..``
    anywhere); at most ``max_chars`` characters and ``max_bytes`` bytes of UTF-8; no leading
    or trailing dot or space; a reserved device name (``CON``, ``NUL.txt``) prefixed with
    ``_``. Empty, it is ``fallback`` made safe the same way."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(c)[0] == "C" or c == "^" else c for c in text)
    text = _DOTS.sub(".", " ".join(_FORBIDDEN.sub("_", text).split())).strip(" .")
    text = text[:max_chars]
    while len(text.encode()) > max_bytes:
        text = text[:-1]
    text = text.strip(" .")
    if not text:
        return safe_name(fallback, "_", max_chars, max_bytes) if fallback != "_" else "_"
    if text.split(".")[0].strip().upper() in _RESERVED:
        text = "_" + text
    return text


def unique(name: str, taken: set[str], suffix: str = "") -> str:
    """``name`` + ``suffix``, or with ``_2``, ``_3``... before the suffix when a name equal to
    it but for case is already ``taken`` (case-insensitive file systems would merge them)."""
    candidate, n = name + suffix, 1
    while candidate.casefold() in taken:
        n += 1
        candidate = f"{name}_{n}{suffix}"
    taken.add(candidate.casefold())
    return candidate
