"""Operations: liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from dicom_file_service import metrics
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.problems import problem_response
from dicom_file_service.service.health import readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@router.get("/metrics", summary="Prometheus metrics of every process of the service")
async def metrics_endpoint(request: Request) -> Response:
    ctx = service_context(request)
    try:
        depth = await run_in_threadpool(ctx.jobs.pending)
        gauge = (
            "# HELP dicom_fs_prerender_queue_depth Background renderings waiting\n"
            "# TYPE dicom_fs_prerender_queue_depth gauge\n"
            f"dicom_fs_prerender_queue_depth {depth}\n"
        ).encode()
    except Exception:  # the index is down: the other metrics still matter
        gauge = b""
    return Response(metrics.exposition(gauge), media_type=metrics.CONTENT_TYPE)


@router.get("/readyz", summary="Index and storage reachable (else 503)")
async def readyz(request: Request) -> Response:
    problems = await run_in_threadpool(readiness, service_context(request))
    if problems:
        return problem_response(503, "not_ready", "Not ready", "; ".join(problems))
    return Response(b'{"status":"ready"}', media_type="application/json")
