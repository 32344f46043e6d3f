"""WADO-URI (PS3.18 9): ``GET /wado?requestType=WADO&studyUID=&seriesUID=&objectUID=``, one
instance as DICOM (the stored bytes) or rendered (JPEG by default, or PNG)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api import negotiation
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.render_params import wado_uri_options
from dicom_file_service.api.routes.rendered import rendition_response
from dicom_file_service.api.stored_file import send_stored_file
from dicom_file_service.errors import InvalidParameter
from dicom_file_service.service import instances, renditions

router = APIRouter(tags=["DICOMweb"])


@router.get("/wado", summary="WADO-URI (PS3.18 9): one instance, as DICOM or rendered")
async def wado(
    request: Request,
    requestType: str,  # noqa: N803 - the standard's parameter names
    studyUID: str,  # noqa: N803
    seriesUID: str,  # noqa: N803
    objectUID: str,  # noqa: N803
    contentType: str = negotiation.JPEG,  # noqa: N803
) -> Response:
    if requestType != "WADO":
        raise InvalidParameter("requestType must be WADO")
    ctx = service_context(request)
    media_type = negotiation.wado_uri_type(contentType)
    if media_type == negotiation.DICOM:
        record = await run_in_threadpool(
            instances.instance_record, ctx, studyUID, seriesUID, objectUID
        )
        return await send_stored_file(request, ctx, record)
    options, quality = wado_uri_options(request.query_params)
    rendition = await ctx.run_cpu(
        lambda: renditions.render_instance(
            ctx, studyUID, seriesUID, objectUID, options, media_type, quality
        )
    )
    return rendition_response(request, rendition, immutable=True)
