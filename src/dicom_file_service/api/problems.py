"""The one table from domain errors to HTTP statuses, and the handlers that emit problems.

Every error response is an RFC 9457 problem document (``application/problem+json``) with a
stable ``code``. Nothing maps to 500 except a bug, and even then the body is a problem document
that names no internals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from dicom_file_service import errors as e
from dicom_file_service import metrics

log = logging.getLogger(__name__)

PROBLEM_TYPE_BASE = "https://dicom-file-service.dev/problems/"

# Most specific first; a class not listed takes its nearest listed ancestor's status.
STATUS: dict[type[e.ServiceError], int] = {
    e.PayloadTooLarge: 413,
    e.UnsupportedMediaType: 415,
    e.InvalidDicom: 422,
    e.MissingIdentity: 422,
    e.SopClassNotSupported: 422,
    e.NoPixelData: 422,
    e.UndecodablePixelData: 422,
    e.ImageTooLarge: 422,
    e.FrameOutOfRange: 400,
    e.StudyMismatch: 409,
    e.NotAcceptable: 406,
    e.InvalidModality: 400,
    e.OptionRefused: 422,
    e.BadRequest: 400,
    e.FileNotFound: 404,
    e.TagNotFound: 404,
    e.ModalityNotFound: 404,
    e.JobNotFound: 404,
    e.ResourceNotFound: 404,
    e.RemoteFailure: 502,
    e.NotFound: 404,
    e.DuplicateInstance: 409,
    e.Forbidden: 403,
    e.RangeNotSatisfiable: 416,
    e.RequestTimeout: 408,
    e.InsufficientStorage: 507,
    e.Unavailable: 503,
    e.ServiceError: 503,
}


def status_for(exc: e.ServiceError) -> int:
    """The status of the nearest listed class in the error's ancestry (ServiceError is)."""
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


_BACKEND_CODES = {
    "index_unavailable": "index",
    "commit_outcome_unknown": "index",
    "storage_unavailable": "store",
    "insufficient_storage": "disk",
}


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
) -> Response:
    metrics.REJECTIONS.labels(code).inc()
    if code in _BACKEND_CODES:
        metrics.BACKEND_ERRORS.labels(_BACKEND_CODES[code]).inc()
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def service_error_response(exc: e.ServiceError) -> Response:
    status = status_for(exc)
    headers = {"Retry-After": "5"} if status == 503 else None
    return problem_response(status, exc.code, exc.title, exc.detail, headers)


_HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported content type"),
}


def install_problem_handlers(app: FastAPI) -> None:
    async def on_service_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, e.ServiceError)
        return service_error_response(exc)

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path"))
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return problem_response(
            400, "invalid_parameter", "Invalid query parameter", "; ".join(parts) or "invalid"
        )

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code, title = _HTTP_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) else title
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such route; see /docs for the API"
        return problem_response(exc.status_code, code, title, detail, exc.headers)

    async def on_unexpected(_request: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return problem_response(
            500, "internal_error", "Internal error", "an unexpected error occurred; it is logged"
        )

    app.add_exception_handler(e.ServiceError, on_service_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
