"""WADO-RS renderings (PS3.18 8.3.5, 10.4.1.1.3-4) under ``/dicomweb``: ``/rendered`` and
``/thumbnail`` of instances, frames, series and studies, as JPEG (default) or PNG.

A thumbnail is the service's thumbnail (``DICOM_FS_THUMBNAIL_SIZE`` on its longer side, the
one the prerenderer makes ahead); ``viewport`` and ``window`` ask for another rendering.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from dicom_file_service.api import negotiation
from dicom_file_service.api.conditional import not_modified
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.multipart import Part, related_response
from dicom_file_service.api.render_params import wado_rs_options
from dicom_file_service.api.responses import IMMUTABLE, REVALIDATE
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.service import renditions
from dicom_file_service.service.renditions import Rendition

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])
_INSTANCE = "/studies/{study}/series/{series}/instances/{sop}"


def rendition_response(request: Request, rendition: Rendition, *, immutable: bool) -> Response:
    """The image with its entity tag, or a 304 when the client holds it already. An
    instance's rendering never changes; a study's or series' thumbnail changes with the
    instances it has, so it is revalidated."""
    headers = {"etag": rendition.etag, "cache-control": IMMUTABLE if immutable else REVALIDATE}
    if not_modified(request.headers.get("if-none-match"), rendition.etag):
        return Response(status_code=304, headers=headers)
    return Response(rendition.data, media_type=rendition.media_type, headers=headers)


def _wanted(request: Request, frame: int, *, thumbnail: bool) -> tuple[str, RenderOptions, int]:
    media_type = negotiation.rendered_type(
        request.query_params.get("accept") or request.headers.get("accept")
    )
    ctx = service_context(request)
    base = (
        renditions.thumbnail_options(ctx.settings, frame)
        if thumbnail
        else RenderOptions(frame=frame)
    )
    options, quality = wado_rs_options(request.query_params, base)
    return media_type, options, quality


async def _instance(
    request: Request, study: str, series: str, sop: str, frame: int, *, thumbnail: bool
) -> Response:
    ctx = service_context(request)
    media_type, options, quality = _wanted(request, frame, thumbnail=thumbnail)
    rendition = await ctx.run_cpu(
        lambda: renditions.render_instance(ctx, study, series, sop, options, media_type, quality)
    )
    return rendition_response(request, rendition, immutable=True)


@router.get(_INSTANCE + "/rendered", summary="WADO-RS: the instance rendered (frame 1)")
async def rendered_instance(request: Request, study: str, series: str, sop: str) -> Response:
    return await _instance(request, study, series, sop, 1, thumbnail=False)


@router.get(_INSTANCE + "/thumbnail", summary="WADO-RS: the instance's thumbnail")
async def thumbnail_instance(request: Request, study: str, series: str, sop: str) -> Response:
    return await _instance(request, study, series, sop, 1, thumbnail=True)


@router.get(_INSTANCE + "/frames/{frame}/rendered", summary="WADO-RS: one frame rendered")
async def rendered_frame(
    request: Request, study: str, series: str, sop: str, frame: int
) -> Response:
    return await _instance(request, study, series, sop, frame, thumbnail=False)


@router.get(_INSTANCE + "/frames/{frame}/thumbnail", summary="WADO-RS: one frame's thumbnail")
async def thumbnail_frame(
    request: Request, study: str, series: str, sop: str, frame: int
) -> Response:
    return await _instance(request, study, series, sop, frame, thumbnail=True)


async def _group(request: Request, study: str, series: str | None, *, thumbnail: bool) -> Response:
    ctx = service_context(request)
    media_type, options, quality = _wanted(request, 1, thumbnail=thumbnail)
    if thumbnail:
        rendition = await ctx.run_cpu(
            lambda: renditions.representative(ctx, study, series, options, media_type, quality)
        )
        return rendition_response(request, rendition, immutable=False)
    images = await ctx.run_cpu(
        lambda: renditions.render_all(ctx, study, series, options, media_type, quality)
    )
    return related_response(
        media_type, [Part({"Content-Type": media_type}, [image.data]) for image in images]
    )


@router.get("/studies/{study}/thumbnail", summary="WADO-RS: a study's thumbnail")
async def thumbnail_study(request: Request, study: str) -> Response:
    return await _group(request, study, None, thumbnail=True)


@router.get("/studies/{study}/series/{series}/thumbnail", summary="WADO-RS: a series' thumbnail")
async def thumbnail_series(request: Request, study: str, series: str) -> Response:
    return await _group(request, study, series, thumbnail=True)


@router.get("/studies/{study}/rendered", summary="WADO-RS: a study's images rendered")
async def rendered_study(request: Request, study: str) -> Response:
    return await _group(request, study, None, thumbnail=False)


@router.get("/studies/{study}/series/{series}/rendered", summary="WADO-RS: a series rendered")
async def rendered_series(request: Request, study: str, series: str) -> Response:
    return await _group(request, study, series, thumbnail=False)
