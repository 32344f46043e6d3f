"""Direct-to-storage transfer (README, "Usage") and the service's own signed URLs.

``POST /dicom-image/upload-url`` hands out where to PUT a file; ``.../complete`` ingests it like
``POST /dicom-image``; ``GET /dicom-image/{id}/download-url`` hands out a presigned GET. On
S3 those URLs point at the bucket; on the local backend at ``/signed/...`` here, which checks
the signature before anything else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api import urls
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.responses import json_response
from dicom_file_service.api.stored_file import send_stored_file
from dicom_file_service.api.upload_body import check_declared_length, read_upload_within
from dicom_file_service.service import files as files_service
from dicom_file_service.service import transfer
from dicom_file_service.service.records import file_summary
from dicom_file_service.service.signing import signing_key, verify

router = APIRouter(tags=["direct transfer"])


def _own_routes(request: Request) -> transfer.OwnRoutes:
    return transfer.OwnRoutes(
        urls.public_base(request), urls.signed_upload_path, urls.signed_file_path
    )


@router.post(
    "/dicom-image/upload-url",
    summary="Where to PUT a file straight to storage",
    description=(
        "Answers `{upload_id, upload_url, expires_at, headers}`: PUT the raw bytes to "
        "`upload_url` (with `headers`, if any; `Content-Type: application/dicom` always "
        "works), then POST `/dicom-image/uploads/{upload_id}/complete`."
    ),
)
async def create_upload(request: Request) -> Response:
    ctx = service_context(request)
    new = await run_in_threadpool(transfer.create_upload, ctx, _own_routes(request))
    return json_response(
        {
            "upload_id": new.upload_id,
            "upload_url": new.url.url,
            "expires_at": new.url.expires_at,
            "headers": {},
            "complete_url": urls.upload_complete(new.upload_id),
        }
    )


@router.post(
    "/dicom-image/uploads/{upload_id}/complete",
    status_code=201,
    summary="Validate and index a directly uploaded file (the answers of POST /dicom-image)",
)
async def complete_upload(
    request: Request,
    upload_id: str,
    overwrite: Annotated[bool, Query(description="replace an instance with the same UID")] = False,
) -> Response:
    ctx = service_context(request)
    result = await ctx.run_ingest(
        lambda: transfer.complete_upload(ctx, upload_id, overwrite=overwrite)
    )
    location = urls.file_location(result.record.file_id)
    return json_response(
        file_summary(result.record), 201 if result.created else 200, location=location
    )


@router.get(
    "/dicom-image/{file_id}/download-url",
    summary="A presigned URL that GETs the stored bytes",
)
async def download_url(request: Request, file_id: str) -> Response:
    ctx = service_context(request)
    url = await run_in_threadpool(transfer.download_url, ctx, file_id, _own_routes(request))
    return json_response({"url": url.url, "expires_at": url.expires_at})


def _check_signature(request: Request, method: str) -> None:
    ctx = service_context(request)
    verify(
        signing_key(ctx.settings),
        method,
        request.url.path,
        request.query_params.get("expires"),
        request.query_params.get("signature"),
    )


@router.api_route(
    urls.SIGNED_UPLOADS + "/{upload_id}",
    methods=["PUT", "GET"],
    summary="The local backend's signed PUT of a direct upload",
    include_in_schema=False,
)
async def signed_upload(request: Request, upload_id: str) -> Response:
    _check_signature(request, "PUT" if request.method == "PUT" else "GET")
    ctx = service_context(request)
    check_declared_length(request.headers.get("content-length"), ctx.settings.max_upload_bytes)
    content_type = request.headers.get("content-type") or "application/octet-stream"
    with ctx.new_upload() as staged:
        await read_upload_within(
            ctx.settings.upload_timeout_seconds, content_type, request.stream(), staged
        )
        await run_in_threadpool(transfer.receive_upload, ctx, upload_id, staged)
    return Response(status_code=200)


@router.api_route(
    urls.SIGNED_FILES + "/{file_id}",
    methods=["GET", "HEAD", "PUT"],
    summary="The local backend's signed GET of a stored file",
    include_in_schema=False,
)
async def signed_download(request: Request, file_id: str) -> Response:
    _check_signature(request, "GET" if request.method in ("GET", "HEAD") else request.method)
    ctx = service_context(request)
    record = await run_in_threadpool(files_service.get_record, ctx, file_id)
    return await send_stored_file(request, ctx, record)
