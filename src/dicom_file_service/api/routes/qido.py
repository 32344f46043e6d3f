"""QIDO-RS (PS3.18 10.6) under ``/dicomweb``: search studies, series and instances.

Every URL form of the standard: all studies, series or instances; the series and instances of
a study; the instances of a series. Matching keys, ``limit``, ``offset``, ``fuzzymatching``
and ``includefield`` are read by the service; this only names the level and the path's scope.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service.api import negotiation
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.urls import DicomwebUrls
from dicom_file_service.api.warning_header import warning_values
from dicom_file_service.dicom.qido import Level
from dicom_file_service.service import qido

router = APIRouter(prefix="/dicomweb", tags=["DICOMweb"])


async def _search(request: Request, level: Level, scope: dict[Level, str]) -> Response:
    media_type = negotiation.search_answer_type(request.headers.get("accept"))
    ctx = service_context(request)
    urls = DicomwebUrls.of(request)
    params = list(request.query_params.multi_items())
    result = await run_in_threadpool(qido.search, ctx, params, level, scope, urls)
    headers = {"warning": ", ".join(warning_values(result.warnings))} if result.warnings else None
    return Response(result.body(), media_type=media_type, headers=headers)


@router.get("/studies", summary="QIDO-RS: search for studies")
async def search_studies(request: Request) -> Response:
    return await _search(request, "study", {})


@router.get("/series", summary="QIDO-RS: search for series")
async def search_series(request: Request) -> Response:
    return await _search(request, "series", {})


@router.get("/instances", summary="QIDO-RS: search for instances")
async def search_instances(request: Request) -> Response:
    return await _search(request, "instance", {})


@router.get("/studies/{study}/series", summary="QIDO-RS: search a study's series")
async def search_study_series(request: Request, study: str) -> Response:
    return await _search(request, "series", {"study": study})


@router.get("/studies/{study}/instances", summary="QIDO-RS: search a study's instances")
async def search_study_instances(request: Request, study: str) -> Response:
    return await _search(request, "instance", {"study": study})


@router.get(
    "/studies/{study}/series/{series}/instances", summary="QIDO-RS: search a series' instances"
)
async def search_series_instances(request: Request, study: str, series: str) -> Response:
    return await _search(request, "instance", {"study": study, "series": series})
