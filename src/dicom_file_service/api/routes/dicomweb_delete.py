"""Deleting studies, series and instances under ``/dicomweb`` (as Orthanc and cloud DICOM
stores offer; PS3.18 leaves it to the archive): rows first, then bytes and renderings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api.deps import service_context
from dicom_file_service.service import instances

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])


async def _delete(
    request: Request, study: str, series: str | None = None, sop: str | None = None
) -> Response:
    ctx = service_context(request)
    await run_in_threadpool(instances.delete, ctx, study, series, sop)
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
