"""Request-scoped access to the service context held on the application."""

from __future__ import annotations

from starlette.requests import Request

from dicom_file_service.service.context import ServiceContext


def service_context(request: Request) -> ServiceContext:
    ctx: ServiceContext = request.app.state.ctx
    return ctx


def dicomweb_base(request: Request) -> str:
    """The DICOMweb root as clients reach it, for RetrieveURLs and BulkDataURIs: the
    configured public base URL, else the request's own (from its Host header, which some
    clients send without the port)."""
    public = service_context(request).settings.public_base_url
    return (public or str(request.base_url)).rstrip("/") + "/dicomweb"
