"""Background rendering: each new instance's default PNG and thumbnail, made ahead of the
first request (``DICOM_FS_PRERENDER=true``).

The job is enqueued in the instance's own transaction (``enqueue_prerender``) and run by the
queue's workers (``prerender``). A request never waits on the queue: a PNG not rendered yet
is rendered on demand, and the job then finds it cached.
"""

from __future__ import annotations

import logging

from sqlalchemy import Connection

from dicom_file_service import metrics
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import BadRequest, FileNotFound
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.jobs import job_handler
from dicom_file_service.service.rendering import render_blocking
from dicom_file_service.service.renditions import thumbnail_options

log = logging.getLogger(__name__)


def prerendered_options(ctx: ServiceContext) -> list[RenderOptions]:
    """The default PNG and the thumbnail: the very options the doors ask the cache for."""
    return [RenderOptions(), thumbnail_options(ctx.settings)]


def enqueue_prerender(ctx: ServiceContext, conn: Connection, file_id: str) -> bool:
    """In the caller's transaction: the job exists if and only if the row does. Whether a
    job was enqueued: only then is the queue told of the commit (``jobs.committed``), which
    wakes its runners to claim it; an upload that enqueued nothing must not cost them a
    write transaction each."""
    if ctx.settings.prerender:
        ctx.jobs.enqueue(conn, file_id)
        return True
    return False


def prerender(ctx: ServiceContext, file_id: str) -> None:
    """The job: render and cache. A file deleted meanwhile, or one that has no image to
    render, is done (nothing to retry); an unavailable store or index raises (retried)."""
    for options in prerendered_options(ctx):
        try:
            render_blocking(ctx, file_id, options, cache_later=False)
        except FileNotFound:
            metrics.JOBS.labels("gone").inc()
            return
        except BadRequest as exc:  # no pixel data, undecodable: the on-demand route says so
            log.info("nothing to prerender", extra={"file_id": file_id, "code": exc.code})
            metrics.JOBS.labels("nothing_to_render").inc()
            return
        except Exception:
            metrics.JOBS.labels("failed").inc()  # retried by the queue
            raise
    metrics.JOBS.labels("done").inc()


def start_in_process(ctx: ServiceContext) -> None:
    """Where the queue runs jobs inside the service (embedded mode), start doing so."""
    if ctx.settings.prerender:
        ctx.jobs.start_in_process(lambda file_id: prerender(ctx, file_id))


def run_worker(ctx: ServiceContext) -> None:
    """The ``worker`` command: run prerender jobs and clients' jobs (``service.jobs``) until
    SIGTERM."""
    ctx.jobs.run_worker(lambda file_id: prerender(ctx, file_id), job_handler(ctx))
