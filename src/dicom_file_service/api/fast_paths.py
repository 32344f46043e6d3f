"""A thin ASGI layer in front of the framework for the hottest read: tag lookups.

``GET /dicom-image/{id}?dicom_tag=...`` is the request a viewer or a pipeline makes thousands
of times a second. FastAPI's routing, dependency and validation machinery costs more than the
lookup itself (a bare FastAPI route tops out near half of what a raw ASGI callable does on the
same machine), so this request is answered here, by the same service function the FastAPI route
calls; everything else, and the OpenAPI description of this route, stays with FastAPI.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from dicom_file_service.api.problems import problem_response, service_error_response
from dicom_file_service.errors import ServiceError
from dicom_file_service.service import files as files_service
from dicom_file_service.service.context import ServiceContext

log = logging.getLogger(__name__)

_PREFIX = "/dicom-image/"
_JSON_HEADERS = [(b"content-type", b"application/json")]


class FastPaths:
    """Wraps the application; answers tag lookups directly, passes everything else on."""

    def __init__(self, app: ASGIApp, state: Any) -> None:
        self.app = app
        self.state = state  # the framework app's state, which holds the service context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and b"dicom_tag=" in scope["query_string"]
            and scope["path"].startswith(_PREFIX)
            and "/" not in scope["path"][len(_PREFIX) :]
        ):
            await self._tag_lookup(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _tag_lookup(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: ServiceContext = self.state.ctx
        file_id = scope["path"][len(_PREFIX) :]
        selectors = [
            v
            for k, v in parse_qsl(scope["query_string"].decode("latin-1"), True)
            if k == "dicom_tag"
        ]
        try:
            if ctx.index_is_local:  # an SQLite point read is faster than a thread hop
                answers = files_service.get_attributes(ctx, file_id, selectors)
            else:
                answers = await run_in_threadpool(
                    files_service.get_attributes, ctx, file_id, selectors
                )
        except ServiceError as exc:
            await service_error_response(exc)(scope, receive, send)
            return
        except Exception:
            log.exception("tag lookup failed")
            response = problem_response(
                500,
                "internal_error",
                "Internal error",
                "an unexpected error occurred; it is logged",
            )
            await response(scope, receive, send)
            return
        body = orjson.dumps(answers[0] if len(answers) == 1 else answers)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
