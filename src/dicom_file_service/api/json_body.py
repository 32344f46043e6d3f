"""A JSON object request body, read with a bound, and the answer of a request that started a
background job: what the REST routes that take JSON bodies share."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request
from starlette.responses import Response

from dicom_file_service.api import urls
from dicom_file_service.api.responses import json_response
from dicom_file_service.errors import MalformedBody, PayloadTooLarge
from dicom_file_service.service.jobs import Job

MAX_BODY_BYTES = 256 * 1024


async def json_object(
    request: Request, *, limit: int = MAX_BODY_BYTES, empty_is_object: bool = False
) -> dict[str, Any]:
    """The body as a JSON object, read up to ``limit`` bytes; ``empty_is_object``: no body at
    all is ``{}`` (every field optional)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is at most {limit} bytes")
    if empty_is_object and not body.strip():
        return {}
    try:
        value = orjson.loads(bytes(body))
    except orjson.JSONDecodeError as exc:
        raise MalformedBody(f"the body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise MalformedBody(f"the body must be a JSON object, not {type(value).__name__}")
    return value


def job_accepted(job: Job) -> Response:
    """202 with the job's ``Location`` and the job as it is now."""
    location = urls.job_location(job.id)
    return json_response({"job": job.id, **job.as_json()}, 202, location=location)
