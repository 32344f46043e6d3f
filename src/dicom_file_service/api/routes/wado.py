"""WADO-RS (PS3.18 10.4) under ``/dicomweb``: instances, metadata, frames and bulk data.

Thin: negotiate the media type and transfer syntax, call the service, write the parts.
Instances stream from the store (or are transcoded) as they are sent; metadata comes from the
index alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import quote

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from dicom_file_service.api import negotiation
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.multipart import (
    Part,
    coalesced,
    related_response,
    streamed_related_response,
)
from dicom_file_service.api.negotiation import DICOM, OCTET_STREAM, ZIP
from dicom_file_service.api.responses import IMMUTABLE, dicom_json_response, stream_response
from dicom_file_service.api.urls import DicomwebUrls
from dicom_file_service.dicom.encoders import EXPLICIT_LITTLE, NATIVE, ImageParams, unencodable
from dicom_file_service.dicom.frames import frame_media_type, stored_frames_syntax
from dicom_file_service.errors import InvalidParameter
from dicom_file_service.service import archive, instances
from dicom_file_service.service import files as files_service
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.records import InstanceRecord

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])
_INSTANCE = "/studies/{study}/series/{series}/instances/{sop}"


async def _retrieve(
    request: Request, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    # The accept query parameter (PS3.18 8.3.3.1) is for links, which cannot set the header.
    accept = request.query_params.get("accept") or request.headers.get("accept")
    if sop is None and negotiation.wants_zip(accept):
        return await _zip(request, study, series)
    choices = negotiation.retrieve_syntaxes(accept)
    ctx = service_context(request)
    urls = DicomwebUrls.of(request)
    found = await run_in_threadpool(instances.find_instances, ctx, study, series, sop)
    params: dict[str, ImageParams] = {}
    if "*" not in choices and not NATIVE.issuperset(choices):
        # Whether each instance can take a compressed syntax, from the stored headers:
        # refused before the answer begins, not halfway through a study.
        params = await run_in_threadpool(instances.image_params_of, ctx, study, series, sop)
    plan = [(r, _syntax_of(r, choices, params)) for r in found]
    # The first part is ready before answering: a blob already gone is a 404, an image the
    # encoder refuses a 406, not an empty answer.
    record, syntax = plan[0]
    if syntax == record.transfer_syntax_uid:
        first = await run_in_threadpool(instances.stored_bytes, ctx, record)
    else:
        first = iter([await ctx.run_cpu(lambda: instances.transcoded(ctx, record, syntax))])
    return streamed_related_response(DICOM, _instance_parts(ctx, urls, plan, first))


async def _zip(request: Request, study: str, series: str | None) -> Response:
    """The study or series as one ZIP of its files as stored (``service.archive``), streamed
    from the store as it is written (blocking reads in the thread pool, about a megabyte per
    hop), without a length: it is known only at the end."""
    ctx = service_context(request)
    found = await run_in_threadpool(archive.study_archive, ctx, study, series)
    return StreamingResponse(
        coalesced(found.chunks),
        media_type=ZIP,
        headers={"content-disposition": _attachment(found.filename)},
    )


def _attachment(filename: str) -> str:
    """``Content-Disposition`` of a download named ``filename`` (RFC 6266): an ASCII name for
    every client, and the UTF-8 one (RFC 8187) for those that take it."""
    ascii_name = filename.encode("ascii", "replace").decode().replace("?", "_")
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _syntax_of(record: InstanceRecord, choices: list[str], params: dict[str, ImageParams]) -> str:
    image = params.get(record.sop_instance_uid, ImageParams())
    return negotiation.pick_syntax(
        record.transfer_syntax_uid,
        choices,
        lambda target: unencodable(target, image),
        f"instance {record.sop_instance_uid}",
    )


def _instance_parts(
    ctx: ServiceContext,
    urls: DicomwebUrls,
    plan: list[tuple[InstanceRecord, str]],
    first: Iterator[bytes],
) -> Iterator[Part]:
    """The parts, each read (or transcoded, in this iterator's worker thread) only when the
    one before has been sent."""
    for i, (record, syntax) in enumerate(plan):
        headers = {
            "Content-Type": f"{DICOM}; transfer-syntax={syntax}",
            "Content-Location": urls.retrieve_url(
                record.study_instance_uid, record.series_instance_uid, record.sop_instance_uid
            ),
        }
        if syntax == record.transfer_syntax_uid:
            headers["Content-Length"] = str(record.size)
        chunks = first if i == 0 else instances.instance_bytes(ctx, record, syntax)
        yield Part(headers, chunks)


@router.get(
    "/studies/{study}",
    summary="WADO-RS: a study's instances (multipart/related, or application/zip)",
)
async def retrieve_study(request: Request, study: str) -> Response:
    return await _retrieve(request, study)


@router.get(
    "/studies/{study}/series/{series}",
    summary="WADO-RS: a series' instances (multipart/related, or application/zip)",
)
async def retrieve_series(request: Request, study: str, series: str) -> Response:
    return await _retrieve(request, study, series)


@router.get(_INSTANCE, summary="WADO-RS: one instance")
async def retrieve_instance(request: Request, study: str, series: str, sop: str) -> Response:
    return await _retrieve(request, study, series, sop)


async def _metadata(
    request: Request, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    ctx = service_context(request)
    urls = DicomwebUrls.of(request)
    body = await run_in_threadpool(instances.metadata, ctx, urls, study, series, sop)
    return dicom_json_response(body)


@router.get("/studies/{study}/metadata", summary="WADO-RS: a study's metadata")
async def study_metadata(request: Request, study: str) -> Response:
    return await _metadata(request, study)


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: a series' metadata")
async def series_metadata(request: Request, study: str, series: str) -> Response:
    return await _metadata(request, study, series)


@router.get(_INSTANCE + "/metadata", summary="WADO-RS: an instance's metadata")
async def instance_metadata(request: Request, study: str, series: str, sop: str) -> Response:
    return await _metadata(request, study, series, sop)


def _frame_numbers(text: str) -> list[int]:
    try:
        numbers = [int(part) for part in text.split(",")]
    except ValueError as exc:
        raise InvalidParameter(
            f"frames {text!r}: give 1-based frame numbers separated by commas, e.g. 1,3,5"
        ) from exc
    if not numbers or len(numbers) > 1000:
        raise InvalidParameter("give between 1 and 1,000 frame numbers")
    return numbers


@router.get(
    _INSTANCE + "/frames/{frame_list}",
    summary="WADO-RS: frames, as stored or decoded (multipart/related)",
)
async def retrieve_frames(
    request: Request, study: str, series: str, sop: str, frame_list: str
) -> Response:
    ctx = service_context(request)
    numbers = _frame_numbers(frame_list)
    record = await run_in_threadpool(instances.instance_record, ctx, study, series, sop)
    stored = stored_frames_syntax(record.transfer_syntax_uid)
    choices = negotiation.frame_syntaxes(request.headers.get("accept"), stored)
    params: dict[str, ImageParams] = {}
    if not set(choices) <= {stored, EXPLICIT_LITTLE}:
        params = await run_in_threadpool(instances.image_params_of, ctx, study, series, sop)
    image = replace(params.get(sop, ImageParams()), has_pixels=True)
    syntax = negotiation.pick_syntax(
        stored,
        choices,
        lambda target: None if target == EXPLICIT_LITTLE else unencodable(target, image),
        f"the frames of instance {sop}",
    )
    data = await ctx.run_cpu(lambda: instances.frames(ctx, record, numbers, syntax))
    media_type = frame_media_type(syntax)
    where = request.url.path.rsplit("/", 1)[0]
    parts = [
        Part(
            {
                "Content-Type": f"{media_type}; transfer-syntax={syntax}",
                "Content-Location": f"{where}/{n}",
            },
            [frame],
        )
        for n, frame in zip(numbers, data, strict=True)
    ]
    return related_response(media_type, parts)


@router.get(
    _INSTANCE + "/bulkdata/{location:path}",
    summary="WADO-RS: a bulk data element's value",
    response_class=Response,
    responses={200: {"content": {OCTET_STREAM: {}}}},
)
async def bulk_data(request: Request, study: str, series: str, sop: str, location: str) -> Response:
    multipart = negotiation.bulk_data_multipart(request.headers.get("accept"))
    ctx = service_context(request)
    record = await run_in_threadpool(instances.instance_record, ctx, study, series, sop)
    value = await ctx.run_cpu(lambda: files_service.bulk_value(ctx, record.file_id, location))
    if not multipart:
        return stream_response(
            value.chunks,
            OCTET_STREAM,
            {"cache-control": IMMUTABLE, "content-length": str(value.length)},
        )
    part = Part({"Content-Type": OCTET_STREAM, "Content-Length": str(value.length)}, value.chunks)
    return streamed_related_response(OCTET_STREAM, [part], **{"cache-control": IMMUTABLE})
