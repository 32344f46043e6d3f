"""The registry of remote Application Entities the DICOM listener knows, edited over REST.

``PUT /modalities/{name}`` creates or replaces an entry, ``GET`` lists them or reads one,
``DELETE`` removes one. The body is checked by ``service.modalities.parse_modality``, whose
errors name the field; this module only reads the JSON and shapes the answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api import urls
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.json_body import json_object
from dicom_file_service.api.responses import json_response
from dicom_file_service.service import modalities

router = APIRouter(prefix=urls.MODALITIES, tags=["modalities"])

# An entry is a few hundred bytes: a body far larger is not one.
MAX_BODY_BYTES = 64 * 1024

_MODALITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ae_title", "host", "port"],
    "properties": {
        "ae_title": {"type": "string", "minLength": 1, "maxLength": 16},
        "host": {"type": "string", "description": "an IP address or a DNS name"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "allow": {
            "type": "array",
            "items": {"type": "string", "enum": list(modalities.OPERATIONS)},
            "description": "operations it may ask for; default: all of them",
        },
    },
    "example": {
        "ae_title": "CT_SCANNER",
        "host": "10.0.0.12",
        "port": 104,
        "allow": ["echo", "store", "find", "move"],
    },
}


@router.get("", summary="Every registered modality, by name")
async def list_modalities(request: Request) -> Response:
    found = await run_in_threadpool(modalities.list_modalities, service_context(request))
    return json_response([m.as_json() for m in found])


@router.get("/{name}", summary="One registered modality")
async def get_modality(request: Request, name: str) -> Response:
    modality = await run_in_threadpool(modalities.get_modality, service_context(request), name)
    return json_response(modality.as_json())


@router.put(
    "/{name}",
    summary="Register a modality, or replace the one of that name",
    description="201 with `Location` when it is new, 200 when it replaced one.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _MODALITY_SCHEMA}},
        }
    },
)
async def put_modality(request: Request, name: str) -> Response:
    modality = modalities.parse_modality(name, await json_object(request, limit=MAX_BODY_BYTES))
    created = await run_in_threadpool(modalities.put_modality, service_context(request), modality)
    if created:
        return json_response(modality.as_json(), 201, location=urls.modality_location(name))
    return json_response(modality.as_json())


@router.delete("/{name}", status_code=204, summary="Remove a registered modality")
async def delete_modality(request: Request, name: str) -> Response:
    await run_in_threadpool(modalities.delete_modality, service_context(request), name)
    return Response(status_code=204)
