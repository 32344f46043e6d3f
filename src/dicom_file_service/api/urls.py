"""Every URL the service hands out, built in one place.

The service layer and the stored rows hold DICOM facts (UIDs, element locations), never
routes; the answers that name a place (``Location``, RetrieveURLs, BulkDataURIs, signed
transfer URLs, OHIF's data source) get it from here, from the configured public base URL or
else the request's own. Behind a trusted reverse proxy the request's own is the client's
(``api.forwarded``): its scheme and host, and the path prefix the proxy serves the service
under, which every path handed out as a path starts with too.
"""

from __future__ import annotations

from starlette.requests import Request

from dicom_file_service.api.forwarded import current_root_path

FILES = "/dicom-image"
DICOMWEB = "/dicomweb"
OHIF_MOUNT = "/ohif/"
SIGNED_UPLOADS = "/signed/uploads"
SIGNED_FILES = "/signed/files"
MODALITIES = "/modalities"
JOBS = "/jobs"


def rooted(path: str) -> str:
    """``path`` of the service as clients reach it: under the public path prefix, if any."""
    return current_root_path() + path


def public_base(request: Request) -> str:
    """The service's root as clients reach it: the configured public base URL, else the
    request's own (from its Host header, which some clients send without the port, and its
    root path: a proxy's prefix)."""
    public: str | None = request.app.state.ctx.settings.public_base_url
    return (public or str(request.base_url)).rstrip("/")


def dicomweb_base(request: Request) -> str:
    """The DICOMweb root as clients reach it, for RetrieveURLs and BulkDataURIs."""
    return public_base(request) + DICOMWEB


def file_location(file_id: str) -> str:
    return rooted(f"{FILES}/{file_id}")


def file_bulk_data_base(file_id: str, root_path: str | None = None) -> str:
    """Where the file API serves a file's bulk values (``/bulkdata/<location>``), under
    ``root_path`` if given, else under the current request's."""
    path = f"{FILES}/{file_id}/bulkdata"
    return rooted(path) if root_path is None else root_path + path


def modality_location(name: str) -> str:
    """A registered modality's own URL (its name is URL-safe: ``service.modalities``)."""
    return rooted(f"{MODALITIES}/{name}")


def job_location(job_id: str) -> str:
    """A background job's own URL (its id is URL-safe: ``service.ids``)."""
    return rooted(f"{JOBS}/{job_id}")


def upload_complete(upload_id: str) -> str:
    return rooted(f"{FILES}/uploads/{upload_id}/complete")


def signed_upload_path(upload_id: str) -> str:
    """The local backend's signed PUT of a direct upload (the path its signature covers: the
    service's own, without a proxy's prefix, which ``public_base`` carries)."""
    return f"{SIGNED_UPLOADS}/{upload_id}"


def signed_file_path(file_id: str) -> str:
    """The local backend's signed GET of a stored file (the path its signature covers)."""
    return f"{SIGNED_FILES}/{file_id}"


class DicomwebUrls:
    """The URLs of DICOMweb resources under one root (``ResourceUrls`` of the service)."""

    def __init__(self, base: str) -> None:
        self.base = base

    @classmethod
    def of(cls, request: Request) -> DicomwebUrls:
        return cls(dicomweb_base(request))

    def retrieve_url(self, study: str, series: str | None = None, sop: str | None = None) -> str:
        url = f"{self.base}/studies/{study}"
        if series is not None:
            url += f"/series/{series}"
            if sop is not None:
                url += f"/instances/{sop}"
        return url

    def bulk_data_base(self, study: str, series: str, sop: str) -> str:
        return f"{self.retrieve_url(study, series, sop)}/bulkdata"
