"""De-identified copies of stored studies, series and instances, as background jobs
(``service.jobs``, kind ``deidentify``), stored in the archive beside their source.

``start_deidentify`` checks the request and makes the job: ``options`` (PS3.15's names),
``replace`` (``PatientName``, ``PatientID``) and ``pixel_regions`` (exactly with
``clean_pixel_data``), all optional. An unknown field or option is a ``MalformedBody``;
``retain_uids`` is an ``OptionRefused``: a copy keeping its source's UIDs would be the same
instances as the source in this archive (the command line offers it, to write files
elsewhere). A UID path naming nothing stored is a ``ResourceNotFound``, and no job is made.

The job looks the instances up again when it runs, de-identifies each stored file under the
archive's key (``service.deidentify``) and ingests the copy as any upload is ingested. The
copy is deterministic to the byte, so a second identical request stores nothing new: each
copy is found already stored, which is a success. Its result names the new study's UID (the
source study's pseudonym), counts what was stored, and lists each instance left out
(``excluded``: the source's SOP Instance UID and why) and each copy the archive refused.
Copies are made a few at a time, their memory bounded (``_InFlight``).
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from dicom_file_service.dicom.deid.engine import OFFERED, Request
from dicom_file_service.dicom.deid.profile import OPTIONS
from dicom_file_service.dicom.deid.pseudonyms import Pseudonyms
from dicom_file_service.dicom.query_retrieve import RetrieveKeys
from dicom_file_service.errors import (
    MalformedBody,
    OptionRefused,
    ResourceNotFound,
    ServiceError,
)
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.deidentify import deid_key, deidentify_to
from dicom_file_service.service.ingest import ingest_path
from dicom_file_service.service.jobs import Job, Outcome, Progress, create_job, register_kind
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.retrieve import instance_file, instances_for

KIND = "deidentify"
# What became of each instance's copy: the result's keys.
STORED, PRESENT, EXCLUDED, REFUSED = "stored", "already_stored", "excluded", "refused"
FIELDS = ("options", "replace", "pixel_regions")
MAX_REGIONS = 64
COPIES_AT_ONCE = 4
IN_FLIGHT_BYTES = 256 * 1024 * 1024
REPLACEABLE = ("PatientName", "PatientID")
# PS3.5: LO (Patient ID) and PN (Patient's Name) hold no backslash or control character; a
# name's caret-separated components are kept as given.
_VALUE = re.compile(r"[^\\\x00-\x1f\x7f]{1,64}")


def start_deidentify(
    ctx: ServiceContext,
    study: str,
    series: str | None,
    instance: str | None,
    body: Mapping[str, Any],
) -> Job:
    """A job de-identifying what the path names (see the module's docstring)."""
    options, replace, regions = _request(body)
    keys = _keys(study, series, instance)
    records = instances_for(ctx, keys)
    if not records:
        raise ResourceNotFound(f"nothing stored has the {_path(study, series, instance)}")
    params = {
        "study": study,
        "series": series,
        "instance": instance,
        "options": sorted(options),
        "replace": replace,
        "pixel_regions": regions,
    }
    return create_job(ctx, KIND, params, total=len(records))


def _request(body: Mapping[str, Any]) -> tuple[set[str], dict[str, str], list[list[int]]]:
    unknown = sorted(str(k) for k in body if k not in FIELDS)
    if unknown:
        raise MalformedBody(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(FIELDS)}")
    options = body.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise MalformedBody("options: must be a list of option names")
    wrong = sorted(o for o in options if o not in OPTIONS)
    if wrong:
        raise MalformedBody(
            f"options: {', '.join(map(repr, wrong))} is not a PS3.15 option "
            f"(offered: {', '.join(sorted(OFFERED - {'retain_uids'}))})"
        )
    if "retain_uids" in options:
        raise OptionRefused(
            "retain_uids: a copy keeping its source's UIDs would be the very instances it "
            "copies in this archive; the command line (dicom-file-service deidentify) offers "
            "it for copies written elsewhere"
        )
    replace = body.get("replace", {})
    if not isinstance(replace, dict):
        raise MalformedBody("replace: must be an object with PatientName and/or PatientID")
    for key, value in replace.items():
        if key not in REPLACEABLE:
            raise MalformedBody(f"replace: {key!r} cannot be given; only PatientName, PatientID")
        if not isinstance(value, str) or not _VALUE.fullmatch(value):
            raise MalformedBody(
                f"replace: {key} must be text of 1 to 64 characters without backslash or "
                "control characters"
            )
    regions = _regions(body.get("pixel_regions"), "clean_pixel_data" in options)
    return set(options), dict(replace), regions


def _regions(value: Any, cleaning: bool) -> list[list[int]]:
    """``pixel_regions``: rectangles ``[x0, y0, x1, y1]`` (x1, y1 excluded), given exactly
    when ``clean_pixel_data`` is asked."""
    if value is None:
        if cleaning:
            raise MalformedBody(
                "pixel_regions: clean_pixel_data needs the regions to blank, "
                "[[x0, y0, x1, y1], ...] in pixels"
            )
        return []
    if not cleaning:
        raise MalformedBody("pixel_regions: only with the option clean_pixel_data")
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_REGIONS:
        raise MalformedBody(f"pixel_regions: a list of 1 to {MAX_REGIONS} [x0, y0, x1, y1]")
    for region in value:
        if (
            not isinstance(region, list)
            or len(region) != 4
            or not all(type(n) is int and 0 <= n <= 65535 for n in region)
            or not (region[0] < region[2] and region[1] < region[3])
        ):
            raise MalformedBody(
                f"pixel_regions: {str(region)[:80]} is not [x0, y0, x1, y1], whole pixels "
                "from 0 to 65535 with x0 < x1 and y0 < y1"
            )
    return [list(r) for r in value]


def _keys(study: str, series: str | None, instance: str | None) -> RetrieveKeys:
    if instance is not None:
        return RetrieveKeys("IMAGE", (instance,), study, series)
    if series is not None:
        return RetrieveKeys("SERIES", (series,), study)
    return RetrieveKeys("STUDY", (study,))


def _path(study: str, series: str | None, instance: str | None) -> str:
    named = f"study {study}"
    if series is not None:
        named += f", series {series}"
    if instance is not None:
        named += f", instance {instance}"
    return named


def _run(ctx: ServiceContext, params: dict[str, Any], progress: Progress) -> Outcome:
    study, series, instance = params["study"], params.get("series"), params.get("instance")
    records = instances_for(ctx, _keys(study, series, instance))
    if not records:
        return Outcome(None, f"nothing to copy: the {_path(study, series, instance)} was deleted")
    regions = tuple((r[0], r[1], r[2], r[3]) for r in params.get("pixel_regions") or ())
    request = Request(frozenset(params["options"]), params.get("replace") or {}, regions)
    pseudonyms = Pseudonyms(deid_key(ctx.settings), variant=request.variant)
    counts = {STORED: 0, PRESENT: 0}
    left: dict[str, list[dict[str, str]]] = {EXCLUDED: [], REFUSED: []}
    progress(0, len(records))
    # A few copies at once: the de-identification and the parse run in the parser processes
    # (every core), and the stores' fsyncs overlap and share group commits.
    with ThreadPoolExecutor(COPIES_AT_ONCE, thread_name_prefix="deidentify") as pool:
        in_flight = _InFlight()
        outcomes = pool.map(lambda r: _copy(ctx, r, request, pseudonyms, in_flight), records)
        for done, (record, (outcome, reason)) in enumerate(zip(records, outcomes, strict=True), 1):
            if outcome in counts:
                counts[outcome] += 1
            else:
                entry = {"sop_instance_uid": record.sop_instance_uid, "reason": reason}
                left[outcome].append(entry)
            progress(done, len(records))
    refused = left[REFUSED]
    result = {"study": pseudonyms.uid(study), **counts, **left}
    if refused:
        return Outcome(result, f"{len(refused)} copies were refused: {refused[0]['reason']}")
    return Outcome(result)


def _copy(
    ctx: ServiceContext,
    record: InstanceRecord,
    request: Request,
    pseudonyms: Pseudonyms,
    in_flight: _InFlight,
) -> tuple[str, str]:
    """What became of ``record``'s copy (STORED, PRESENT, EXCLUDED, REFUSED), and why. A
    failure of ours (the stored file unreadable, a parse past its time, a store refusing the
    copy) is this instance's, named in the result; the others go on."""
    with in_flight.room(record.size):
        try:
            with (
                instance_file(ctx, record, [record.transfer_syntax_uid]) as path,
                _scratch_file(ctx) as out,
            ):
                copy = ctx.parsers.run(deidentify_to, path, out, request, pseudonyms)
                if copy.excluded is not None:
                    return EXCLUDED, copy.excluded
                result = ingest_path(ctx, out, one_of_many=True)
        except ServiceError as exc:
            return REFUSED, exc.detail
    return (STORED if result.created else PRESENT), ""


@contextlib.contextmanager
def _scratch_file(ctx: ServiceContext) -> Iterator[Path]:
    fd, path = ctx.scratch.new_file()
    os.close(fd)
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class _InFlight:
    """Copies run at once only while the sizes of their sources add up to at most
    ``IN_FLIGHT_BYTES``: a large file (read whole by the de-identification) is copied alone,
    so memory is bounded by the largest file, not by four of them."""

    def __init__(self, limit: int = IN_FLIGHT_BYTES) -> None:
        self._limit = limit
        self._bytes = 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def room(self, size: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self._bytes == 0 or self._bytes + size <= self._limit)
            self._bytes += size
        try:
            yield
        finally:
            with self._changed:
                self._bytes -= size
                self._changed.notify_all()


register_kind(KIND, _run)
