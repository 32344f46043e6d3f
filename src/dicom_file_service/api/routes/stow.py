"""STOW-RS (PS3.18 10.5) under ``/dicomweb``: store the instances of a multipart/related body.

Each part is staged as it arrives and stored through the file API's ingest while the next one
is received; the answer is the response dataset (Referenced SOP Sequence, Failed SOP
Sequence), its status, and each failure and warning in words in a ``Warning`` header.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from dicom_file_service.api.deps import service_context
from dicom_file_service.api.negotiation import DICOM_XML, wants_xml
from dicom_file_service.api.related_body import read_parts, related_boundary
from dicom_file_service.api.responses import dicom_json_response
from dicom_file_service.api.urls import DicomwebUrls
from dicom_file_service.api.warning_header import warning_values
from dicom_file_service.dicom.stow import (
    FailedInstance,
    StoredInstance,
    stow_response,
    stow_response_xml,
)
from dicom_file_service.errors import ServiceError
from dicom_file_service.service import store_outcome
from dicom_file_service.service.staging import StagedUpload
from dicom_file_service.service.store_outcome import FailedOutcome, Outcome, StoredOutcome

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])


def stow_status(stored: int, failed: int, warned: int = 0) -> int:
    """200 all stored, 202 some failed or stored with a warning, 409 all failed (PS3.18
    10.5.3, Table 10.5.3-1)."""
    if failed == 0:
        return 202 if warned else 200
    return 202 if stored else 409


async def _stow(request: Request, study: str | None) -> Response:
    ctx = service_context(request)
    boundary = related_boundary(request.headers.get("content-type"))
    urls = DicomwebUrls.of(request)
    outcomes: dict[int, Outcome] = {}

    async def on_part(index: int, part: StagedUpload | None, error: ServiceError | None) -> None:
        if part is None:
            assert error is not None
            outcomes[index] = store_outcome.failed(error)
            return
        outcomes[index] = await ctx.run_ingest(
            lambda: store_outcome.store_instance(ctx, part, study_instance_uid=study)
        )

    await read_parts(
        boundary,
        request.stream(),
        ctx.new_upload,
        on_part,
        concurrency=ctx.settings.ingest_workers,
    )
    if not outcomes:
        return dicom_json_response({}, 400)
    in_order = [outcomes[i] for i in sorted(outcomes)]
    stored = [o for o in in_order if isinstance(o, StoredOutcome)]
    failed = [o for o in in_order if isinstance(o, FailedOutcome)]
    studies = {o.record.study_instance_uid for o in stored}
    answer = stow_response(
        urls.retrieve_url(studies.pop()) if len(studies) == 1 else None,
        [_referenced(o, urls) for o in stored],
        [FailedInstance(o.sop_class_uid, o.sop_instance_uid, o.reason) for o in failed],
    )
    status = stow_status(len(stored), len(failed), sum(1 for o in stored if o.warnings))
    if wants_xml(request.headers.get("accept")):
        response = Response(stow_response_xml(answer), status_code=status, media_type=DICOM_XML)
    else:
        response = dicom_json_response(answer, status)
    texts = [f"{o.sop_instance_uid or 'a part'}: {o.detail}" for o in failed if o.detail]
    texts += [f"{o.record.sop_instance_uid}: {'; '.join(o.warnings)}" for o in stored if o.warnings]
    for value in warning_values(texts):
        response.headers.append("warning", value)
    return response


def _referenced(outcome: StoredOutcome, urls: DicomwebUrls) -> StoredInstance:
    r = outcome.record
    return StoredInstance(
        r.sop_class_uid,
        r.sop_instance_uid,
        urls.retrieve_url(r.study_instance_uid, r.series_instance_uid, r.sop_instance_uid),
        warning_reason=outcome.warning_reason,
    )


@router.post("/studies", summary="STOW-RS: store instances (multipart/related)")
async def stow(request: Request) -> Response:
    return await _stow(request, None)


@router.post("/studies/{study}", summary="STOW-RS: store instances of one study")
async def stow_study(request: Request, study: str) -> Response:
    return await _stow(request, study)
