"""Where answers point: the URLs of DICOMweb resources, as the caller's door builds them.

The service layer never builds a route. A use case whose answer names a place (QIDO-RS's
RetrieveURL, a header's BulkDataURIs, STOW-RS's RetrieveURL) is handed an object of this
shape by the HTTP layer; a door without URLs (the DICOM network) needs none of these answers.
"""

from __future__ import annotations

from typing import Protocol


class ResourceUrls(Protocol):
    def retrieve_url(self, study: str, series: str | None = None, sop: str | None = None) -> str:
        """The study's, series' or instance's retrieve URL (WADO-RS)."""
        ...

    def bulk_data_base(self, study: str, series: str, sop: str) -> str:
        """The root under which an instance's bulk values are served (``<root>/<location>``)."""
        ...


class NoUrls:
    """For a door whose answers point nowhere over HTTP (the DICOM network): empty URLs."""

    def retrieve_url(self, study: str, series: str | None = None, sop: str | None = None) -> str:
        return ""

    def bulk_data_base(self, study: str, series: str, sop: str) -> str:
        return ""
