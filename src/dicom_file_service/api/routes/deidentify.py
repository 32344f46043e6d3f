"""De-identified copies over REST: ``POST .../deidentify`` under a study, a series or an
instance of ``/dicomweb`` starts a job (202, ``Location: /jobs/{id}``) that stores the copy as
a new study. The body (``options``, ``replace``, ``pixel_regions``; an empty body is the Basic
Profile) is
checked by ``service.deid_jobs``, whose errors name the field."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api.deps import service_context
from dicom_file_service.api.json_body import job_accepted, json_object
from dicom_file_service.dicom.deid.engine import OFFERED
from dicom_file_service.service import deid_jobs

router = APIRouter(prefix="/dicomweb", tags=["de-identification"])

_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "options": {
            "type": "array",
            "items": {"type": "string", "enum": sorted(OFFERED - {"retain_uids"})},
            "description": "PS3.15 options of the Basic Application Level Confidentiality Profile",
        },
        "replace": {
            "type": "object",
            "properties": {"PatientName": {"type": "string"}, "PatientID": {"type": "string"}},
            "description": "values written instead of the keyed pseudonyms",
        },
        "pixel_regions": {
            "type": "array",
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
            "description": "with clean_pixel_data: rectangles [x0, y0, x1, y1] (x1, y1 "
            "excluded) blanked in every frame",
        },
    },
    "example": {
        "options": ["retain_longitudinal_modified_dates"],
        "replace": {"PatientName": "STUDY^SUBJECT01"},
    },
}
_DOC: dict[str, Any] = {
    "status_code": 202,
    "description": "202 with the job's `Location`; `GET /jobs/{id}` gives its progress and, "
    "when done, the new `study`. An unknown option is a 400, `retain_uids` a 422 (the copy "
    "would collide with its source), nothing stored at the path a 404.",
    "openapi_extra": {
        "requestBody": {"required": False, "content": {"application/json": {"schema": _SCHEMA}}}
    },
}


async def _start(
    request: Request, study: str, series: str | None = None, instance: str | None = None
) -> Response:
    body = await json_object(request, empty_is_object=True)
    ctx = service_context(request)
    job = await run_in_threadpool(deid_jobs.start_deidentify, ctx, study, series, instance, body)
    return job_accepted(job)


@router.post("/studies/{study}/deidentify", summary="De-identify a study, as a job", **_DOC)
async def deidentify_study(request: Request, study: str) -> Response:
    return await _start(request, study)


@router.post("/studies/{study}/series/{series}/deidentify", summary="De-identify a series", **_DOC)
async def deidentify_series(request: Request, study: str, series: str) -> Response:
    return await _start(request, study, series)


@router.post(
    "/studies/{study}/series/{series}/instances/{instance}/deidentify",
    summary="De-identify an instance",
    **_DOC,
)
async def deidentify_instance(request: Request, study: str, series: str, instance: str) -> Response:
    return await _start(request, study, series, instance)
