"""Request-scoped access to the service context held on the application."""

from __future__ import annotations

from starlette.requests import Request

from dicom_file_service.service.context import ServiceContext


def service_context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx
