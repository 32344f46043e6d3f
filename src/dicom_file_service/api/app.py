"""The ASGI application factory."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from dicom_file_service import __version__, metrics
from dicom_file_service.api import logs
from dicom_file_service.api.content_location import ContentLocation
from dicom_file_service.api.direct_answers import DirectAnswers
from dicom_file_service.api.fast_paths import FastPaths
from dicom_file_service.api.forwarded import ProxiedRequest, trusted_networks
from dicom_file_service.api.logs import RequestLog
from dicom_file_service.api.problems import install_problem_handlers
from dicom_file_service.api.routes import (
    deidentify,
    dicomweb_delete,
    dimse_jobs,
    files,
    modalities,
    ops,
    qido,
    rendered,
    stow,
    transfer,
    wado,
    wado_uri,
    web,
)
from dicom_file_service.dicom.render import warm_up
from dicom_file_service.errors import ServiceError
from dicom_file_service.service import jobs, prerender
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.modalities import apply_configured, configured_modalities
from dicom_file_service.settings import Settings

log = logging.getLogger(__name__)


async def _flush_request_metrics() -> None:
    """Requests counted in this process reach the shared metrics every ``FLUSH_SECONDS``."""
    while True:
        await asyncio.sleep(metrics.FLUSH_SECONDS)
        metrics.REQUEST_TALLY.flush()


LISTENER_WAIT_SECONDS = 60.0


async def _listening(address: str) -> None:
    """Return once ``address`` (host:port, serve's DICOM listener) accepts connections, which
    it does seconds after the workers begin starting (both import what they serve with at
    once); after ``LISTENER_WAIT_SECONDS`` go on without it (serve stops when it fails)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    # A SIGTERM meanwhile (serve stopping: its listener failed, or it is being stopped) ends
    # the wait; uvicorn's own handler, which it reaches too, then stops this worker.
    stopping = False
    uvicorns = signal.getsignal(signal.SIGTERM)
    # One that came before this wait began: uvicorn's handler is its server's method, which
    # noted it in the server's ``should_exit``.
    server = getattr(uvicorns, "__self__", None)

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if callable(uvicorns):
            uvicorns(signum, frame)

    signal.signal(signal.SIGTERM, stop)
    try:
        deadline = asyncio.get_running_loop().time() + LISTENER_WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            if stopping or getattr(server, "should_exit", False):
                stopping = True
                break
            try:
                connecting = asyncio.open_connection(host, int(port))
                _, writer = await asyncio.wait_for(connecting, 1)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.05)
                continue
            writer.close()
            return
    finally:
        signal.signal(signal.SIGTERM, uvicorns)
    if not stopping:
        log.warning("the DICOM listener at %s is not listening; HTTP starts without it", address)


def create_app(settings: Settings | None = None) -> ASGIApp:
    """Build the app; the service context is created at start-up and closed at shutdown."""
    settings = settings or Settings()
    logs.configure(settings.log_format)
    trusted = trusted_networks(settings.trusted_proxies)  # a bad CIDR stops the start here
    configured_modalities(settings)  # so does a bad DICOM_FS_MODALITIES (a ValueError)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # `serve` migrated the index before starting its workers; a worker the supervisor
        # starts again later (after a crash) must come up even while the database is away,
        # and answer 503s until it is back, so it never touches the schema itself.
        ctx = ServiceContext.create(settings, migrate=False)
        # Every worker writes them (an idempotent upsert); an index away now must not stop
        # the worker (see above): the next worker start, or a restart, writes them.
        try:
            await asyncio.to_thread(apply_configured, ctx)
        except ServiceError as exc:
            log.warning("configured modalities not applied: %s", exc.detail)
        # The first request should not pay for lazy imports; not a rendering: not its timeout.
        await ctx.run_cpu(warm_up, time_limit=300)
        prerender.start_in_process(ctx)
        jobs.start_in_process(ctx)
        # The parser processes start beside the service; the first upload may wait for them.
        asyncio.get_running_loop().run_in_executor(ctx.ingest_pool, ctx.parsers.start)
        if settings.dicom_listener_address:
            await _listening(settings.dicom_listener_address)
        app.state.ctx = ctx
        flushing = asyncio.create_task(_flush_request_metrics())
        log.info("service started", extra={"data_dir": str(settings.data_dir)})
        try:
            yield
        finally:
            flushing.cancel()
            metrics.REQUEST_TALLY.flush()
            logs.request_lines.flush()
            await ctx.aclose()

    app = FastAPI(
        title="dicom-file-service",
        version=__version__,
        description="Stores DICOM files and serves their header attributes and renderings.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.include_router(transfer.router)  # before files: its fixed paths win over {file_id}
    app.include_router(files.router)
    app.include_router(ops.router)
    app.include_router(deidentify.router)  # before stow and wado: POST under a study
    app.include_router(stow.router)
    app.include_router(qido.router)
    app.include_router(wado.router)
    app.include_router(rendered.router)
    app.include_router(dicomweb_delete.router)
    app.include_router(dimse_jobs.router)  # before modalities: its paths are longer
    app.include_router(modalities.router)
    app.include_router(wado_uri.router)
    app.include_router(web.router)
    served: ASGIApp = ContentLocation(FastPaths(app, app.state), settings.public_base_url)
    if settings.cors_origins:
        # Outside the fast paths too: a viewer on another origin reads tags and PNGs from them.
        served = CORSMiddleware(
            served,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=[
                "Location",
                "Content-Location",
                "ETag",
                "Content-Range",
                "Warning",
                "X-Request-ID",
            ],
            max_age=3600,
        )
    # Outermost: every layer below, and every URL, sees the request as the client made it.
    proxied = ProxiedRequest(RequestLog(served), trusted, settings.public_base_url)
    # The protocol answers tag lookups that need no wait itself (api.direct_answers).
    return DirectAnswers(proxied, app.state, cors=bool(settings.cors_origins))
