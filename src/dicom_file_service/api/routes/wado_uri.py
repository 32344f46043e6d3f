"""WADO-URI (PS3.18 9): ``GET /wado?requestType=WADO&objectUID=`` (``studyUID`` and
``seriesUID`` optional, checked when given), one instance as DICOM or rendered (JPEG by
default, or PNG).

As DICOM it goes in ``transferSyntax`` (PS3.18 9.4.2.4), Explicit VR Little Endian when none
is named; ``*`` (an extension) or the stored syntax sends the stored file itself, with its
entity tag and ranges. A syntax the service cannot write this instance in is a 406.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydicom.uid import UID
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api import negotiation
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.render_params import wado_uri_options
from dicom_file_service.api.routes.rendered import rendition_response
from dicom_file_service.api.stored_file import send_stored_file
from dicom_file_service.dicom.encoders import EXPLICIT_LITTLE, unencodable
from dicom_file_service.errors import InvalidParameter
from dicom_file_service.service import instances, renditions

router = APIRouter(tags=["DICOMweb"])


@router.get("/wado", summary="WADO-URI (PS3.18 9): one instance, as DICOM or rendered")
async def wado(
    request: Request,
    requestType: str,  # noqa: N803 - the standard's parameter names
    objectUID: str,  # noqa: N803
    studyUID: str | None = None,  # noqa: N803
    seriesUID: str | None = None,  # noqa: N803
    contentType: str = negotiation.JPEG,  # noqa: N803
    transferSyntax: str | None = None,  # noqa: N803
) -> Response:
    if requestType != "WADO":
        raise InvalidParameter("requestType must be WADO")
    ctx = service_context(request)
    media_type = negotiation.wado_uri_type(contentType)
    if transferSyntax is not None and media_type != negotiation.DICOM:
        raise InvalidParameter("transferSyntax is for contentType=application/dicom only")
    if transferSyntax not in (None, "*") and not UID(transferSyntax).is_valid:
        raise InvalidParameter(f"transferSyntax {transferSyntax!r} is not a UID")
    record = await run_in_threadpool(instances.instance_by_uid, ctx, objectUID, studyUID, seriesUID)
    if media_type == negotiation.DICOM:
        params = await run_in_threadpool(
            instances.image_params_of,
            ctx,
            record.study_instance_uid,
            record.series_instance_uid,
            record.sop_instance_uid,
        )
        image = params[record.sop_instance_uid]
        syntax = negotiation.pick_syntax(
            record.transfer_syntax_uid,
            [transferSyntax or EXPLICIT_LITTLE],
            lambda target: unencodable(target, image),
            f"instance {objectUID}",
        )
        if syntax == record.transfer_syntax_uid:
            return await send_stored_file(request, ctx, record)
        body = await ctx.run_cpu(lambda: instances.transcoded(ctx, record, syntax))
        disposition = f'attachment; filename="{record.sop_instance_uid}.dcm"'
        return Response(
            body, media_type=negotiation.DICOM, headers={"content-disposition": disposition}
        )
    options, quality = wado_uri_options(request.query_params)
    rendition = await ctx.run_cpu(
        lambda: renditions.render_instance(
            ctx,
            record.study_instance_uid,
            record.series_instance_uid,
            record.sop_instance_uid,
            options,
            media_type,
            quality,
        )
    )
    return rendition_response(request, rendition, immutable=True)
