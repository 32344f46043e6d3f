"""Answers shared by the routes: JSON bodies, and streams read from storage in the thread
pool (storage reads block)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from starlette.concurrency import iterate_in_threadpool
from starlette.responses import Response, StreamingResponse

from dicom_file_service.api.negotiation import DICOM_JSON

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


def json_response(content: Any, status_code: int = 200, **headers: str) -> Response:
    return Response(
        orjson.dumps(content),
        status_code=status_code,
        media_type="application/json",
        headers=headers or None,
    )


def dicom_json_response(body: Any, status_code: int = 200) -> Response:
    """DICOM JSON (PS3.18 F.2): ``body`` already encoded, or a value to encode."""
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    return Response(data, status_code=status_code, media_type=DICOM_JSON)


def stream_response(
    chunks: Iterator[bytes], media_type: str, headers: dict[str, str], status_code: int = 200
) -> Response:
    """Chunks read from storage as the answer goes, each read in the thread pool."""
    return StreamingResponse(
        iterate_in_threadpool(chunks),
        status_code=status_code,
        media_type=media_type,
        headers=headers,
    )
