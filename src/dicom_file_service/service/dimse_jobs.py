"""Sending to and retrieving from a registered modality, as background jobs (``service.jobs``),
and the echo that tests one: the archive as a DICOM network client.

- ``echo_modality``: a C-ECHO now, its outcome as a value (a remote down is an answer, not an
  error of ours).
- ``start_store`` (kind ``dimse-store``): every stored instance of the studies, series and
  instances the UIDs name, by C-STORE on one association. Every UID must name something when
  the job is made (``ResourceNotFound`` names those that do not: no job is made); when it runs,
  the instances are looked up again (what was deleted meanwhile is not sent). The result
  counts the instances sent, with warnings, and failed, naming the failed ones; any failure
  fails the job.
- ``start_retrieve`` (kind ``dimse-retrieve``): a C-MOVE asking the modality to send what the
  UIDs name to this archive (Move Destination: ``DICOM_FS_AE_TITLE``), in the Patient Root for
  PATIENT, else the Study Root; the result is the final response's counts. A status other
  than success fails the job.

The modality is looked up when the job is made and kept in its parameters: the job goes
where it was asked to, whatever the registry says later.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydicom.dataset import Dataset

from dicom_file_service.dicom.query_retrieve import RetrieveKeys
from dicom_file_service.errors import MalformedBody, RemoteFailure, ResourceNotFound
from dicom_file_service.service import dimse_scu
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.jobs import Job, Outcome, Progress, create_job, register_kind
from dicom_file_service.service.modalities import Modality, get_modality
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.retrieve import instances_for

STORE = "dimse-store"
RETRIEVE = "dimse-retrieve"
LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MAX_VALUES = 1000
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
# PS3.5 LO without backslash or control characters: a Patient ID.
_PATIENT_ID = re.compile(r"[ -\[\]-~]{1,64}")


def echo_modality(ctx: ServiceContext, name: str) -> dict[str, Any]:
    """``{"status", "success"}`` of a C-ECHO to the modality, and ``detail`` when it failed
    (``ModalityNotFound`` for a name not registered)."""
    modality = get_modality(ctx, name)
    try:
        return {"status": dimse_scu.echo(ctx, modality), "success": True}
    except RemoteFailure as exc:
        return {"status": None, "success": False, "detail": exc.detail}


def start_store(ctx: ServiceContext, name: str, body: Mapping[str, Any]) -> Job:
    modality = get_modality(ctx, name)
    _only(body, {"resources"})
    resources = _values(body, "resources", _UID, "UIDs of studies, series or instances")
    records, missing = _instances(ctx, resources)
    if missing:
        raise ResourceNotFound(
            "no stored study, series or instance has the UID(s) " + ", ".join(missing)
        )
    params = {"modality": modality.as_json(), "resources": resources}
    return create_job(ctx, STORE, params, total=len(records))


def start_retrieve(ctx: ServiceContext, name: str, body: Mapping[str, Any]) -> Job:
    modality = get_modality(ctx, name)
    _only(body, {"level", "uids", "study", "series"})
    level = body.get("level")
    if level not in LEVELS:
        raise MalformedBody(f"level: must be one of {', '.join(LEVELS)}, not {level!r}")
    what = "Patient IDs" if level == "PATIENT" else f"{level} UIDs"
    uids = _values(body, "uids", _PATIENT_ID if level == "PATIENT" else _UID, what)
    params: dict[str, Any] = {"modality": modality.as_json(), "level": level, "uids": uids}
    for key, levels in (("study", ("SERIES", "IMAGE")), ("series", ("IMAGE",))):
        if body.get(key) is None:
            continue
        if level not in levels:
            raise MalformedBody(f"{key}: only for the level(s) {', '.join(levels)}")
        value = body[key]
        if not isinstance(value, str) or len(value) > 64 or not _UID.fullmatch(value):
            raise MalformedBody(f"{key}: must be a UID (digits and dots, at most 64)")
        params[key] = value
    return create_job(ctx, RETRIEVE, params)


def _only(body: Mapping[str, Any], fields: set[str]) -> None:
    unknown = sorted(str(k) for k in body if k not in fields)
    if unknown:
        raise MalformedBody(
            f"unknown field(s) {', '.join(unknown)}; expected {', '.join(sorted(fields))}"
        )


def _values(body: Mapping[str, Any], key: str, pattern: re.Pattern[str], what: str) -> list[str]:
    value = body.get(key)
    if value is None:
        raise MalformedBody(f"{key}: missing (a list of {what})")
    if not isinstance(value, list) or not value:
        raise MalformedBody(f"{key}: must be a non-empty list of {what}")
    if len(value) > MAX_VALUES:
        raise MalformedBody(f"{key}: at most {MAX_VALUES} values")
    for item in value:
        if not isinstance(item, str) or len(item) > 64 or not pattern.fullmatch(item):
            raise MalformedBody(f"{key}: {str(item)[:80]!r} is not one of the {what}")
    return list(dict.fromkeys(value))


def _instances(ctx: ServiceContext, uids: list[str]) -> tuple[list[InstanceRecord], list[str]]:
    """The stored instances each UID names (as a study's, a series' or an instance's), in
    order without repeats; and the UIDs naming nothing."""
    found: dict[str, InstanceRecord] = {}
    missing = []
    for uid in uids:
        records: list[InstanceRecord] = []
        for level in ("STUDY", "SERIES", "IMAGE"):
            records = instances_for(ctx, RetrieveKeys(level, (uid,)))
            if records:
                break
        if not records:
            missing.append(uid)
        for record in records:
            found.setdefault(record.sop_instance_uid, record)
    return list(found.values()), missing


def _modality(params: dict[str, Any]) -> Modality:
    m = params["modality"]
    return Modality(m["name"], m["ae_title"], m["host"], int(m["port"]), tuple(m["allow"]))


def _run_store(ctx: ServiceContext, params: dict[str, Any], progress: Progress) -> Outcome:
    modality = _modality(params)
    records, _gone = _instances(ctx, params["resources"])
    if not records:
        return Outcome(None, "nothing to send: the resources were deleted meanwhile")
    progress(0, len(records))
    report = dimse_scu.store(ctx, modality, records, progress)
    result = report.as_json()
    if report.failed:
        why = f": {report.details[0]}" if report.details else ""
        return Outcome(
            result,
            f"{report.failed} of {len(records)} instances were not sent to "
            f"{modality.ae_title}{why}",
        )
    return Outcome(result)


def _identifiers(params: dict[str, Any]) -> list[Dataset]:
    level = params["level"]
    values = params["uids"]
    # A Patient ID is no UID: no list matching, so one C-MOVE each.
    groups = [[v] for v in values] if level == "PATIENT" else [values]
    out = []
    for group in groups:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        key = {
            "PATIENT": "PatientID",
            "STUDY": "StudyInstanceUID",
            "SERIES": "SeriesInstanceUID",
            "IMAGE": "SOPInstanceUID",
        }[level]
        setattr(ds, key, group if len(group) > 1 else group[0])
        if params.get("study"):
            ds.StudyInstanceUID = params["study"]
        if params.get("series"):
            ds.SeriesInstanceUID = params["series"]
        out.append(ds)
    return out


def _run_retrieve(ctx: ServiceContext, params: dict[str, Any], progress: Progress) -> Outcome:
    modality = _modality(params)
    report = dimse_scu.move(ctx, modality, _identifiers(params), progress)
    result = report.as_json()
    if report.status != "0x0000" or report.failed:
        return Outcome(
            result,
            f"{modality.ae_title} ended the C-MOVE with status {report.status}: "
            f"{report.completed} completed, {report.failed} failed, {report.warning} warning",
        )
    return Outcome(result)


register_kind(STORE, _run_store)
register_kind(RETRIEVE, _run_retrieve)
