"""The archive as a DICOM network client, over REST: echo a registered modality now, start a
job sending instances to it (C-STORE) or asking it to send to us (C-MOVE), and poll a job.

``POST /modalities/{name}/echo`` answers 200 whether or not the remote answered (a remote
down is not our failure: ``success`` says, ``detail`` tells why). ``POST .../store`` and
``POST .../retrieve`` answer 202 with the job's ``Location``; ``GET /jobs/{id}`` is the job.
The bodies are checked by ``service.dimse_jobs``, whose errors name the field.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api import urls
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.json_body import job_accepted, json_object
from dicom_file_service.api.responses import json_response
from dicom_file_service.service import dimse_jobs, dimse_scu, jobs

router = APIRouter(tags=["modalities"])

# The echo's own timeouts bound it; this bounds the wait for a thread to run it as well.
ECHO_WAIT_SECONDS = 4 * dimse_scu.ECHO_TIMEOUT_SECONDS

_UIDS = {"type": "array", "minItems": 1, "items": {"type": "string"}}
_STORE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resources"],
    "properties": {"resources": {**_UIDS, "description": "study, series or instance UIDs"}},
    "example": {"resources": ["1.2.826.0.1.3680043.8.498.1"]},
}
_RETRIEVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["level", "uids"],
    "properties": {
        "level": {"type": "string", "enum": list(dimse_jobs.LEVELS)},
        "uids": {**_UIDS, "description": "the level's UIDs (Patient IDs for PATIENT)"},
        "study": {"type": "string", "description": "SERIES, IMAGE: their study's UID"},
        "series": {"type": "string", "description": "IMAGE: its series' UID"},
    },
    "example": {"level": "STUDY", "uids": ["1.2.826.0.1.3680043.8.498.1"]},
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


@router.post(
    f"{urls.MODALITIES}/{{name}}/echo",
    summary="C-ECHO a registered modality now",
    description='200 `{"status": "0x0000", "success": true}`, or `success: false` with a '
    "`detail` when the remote cannot be reached or refuses.",
)
async def echo(request: Request, name: str) -> Response:
    ctx = service_context(request)
    answer = await asyncio.wait_for(
        run_in_threadpool(dimse_jobs.echo_modality, ctx, name), ECHO_WAIT_SECONDS
    )
    return json_response(answer)


@router.post(
    f"{urls.MODALITIES}/{{name}}/store",
    status_code=202,
    summary="Send stored studies, series or instances to a modality (C-STORE), as a job",
    description="202 with the job's `Location`; a UID naming nothing stored is a 404 and no "
    "job is made.",
    openapi_extra=_body(_STORE_SCHEMA),
)
async def store(request: Request, name: str) -> Response:
    body = await json_object(request)
    job = await run_in_threadpool(dimse_jobs.start_store, service_context(request), name, body)
    return job_accepted(job)


@router.post(
    f"{urls.MODALITIES}/{{name}}/retrieve",
    status_code=202,
    summary="Ask a modality to send studies, series or instances here (C-MOVE), as a job",
    description="202 with the job's `Location`; the Move Destination is this archive's AE "
    "title, which the modality must know.",
    openapi_extra=_body(_RETRIEVE_SCHEMA),
)
async def retrieve(request: Request, name: str) -> Response:
    body = await json_object(request)
    job = await run_in_threadpool(dimse_jobs.start_retrieve, service_context(request), name, body)
    return job_accepted(job)


@router.get(f"{urls.JOBS}/{{job_id}}", summary="A background job: state, progress, result")
async def get_job(request: Request, job_id: str) -> Response:
    job = await run_in_threadpool(jobs.get_job, service_context(request), job_id)
    return json_response(job.as_json())
