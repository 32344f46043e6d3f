"""DICOMweb (PS3.18) under ``/dicomweb``: STOW-RS, and WADO-RS retrieve and metadata.

Thin like the file API's routes: parse the request, call the service, shape the response.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.responses import Response, StreamingResponse

from dicom_file_service.api.bulk_response import send_bulk_value
from dicom_file_service.api.deps import dicomweb_base, service_context
from dicom_file_service.api.fast_paths import IMMUTABLE
from dicom_file_service.api.related_body import read_parts, related_boundary
from dicom_file_service.api.routes.files import send_stored_file
from dicom_file_service.dicom.frames import frame_media_type
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.dicom.stow import (
    stow_response,
    stow_response_xml,
    stow_status,
    warning_headers,
)
from dicom_file_service.dicom.transcode import EXPLICIT_LITTLE
from dicom_file_service.errors import FileNotFound, InvalidParameter, NotAcceptable, ServiceError
from dicom_file_service.service import dicomweb
from dicom_file_service.service import files as files_service
from dicom_file_service.service.staging import StagedUpload
from dicom_file_service.storage import BlobNotFound

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
DICOM = "application/dicom"
OCTET_STREAM = "application/octet-stream"


async def _stow(request: Request, study: str | None) -> Response:
    ctx = service_context(request)
    boundary = related_boundary(request.headers.get("content-type"))
    base = dicomweb_base(request)
    outcomes: dict[int, dicomweb.PartOutcome] = {}

    async def on_part(index: int, part: StagedUpload | None, error: ServiceError | None) -> None:
        if part is None:
            assert error is not None
            outcomes[index] = dicomweb.failed_part(error)
            return
        outcomes[index] = await ctx.run_ingest(
            lambda: dicomweb.store_part(ctx, part, study_instance_uid=study, base_url=base)
        )

    await read_parts(
        boundary,
        request.stream(),
        ctx.scratch,
        ctx.settings.max_upload_bytes,
        on_part,
        concurrency=ctx.settings.ingest_workers,
    )
    in_order = [outcomes[i] for i in sorted(outcomes)]
    stored = [o.stored for o in in_order if o.stored is not None]
    failed = [o.failed for o in in_order if o.failed is not None]
    if not in_order:
        return _dicom_json({}, 400)
    studies = {o.study_instance_uid for o in in_order if o.study_instance_uid}
    study_url = f"{base}/studies/{studies.pop()}" if len(studies) == 1 else None
    warned = sum(1 for s in stored if s.warning_reason is not None)
    status = stow_status(len(stored), len(failed), warned)
    answer = stow_response(study_url, stored, failed)
    if _wants_xml(request):
        response = Response(stow_response_xml(answer), status_code=status, media_type=DICOM_XML)
    else:
        response = _dicom_json(answer, status)
    for warning in warning_headers(stored, failed):
        response.headers.append("warning", warning)
    return response


def _wants_xml(request: Request) -> bool:
    """``application/dicom+xml`` when the client prefers it to DICOM JSON (PS3.18 10.5.3)."""
    accept = request.headers.get("accept", "")
    return DICOM_XML in accept and DICOM_JSON not in accept.split(DICOM_XML)[0]


def _related(media_type: str, parts: list[tuple[str, bytes]]) -> Response:
    """A ``multipart/related`` response of small parts, each ``(its headers, its body)``."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n" for headers, data in parts
    )
    return Response(
        body + f"--{boundary}--\r\n".encode(),
        media_type=f'multipart/related; type="{media_type}"; boundary={boundary}',
    )


def _dicom_json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=DICOM_JSON)


@router.post("/studies", summary="STOW-RS: store instances (multipart/related)")
async def stow(request: Request) -> Response:
    return await _stow(request, None)


@router.post("/studies/{study}", summary="STOW-RS: store instances of one study")
async def stow_study(request: Request, study: str) -> Response:
    return await _stow(request, study)


def _accepted(request: Request) -> list[tuple[str, dict[str, str]]]:
    """The Accept header's media ranges, each with its parameters (lower case, unquoted)."""
    ranges = []
    for item in request.headers.get("accept", "*/*").split(","):
        media, *params = [p.strip().lower().replace('"', "") for p in item.split(";")]
        ranges.append((media, dict(p.split("=", 1) for p in params if "=" in p)))
    return ranges


def _retrieve_syntaxes(request: Request) -> set[str]:
    """The transfer syntaxes the Accept header takes instances in; ``*``: as stored. Without
    ``transfer-syntax`` the standard's default, Explicit VR Little Endian (PS3.18 8.7.3.5.2)."""
    syntaxes = set()
    for media, params in _accepted(request):
        if media in ("*/*", "multipart/*"):
            syntaxes.add("*")
        elif media == "multipart/related" and params.get("type", DICOM) == DICOM:
            syntaxes.add(params.get("transfer-syntax", EXPLICIT_LITTLE))
    if not syntaxes:
        raise NotAcceptable(
            f"cannot answer with {request.headers.get('accept')!r}: instances are sent as "
            f'multipart/related; type="{DICOM}", as stored (transfer-syntax=*) or in '
            f"Explicit VR Little Endian (transfer-syntax={EXPLICIT_LITTLE})"
        )
    return syntaxes


def _as_stored(record: Any, syntaxes: set[str]) -> bool:
    """Whether ``record`` goes as stored (else it is transcoded); 406 if it can go neither way."""
    if "*" in syntaxes or record.transfer_syntax_uid in syntaxes:
        return True
    if EXPLICIT_LITTLE in syntaxes:
        return False
    raise NotAcceptable(
        f"instance {record.sop_instance_uid} is stored in {record.transfer_syntax_uid}, which "
        f"was not asked for: ask for transfer-syntax=* (as stored) or {EXPLICIT_LITTLE}"
    )


async def _retrieve(
    request: Request, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    syntaxes = _retrieve_syntaxes(request)
    ctx = service_context(request)
    base = dicomweb_base(request)
    found = await run_in_threadpool(dicomweb.find_instances, ctx, study, series, sop)
    plan = [(record, _as_stored(record, syntaxes)) for record in found]
    boundary = uuid.uuid4().hex
    first = None
    if plan[0][1]:
        first = await run_in_threadpool(ctx.store.iter_range, found[0].blob_key)  # fails early

    def parts() -> Iterator[bytes]:
        for i, (record, as_stored) in enumerate(plan):
            if as_stored:
                syntax, length = record.transfer_syntax_uid, f"Content-Length: {record.size}\r\n"
                chunks = first if i == 0 and first is not None else None
            else:
                syntax, length, chunks = EXPLICIT_LITTLE, "", None
            try:
                if chunks is None:
                    chunks = (
                        ctx.store.iter_range(record.blob_key)
                        if as_stored
                        else iter([dicomweb.transcoded(ctx, record)])
                    )
                where = dicomweb.instance_url(
                    base,
                    record.study_instance_uid,
                    record.series_instance_uid,
                    record.sop_instance_uid,
                )
                yield (
                    f"--{boundary}\r\nContent-Type: {DICOM}; transfer-syntax={syntax}\r\n"
                    f"Content-Location: {where}\r\n{length}\r\n"
                ).encode()
                yield from chunks
            except (BlobNotFound, FileNotFound):
                return  # deleted while streaming: the response ends short, as it must
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    async def body() -> AsyncIterator[bytes]:
        async for chunk in iterate_in_threadpool(_coalesced(parts())):
            yield chunk

    return StreamingResponse(
        body(), media_type=f'multipart/related; type="{DICOM}"; boundary={boundary}'
    )


def _coalesced(chunks: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """The chunks joined into pieces of about ``size`` bytes: a study of small instances
    costs one thread hop per megabyte, not several per instance."""
    pending: list[bytes] = []
    held = 0
    for chunk in chunks:
        pending.append(chunk)
        held += len(chunk)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


@router.get("/studies/{study}", summary="WADO-RS: a study's instances")
async def retrieve_study(request: Request, study: str) -> Response:
    return await _retrieve(request, study)


@router.get("/studies/{study}/series/{series}", summary="WADO-RS: a series' instances")
async def retrieve_series(request: Request, study: str, series: str) -> Response:
    return await _retrieve(request, study, series)


@router.get("/studies/{study}/series/{series}/instances/{sop}", summary="WADO-RS: one instance")
async def retrieve_instance(request: Request, study: str, series: str, sop: str) -> Response:
    return await _retrieve(request, study, series, sop)


async def _metadata(
    request: Request, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    ctx = service_context(request)
    body = await run_in_threadpool(
        dicomweb.metadata, ctx, dicomweb_base(request), study, series, sop
    )
    return Response(body, media_type=DICOM_JSON)


@router.get("/studies/{study}/metadata", summary="WADO-RS: a study's metadata")
async def study_metadata(request: Request, study: str) -> Response:
    return await _metadata(request, study)


@router.get("/studies/{study}/series/{series}/metadata", summary="WADO-RS: a series' metadata")
async def series_metadata(request: Request, study: str, series: str) -> Response:
    return await _metadata(request, study, series)


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/metadata",
    summary="WADO-RS: an instance's metadata",
)
async def instance_metadata(request: Request, study: str, series: str, sop: str) -> Response:
    return await _metadata(request, study, series, sop)


async def _delete(
    request: Request, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    ctx = service_context(request)
    await run_in_threadpool(dicomweb.delete, ctx, study, series, sop)
    return Response(status_code=204)


@router.delete("/studies/{study}", status_code=204, summary="Delete a study")
async def delete_study(request: Request, study: str) -> Response:
    return await _delete(request, study)


@router.delete("/studies/{study}/series/{series}", status_code=204, summary="Delete a series")
async def delete_series(request: Request, study: str, series: str) -> Response:
    return await _delete(request, study, series)


@router.delete(
    "/studies/{study}/series/{series}/instances/{sop}",
    status_code=204,
    summary="Delete an instance",
)
async def delete_instance(request: Request, study: str, series: str, sop: str) -> Response:
    return await _delete(request, study, series, sop)


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


def _frames_decoded(request: Request, media_type: str) -> bool:
    """Whether the frames go decoded (else as stored). As stored: their own media type
    (``application/octet-stream`` for native pixel data, the bitstream's for compressed), or
    octet-stream with ``transfer-syntax=*`` (as OHIF asks). Decoded: octet-stream in the
    default syntax, Explicit VR Little Endian (PS3.18 8.7.3.3.2)."""
    decodable = False
    for media, params in _accepted(request):
        if media in ("*/*", "multipart/*"):
            return False
        if media != "multipart/related":
            continue
        part_type = params.get("type", "application/octet-stream")
        syntax = params.get("transfer-syntax")
        if (
            part_type == "*/*"
            or (  # any part type, or any of the stored one's kind
                part_type.endswith("/*") and media_type.startswith(part_type[:-1])
            )
        ):
            return False
        if (
            part_type == media_type
            and syntax in (None, "*")
            and media_type != "application/octet-stream"
        ):
            return False
        if part_type == "application/octet-stream":
            if syntax == "*" or media_type == "application/octet-stream":
                return False
            decodable = decodable or syntax in (None, EXPLICIT_LITTLE)
    if decodable:
        return True
    raise NotAcceptable(
        f"cannot answer with {request.headers.get('accept')!r}: these frames are stored as "
        f'{media_type}; ask for multipart/related; type="{media_type}" (as stored) or '
        'type="application/octet-stream" (decoded)'
    )


@router.get(
    "/studies/{study}/series/{series}/instances/{sop}/frames/{frame_list}",
    summary="WADO-RS: frames, as stored or decoded (multipart/related)",
)
async def retrieve_frames(
    request: Request, study: str, series: str, sop: str, frame_list: str
) -> Response:
    ctx = service_context(request)
    numbers = _frame_numbers(frame_list)
    record = await run_in_threadpool(dicomweb.instance_record, ctx, study, series, sop)
    stored_type = frame_media_type(record.transfer_syntax_uid)
    decoded = _frames_decoded(request, stored_type)
    data = await ctx.run_cpu(lambda: dicomweb.frames(ctx, record, numbers, decoded=decoded))
    media_type = "application/octet-stream" if decoded else stored_type
    syntax = (
        f"; transfer-syntax={record.transfer_syntax_uid}"
        if media_type != "application/octet-stream"
        else ""
    )
    where = request.url.path.rsplit("/", 1)[0]
    parts = [
        (f"Content-Type: {media_type}{syntax}\r\nContent-Location: {where}/{n}", frame)
        for n, frame in zip(numbers, data, strict=True)
    ]
    return _related(media_type, parts)


_RENDERED_TYPES = ("image/jpeg", "image/png")


def _rendered_media_type(request: Request) -> str:
    """``accept=`` query parameter, else the Accept header; JPEG by default (PS3.18 8.3.5.1)."""
    wanted = request.query_params.get("accept") or request.headers.get("accept") or "*/*"
    for item in wanted.split(","):
        media = item.split(";")[0].strip().lower()
        if media in _RENDERED_TYPES:
            return media
        if media in ("*/*", "image/*"):
            return "image/jpeg"
    raise NotAcceptable(f"cannot answer with {wanted!r}: renderings are image/jpeg or image/png")


def _render_options(request: Request, frame: int, thumbnail: bool) -> tuple[RenderOptions, int]:
    """PS3.18 8.3.5.1: ``window=center,width[,function]``, ``viewport=w,h``, ``quality``."""
    query = request.query_params
    center = width = None
    if "window" in query:
        parts = query["window"].split(",")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2].lower() != "linear"):
            raise InvalidParameter(
                "window is center,width[,linear] (only the LINEAR function is supported)"
            )
        try:
            center, width = float(parts[0]), float(parts[1])
        except ValueError as exc:
            raise InvalidParameter("window's center and width must be numbers") from exc
    size = (128, 128) if thumbnail else (None, None)
    if "viewport" in query:
        try:
            vw, vh = (int(v) for v in query["viewport"].split(","))
        except ValueError as exc:
            raise InvalidParameter("viewport is width,height in pixels") from exc
        size = (vw, vh)
    try:
        quality = int(query.get("quality", "90"))
    except ValueError as exc:
        raise InvalidParameter("quality is a number from 1 to 100") from exc
    if not 1 <= quality <= 100:
        raise InvalidParameter("quality is a number from 1 to 100")
    options = RenderOptions(
        frame=frame, window_center=center, window_width=width, width=size[0], height=size[1]
    )
    return options, quality


async def _rendered(
    request: Request, study: str, series: str, sop: str, frame: int, *, thumbnail: bool
) -> Response:
    ctx = service_context(request)
    media_type = _rendered_media_type(request)
    options, quality = _render_options(request, frame, thumbnail)
    data = await ctx.run_cpu(
        lambda: dicomweb.rendered(ctx, study, series, sop, options, media_type, quality)
    )
    return Response(data, media_type=media_type, headers={"cache-control": IMMUTABLE})


_INSTANCE = "/studies/{study}/series/{series}/instances/{sop}"


@router.get(_INSTANCE + "/rendered", summary="WADO-RS: the instance rendered (frame 1)")
async def rendered_instance(request: Request, study: str, series: str, sop: str) -> Response:
    return await _rendered(request, study, series, sop, 1, thumbnail=False)


@router.get(_INSTANCE + "/thumbnail", summary="WADO-RS: the instance's thumbnail")
async def thumbnail_instance(request: Request, study: str, series: str, sop: str) -> Response:
    return await _rendered(request, study, series, sop, 1, thumbnail=True)


@router.get(_INSTANCE + "/frames/{frame}/rendered", summary="WADO-RS: one frame rendered")
async def rendered_frame(
    request: Request, study: str, series: str, sop: str, frame: int
) -> Response:
    return await _rendered(request, study, series, sop, frame, thumbnail=False)


@router.get(_INSTANCE + "/frames/{frame}/thumbnail", summary="WADO-RS: one frame's thumbnail")
async def thumbnail_frame(
    request: Request, study: str, series: str, sop: str, frame: int
) -> Response:
    return await _rendered(request, study, series, sop, frame, thumbnail=True)


@router.get(
    _INSTANCE + "/bulkdata/{location:path}",
    summary="WADO-RS: a bulk data element's value",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def bulk_data(request: Request, study: str, series: str, sop: str, location: str) -> Response:
    multipart = _bulk_data_multipart(request)
    ctx = service_context(request)
    record = await run_in_threadpool(dicomweb.instance_record, ctx, study, series, sop)
    stored, found = await ctx.run_cpu(
        lambda: files_service.bulk_value(ctx, record.file_id, location)
    )
    return await send_bulk_value(ctx, stored, found, multipart=multipart)


def _bulk_data_multipart(request: Request) -> bool:
    """Bulk data goes as ``multipart/related; type="application/octet-stream"`` (PS3.18's
    form, and what ``*/*`` gets), or as the bare value when the client asks for
    ``application/octet-stream`` first."""
    for media, params in _accepted(request):
        if media == OCTET_STREAM:
            return False
        if media in ("*/*", "multipart/*") or (
            media == "multipart/related"
            and params.get("type", OCTET_STREAM) in (OCTET_STREAM, "*/*")
        ):
            return True
    raise NotAcceptable(
        f"cannot answer with {request.headers.get('accept')!r}: bulk data is sent as "
        f'multipart/related; type="{OCTET_STREAM}" or as {OCTET_STREAM}'
    )


wado_uri = APIRouter(tags=["DICOMweb"])


@wado_uri.get("/wado", summary="WADO-URI (PS3.18 9): one instance, as DICOM or rendered")
async def wado(
    request: Request,
    requestType: str,  # noqa: N803 - the standard's parameter names
    studyUID: str,  # noqa: N803
    seriesUID: str,  # noqa: N803
    objectUID: str,  # noqa: N803
    contentType: str = "image/jpeg",  # noqa: N803
) -> Response:
    if requestType != "WADO":
        raise InvalidParameter("requestType must be WADO")
    ctx = service_context(request)
    wanted = [t.split(";")[0].strip().lower() for t in contentType.split(",")]
    if "application/dicom" in wanted:
        record = await run_in_threadpool(
            dicomweb.instance_record, ctx, studyUID, seriesUID, objectUID
        )
        return await send_stored_file(request, ctx, record)
    media_type = next((t for t in wanted if t in _RENDERED_TYPES), None)
    if media_type is None:
        raise NotAcceptable(
            f"contentType {contentType!r}: WADO-URI answers application/dicom, image/jpeg "
            "or image/png"
        )
    options, quality = _wado_render_options(request)
    data = await ctx.run_cpu(
        lambda: dicomweb.rendered(ctx, studyUID, seriesUID, objectUID, options, media_type, quality)
    )
    return Response(data, media_type=media_type, headers={"cache-control": IMMUTABLE})


def _wado_render_options(request: Request) -> tuple[RenderOptions, int]:
    """PS3.18 9.1.2: frameNumber, windowCenter + windowWidth, rows, columns, imageQuality."""
    query = request.query_params

    def number(name: str, kind: type[float] | type[int]) -> Any:
        if name not in query:
            return None
        try:
            return kind(query[name])
        except ValueError as exc:
            raise InvalidParameter(f"{name} must be a number") from exc

    center, width = number("windowCenter", float), number("windowWidth", float)
    if (center is None) != (width is None):
        raise InvalidParameter("give both windowCenter and windowWidth, or neither")
    quality = number("imageQuality", int) or 90
    if not 1 <= quality <= 100:
        raise InvalidParameter("imageQuality is a number from 1 to 100")
    options = RenderOptions(
        frame=number("frameNumber", int) or 1,
        window_center=center,
        window_width=width,
        width=number("columns", int),
        height=number("rows", int),
    )
    return options, quality


async def _rendered_group(
    request: Request, study: str, series: str | None, *, thumbnail: bool
) -> Response:
    ctx = service_context(request)
    media_type = _rendered_media_type(request)
    options, quality = _render_options(request, 1, thumbnail)
    if thumbnail:
        data = await ctx.run_cpu(
            lambda: dicomweb.representative_thumbnail(
                ctx, study, series, options, media_type, quality
            )
        )
        return Response(data, media_type=media_type)
    images = await ctx.run_cpu(
        lambda: dicomweb.rendered_all(ctx, study, series, options, media_type, quality)
    )
    return _related(media_type, [(f"Content-Type: {media_type}", image) for image in images])


@router.get("/studies/{study}/thumbnail", summary="WADO-RS: a study's thumbnail")
async def thumbnail_study(request: Request, study: str) -> Response:
    return await _rendered_group(request, study, None, thumbnail=True)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="WADO-RS: a series' thumbnail")
async def thumbnail_series(request: Request, study: str, series: str) -> Response:
    return await _rendered_group(request, study, series, thumbnail=True)


@router.get("/studies/{study}/rendered", summary="WADO-RS: a study's images rendered")
async def rendered_study(request: Request, study: str) -> Response:
    return await _rendered_group(request, study, None, thumbnail=False)


@router.get("/studies/{study}/series/{series}/rendered", summary="WADO-RS: a series rendered")
async def rendered_series(request: Request, study: str, series: str) -> Response:
    return await _rendered_group(request, study, series, thumbnail=False)
