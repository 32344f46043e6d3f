"""A thin ASGI layer in front of the framework for the hottest requests: tag lookups, cached
renderings and uploads.

``GET /dicom-image/{id}?dicom_tag=...`` is the request a viewer or a pipeline makes thousands
of times a second. FastAPI's routing, dependency and validation machinery costs more than the
lookup itself (a bare FastAPI route tops out near half of what a raw ASGI callable does on the
same machine), so this request is answered here, by the same service function the FastAPI route
calls; everything else, and the OpenAPI description of this route, stays with FastAPI.
A PNG request whose parameters all parse is answered here too, from the render cache or
rendered by the same service function; any other goes on to the FastAPI route, which
validates and reports errors. An upload without query parameters (``POST /dicom-image``,
the original contract's) is received, stored and answered here by the same functions as its
route's, whose framework layers were a sixth of an upload's time in the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from dicom_file_service.api import logs, urls
from dicom_file_service.api.conditional import not_modified
from dicom_file_service.api.problems import problem_response, service_error_response
from dicom_file_service.api.responses import IMMUTABLE, json_response
from dicom_file_service.api.upload_body import check_declared_length, read_upload_within
from dicom_file_service.dicom.render import RenderOptions
from dicom_file_service.errors import ServiceError
from dicom_file_service.service import files as files_service
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.ingest import ingest_staged
from dicom_file_service.service.records import file_summary
from dicom_file_service.service.rendering import rendering_async, rendering_etag

log = logging.getLogger(__name__)

_PREFIX = urls.FILES + "/"
_PNG = "/png"
_PNG_PARAMS: dict[str, Callable[[str], Any]] = {
    "frame": int,
    "window_center": float,
    "window_width": float,
    "voi": str,
    "width": int,
    "height": int,
    "bit_depth": int,
}


def _render_options(query_string: bytes) -> RenderOptions | None:
    """The options a PNG query names, or None if anything is unusual (the route decides)."""
    values: dict[str, Any] = {}
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        convert = _PNG_PARAMS.get(key)
        if convert is None or key in values:
            return None
        try:
            values[key] = convert(value)
        except ValueError:
            return None
    if values.get("frame", 1) < 1:
        return None  # the route's validation names the parameter
    try:
        return RenderOptions(**values)
    except (ServiceError, TypeError, ValueError):
        return None


_JSON_HEADERS = [(b"content-type", b"application/json")]


def _failure(exc: Exception, what: str) -> Any:
    """The answer to a request that raised: its problem document, or a logged 500."""
    if isinstance(exc, ServiceError):
        return service_error_response(exc)
    log.exception(what, exc_info=exc)
    return _internal_error()


def _internal_error() -> Any:
    return problem_response(
        500, "internal_error", "Internal error", "an unexpected error occurred; it is logged"
    )


def tag_selectors(query_string: bytes) -> list[str]:
    """The ``dicom_tag`` parameters of a query string."""
    text = query_string.decode("latin-1")
    if "%" not in text and "+" not in text and ";" not in text:
        # Nothing to decode (the common ``dicom_tag=(0010,0010)``): parse_qsl's answer,
        # for a fifth of its cost.
        return [
            pair[10:]
            for pair in text.split("&")
            if pair.startswith("dicom_tag=") or pair == "dicom_tag"
        ]
    return [v for k, v in parse_qsl(text, True) if k == "dicom_tag"]


def lookup_selectors(rest: str, query_string: bytes) -> list[str]:
    """The selectors of a tag lookup, ``GET /dicom-image/{rest}?dicom_tag=...``, or [] when the
    request is not one (``rest``: the path after the prefix; a look-alike such as
    ``?xdicom_tag=`` has no selectors)."""
    if "/" in rest or b"dicom_tag=" not in query_string:
        return []
    return tag_selectors(query_string)


def lookup_body(answers: list[dict[str, Any]]) -> bytes:
    """A tag lookup's JSON: the answer to one selector, or the list of them in order."""
    return orjson.dumps(answers[0] if len(answers) == 1 else answers)


class FastPaths:
    """Wraps the application; answers tag lookups directly, passes everything else on."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the framework app's state, which holds the service context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "POST" and scope["path"] == urls.FILES and not scope["query_string"]:
            await self._upload(scope, receive, send)
            return
        if scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(_PREFIX):
                rest = path[len(_PREFIX) :]
                selectors = lookup_selectors(rest, scope["query_string"])
                if selectors:
                    await self._tag_lookup(scope, selectors, receive, send)
                    return
                if rest.endswith(_PNG) and await self._png(
                    rest[: -len(_PNG)], scope, receive, send
                ):
                    return
        await self.app(scope, receive, send)

    async def _upload(self, scope: Scope, receive: Receive, send: Send) -> None:
        """``POST /dicom-image``: what its route (``routes/files.py``) does, and its answers."""
        ctx: ServiceContext = self.state.ctx
        request = Request(scope, receive)
        headers = request.headers
        try:
            check_declared_length(headers.get("content-length"), ctx.settings.max_upload_bytes)
            with ctx.new_upload() as staged:
                await read_upload_within(
                    ctx.settings.upload_timeout_seconds,
                    headers.get("content-type"),
                    request.stream(),
                    staged,
                )
                result = await ctx.run_ingest(lambda: ingest_staged(ctx, staged, overwrite=False))
        except Exception as exc:
            await _failure(exc, "unhandled error")(scope, receive, send)
            return
        logs.note(file_id=result.record.file_id)
        location = urls.file_location(result.record.file_id)
        response = json_response(
            file_summary(result.record), 201 if result.created else 200, location=location
        )
        await response(scope, receive, send)

    async def _png(self, file_id: str, scope: Scope, receive: Receive, send: Send) -> bool:
        """Answer a PNG request whose parameters are all clean: from the render cache, or
        rendered now."""
        options = _render_options(scope["query_string"])
        if options is None:
            return False
        ctx: ServiceContext = self.state.ctx
        try:
            body = await rendering_async(ctx, file_id, options)
        except Exception as exc:
            await _failure(exc, "rendering failed")(scope, receive, send)
            return True
        etag = rendering_etag(file_id, options).encode()
        headers = [(b"etag", etag), (b"cache-control", IMMUTABLE.encode())]
        match = next((v for k, v in scope["headers"] if k == b"if-none-match"), None)
        if match is not None and not_modified(match.decode("latin-1"), etag.decode()):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return True
        headers += [(b"content-type", b"image/png"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return True

    async def _tag_lookup(
        self, scope: Scope, selectors: list[str], receive: Receive, send: Send
    ) -> None:
        ctx: ServiceContext = self.state.ctx
        file_id = scope["path"][len(_PREFIX) :]
        try:
            answers = await files_service.get_attributes_async(
                ctx, file_id, selectors, urls.file_bulk_data_base(file_id)
            )
        except Exception as exc:
            await _failure(exc, "tag lookup failed")(scope, receive, send)
            return
        body = lookup_body(answers)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
