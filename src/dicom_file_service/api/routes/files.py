"""The file API (README, "Usage"): the original contract (upload, download, tag, PNG) and more.

Routes are thin: parse the request, call one service function, shape the response.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api import logs, urls
from dicom_file_service.api.conditional import not_modified
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.negotiation import DICOM_JSON, OCTET_STREAM, PNG
from dicom_file_service.api.responses import IMMUTABLE, json_response, stream_response
from dicom_file_service.api.stored_file import send_stored_file
from dicom_file_service.api.upload_body import check_declared_length, read_upload_within
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import InvalidParameter
from dicom_file_service.service import files as files_service
from dicom_file_service.service import rendering as rendering_service
from dicom_file_service.service.ingest import ingest_staged
from dicom_file_service.service.records import file_summary

router = APIRouter(tags=["files"])


@router.post(
    "/dicom-image",
    status_code=201,
    summary="Store one DICOM file",
    description=(
        "Body: multipart/form-data with the file in field `file` "
        '(`curl -X POST -F "file=@IM000001" .../dicom-image`), or the raw bytes with '
        "`Content-Type: application/dicom`. 201 for a new instance, 200 when byte-identical "
        "content is already stored (same `file_id`), 409 when the SOP Instance UID is stored "
        "with other content (unless `overwrite=true`)."
    ),
    responses={200: {"description": "already stored"}, 409: {"description": "duplicate"}},
)
async def upload(
    request: Request,
    overwrite: Annotated[bool, Query(description="replace an instance with the same UID")] = False,
) -> Response:
    ctx = service_context(request)
    max_bytes = ctx.settings.max_upload_bytes
    check_declared_length(request.headers.get("content-length"), max_bytes)
    with ctx.new_upload() as staged:
        await read_upload_within(
            ctx.settings.upload_timeout_seconds,
            request.headers.get("content-type"),
            request.stream(),
            staged,
        )
        result = await ctx.run_ingest(lambda: ingest_staged(ctx, staged, overwrite=overwrite))
    body = file_summary(result.record)
    logs.note(file_id=result.record.file_id)
    location = urls.file_location(result.record.file_id)
    return json_response(body, 201 if result.created else 200, location=location)


@router.get("/dicom-image", summary="List stored files, newest first")
async def list_files(
    request: Request,
    limit: Annotated[int, Query(ge=1)] = 100,
    cursor: str | None = None,
    patient_id: str | None = None,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
    modality: str | None = None,
) -> Response:
    ctx = service_context(request)
    filters = {
        k: v
        for k, v in {
            "patient_id": patient_id,
            "study_instance_uid": study_instance_uid,
            "series_instance_uid": series_instance_uid,
            "modality": modality,
        }.items()
        if v is not None
    }
    page = await run_in_threadpool(
        files_service.list_files, ctx, limit=limit, cursor=cursor, filters=filters
    )
    return json_response({"items": page.items, "next_cursor": page.next_cursor})


@router.api_route(
    "/dicom-image/{file_id}",
    methods=["GET", "HEAD"],
    summary="Download the stored file, or one or more header attributes with ?dicom_tag=",
    description=(
        "Without `dicom_tag`: the stored bytes unchanged (`application/dicom`, `ETag`, "
        "`Range`). With `dicom_tag` (repeatable): the attribute as JSON "
        '`{"tag", "keyword", "name", "vr", "vm", "value"}`, a list when repeated. Accepted: '
        "`(0010,0010)`, `0010,0010`, `00100010`, `0x00100010`, `PatientName`, private and "
        "file-meta tags, sequence paths `ReferencedSeriesSequence[0].SeriesInstanceUID`."
    ),
    response_model=None,
)
async def get_file(
    request: Request,
    file_id: str,
    dicom_tag: Annotated[list[str] | None, Query()] = None,
) -> Response:
    ctx = service_context(request)
    if dicom_tag is not None:
        answers = await files_service.get_attributes_async(
            ctx, file_id, dicom_tag, urls.file_bulk_data_base(file_id)
        )
        return json_response(answers[0] if len(answers) == 1 else answers)
    record = await run_in_threadpool(files_service.get_record, ctx, file_id)
    return await send_stored_file(request, ctx, record)


@router.get(
    "/dicom-image/{file_id}/metadata",
    summary="The whole header as DICOM JSON (PS3.18 F.2), bulk data as BulkDataURI",
)
async def get_metadata(request: Request, file_id: str) -> Response:
    ctx = service_context(request)
    body = await files_service.metadata_async(ctx, file_id, urls.file_bulk_data_base(file_id))
    return Response(body, media_type=DICOM_JSON)


@router.get(
    "/dicom-image/{file_id}/bulkdata/{location:path}",
    summary="The value of a bulk data element named by a BulkDataURI of /metadata",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_bulk_data(request: Request, file_id: str, location: str) -> Response:
    ctx = service_context(request)
    value = await ctx.run_cpu(lambda: files_service.bulk_value(ctx, file_id, location))
    return stream_response(
        value.chunks,
        OCTET_STREAM,
        {"cache-control": IMMUTABLE, "content-length": str(value.length)},
    )


@router.api_route(
    "/dicom-image/{file_id}/png",
    methods=["GET", "HEAD"],
    summary="A PNG for browser viewing",
    description=(
        "Modality LUT → VOI (file window with its VOI LUT Function, VOI LUT Sequence, else "
        "min–max) → MONOCHROME1 inversion → 8-bit; colour images as RGB."
    ),
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def get_png(
    request: Request,
    file_id: str,
    frame: Annotated[int, Query(ge=1, description="1-based frame number")] = 1,
    window_center: float | None = None,
    window_width: Annotated[float | None, Query(gt=0)] = None,
    voi: Literal["file", "minmax"] = "file",
    width: Annotated[int | None, Query(ge=1, le=65535)] = None,
    height: Annotated[int | None, Query(ge=1, le=65535)] = None,
    bit_depth: Annotated[int, Query(description="8, or 16 for the modality values")] = 8,
) -> Response:
    ctx = service_context(request)
    if (window_center is None) != (window_width is None):
        raise InvalidParameter("give both window_center and window_width, or neither")
    options = RenderOptions(
        frame=frame,
        window_center=window_center,
        window_width=window_width,
        voi=voi,
        width=width,
        height=height,
        bit_depth=bit_depth,  # type: ignore[arg-type]  # RenderOptions validates: 8 or 16
    )
    etag = rendering_service.rendering_etag(file_id, options)
    headers = {"etag": etag, "cache-control": IMMUTABLE}
    result = await ctx.run_cpu(lambda: rendering_service.render_blocking(ctx, file_id, options))
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(result.data, media_type=PNG, headers=headers)


@router.delete("/dicom-image/{file_id}", status_code=204, summary="Delete a stored file")
async def delete_file(request: Request, file_id: str) -> Response:
    ctx = service_context(request)
    await run_in_threadpool(files_service.delete_file, ctx, file_id)
    return Response(status_code=204)
