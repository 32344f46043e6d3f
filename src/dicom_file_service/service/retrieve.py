"""What a C-MOVE or C-GET sends: the instances its identifier names, each as a Part 10 file in
a transfer syntax the receiver accepted.

The instances are the rows WADO-RS would retrieve (``service.instances``). Each is sent as
stored, byte for byte, when the receiver accepted its stored transfer syntax; otherwise it is
transcoded, as WADO-RS transcodes, to the first accepted syntax it can be written in
(Explicit, then Implicit VR Little Endian first). One file at a time is written to the scratch
area and removed once sent, so a retrieve of any size holds one instance on disk.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from dicom_file_service.dicom.part10 import file_meta
from dicom_file_service.dicom.query_retrieve import RetrieveKeys
from dicom_file_service.errors import FileNotFound, NotAcceptable, ServiceError
from dicom_file_service.service import qido
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.instances import (
    find_instances,
    instance_by_uid,
    stored_bytes,
    transcoded,
)
from dicom_file_service.service.locations import NoUrls
from dicom_file_service.service.records import InstanceRecord

PREFERRED = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


def instances_for(ctx: ServiceContext, keys: RetrieveKeys) -> list[InstanceRecord]:
    """The stored instances ``keys`` name, in the index's order; none found is an empty list
    (a retrieve of nothing completes with no sub-operations)."""
    found: dict[str, InstanceRecord] = {}
    for value in keys.values:
        for record in _named(ctx, keys, value):
            found.setdefault(record.sop_instance_uid, record)
    return list(found.values())


def _named(ctx: ServiceContext, keys: RetrieveKeys, value: str) -> list[InstanceRecord]:
    try:
        if keys.level == "IMAGE":
            return [instance_by_uid(ctx, value, keys.study, keys.series)]
        if keys.level == "SERIES":
            studies = [keys.study] if keys.study else _studies_of(ctx, "series", value)
            return [r for s in studies for r in _or_none(ctx, s, value)]
        if keys.level == "STUDY":
            return find_instances(ctx, value)
        return [r for s in _studies_of(ctx, "patient", value) for r in _or_none(ctx, s)]
    except FileNotFound:
        return []


def _or_none(ctx: ServiceContext, study: str, series: str | None = None) -> list[InstanceRecord]:
    try:
        return find_instances(ctx, study, series)
    except FileNotFound:
        return []


def _studies_of(ctx: ServiceContext, kind: str, value: str) -> list[str]:
    """The studies of a patient (by Patient ID, matched as a C-FIND would) or of a series."""
    key = "PatientID" if kind == "patient" else "SeriesInstanceUID"
    level = "study" if kind == "patient" else "series"
    studies: list[str] = []
    for page in qido.search_all(ctx, [(key, value)], level, NoUrls()):  # type: ignore[arg-type]
        studies += [m["0020000D"]["Value"][0] for m in page if "Value" in m.get("0020000D", {})]
    return list(dict.fromkeys(studies))


@contextlib.contextmanager
def instance_file(
    ctx: ServiceContext, record: InstanceRecord, accepted: Sequence[str]
) -> Iterator[Path]:
    """A Part 10 file of ``record`` in one of the ``accepted`` transfer syntaxes (its stored
    one when accepted), removed on leaving; ``NotAcceptable`` when it can be written in none."""
    fd, path = ctx.scratch.new_file()
    try:
        with os.fdopen(fd, "wb") as out:
            _write(ctx, record, accepted, out)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _write(
    ctx: ServiceContext, record: InstanceRecord, accepted: Sequence[str], out: BinaryIO
) -> None:
    write = out.write
    if record.transfer_syntax_uid in accepted:
        chunks = stored_bytes(ctx, record)
        first = next(chunks, b"")
        if first[128:132] != b"DICM":  # kept without a file meta: give it one, bytes unchanged
            write(
                file_meta(
                    record.sop_class_uid,
                    record.sop_instance_uid,
                    record.transfer_syntax_uid,
                    ctx.settings.ae_title,
                )
            )
        write(first)
        for chunk in chunks:
            write(chunk)
        return
    why: list[str] = []
    ordered = [s for s in PREFERRED if s in accepted] + [s for s in accepted if s not in PREFERRED]
    for syntax in ordered:
        try:
            write(transcoded(ctx, record, syntax))
            return
        except NotAcceptable as exc:
            why.append(exc.detail)
        except ServiceError as exc:
            why.append(exc.detail)
            break
    raise NotAcceptable(
        f"instance {record.sop_instance_uid} (stored as {record.transfer_syntax_uid}) cannot "
        f"be sent in any accepted transfer syntax ({', '.join(accepted) or 'none'}): "
        + "; ".join(why)
    )
