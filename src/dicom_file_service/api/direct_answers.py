"""Tag lookups answered by the HTTP protocol itself, before the request becomes ASGI.

On the embedded index a tag lookup is a few microseconds of work: a point read (most often
from the header cache) and a walk over a few elements. Through ASGI it also pays for a task,
uvicorn's request-response cycle, the wrapper layers (proxy, request log, Content-Location,
fast paths) and two send messages, which together cost more than the lookup. The protocol
here (uvicorn's httptools protocol with coalesced writes) recognises
``GET /dicom-image/{id}?dicom_tag=...`` as soon as its headers are parsed and, when the
answer needs no wait (kept in memory from an earlier lookup, or the index reads at once),
writes it in the bytes uvicorn would have
written, with what the layers add: the request id, the proxy's path prefix in bulk data
URIs, the request's log line and its metrics.

Everything else goes the ASGI way unchanged, so an answer never depends on which way it
went: any other request, a lookup that fails (its problem document, or its logged 500, is
the route's), a read that would wait (PostgreSQL, nothing kept), a request with a body, a
pipelined request behind one still being answered, a client not reading its answers,
HTTP/1.0 or a closing connection, and, when CORS is configured, any request from another
origin.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from starlette.types import Receive, Scope, Send

from dicom_file_service.api import logs, urls
from dicom_file_service.api.coalesced_writes import CoalescingHttpToolsProtocol
from dicom_file_service.api.fast_paths import lookup_body, lookup_selectors
from dicom_file_service.api.forwarded import ProxiedRequest
from dicom_file_service.service.files import get_attributes_async, get_attributes_now

_PREFIX = (urls.FILES + "/").encode()
_TEMPLATE = urls.FILES + "/{file_id}"
_OK = b"HTTP/1.1 200 OK\r\n"


class DirectAnswers:
    """The served ASGI application, and the answers the protocol may give before it.

    It wraps the outermost layer (``ProxiedRequest``): the protocol finds it on the
    application uvicorn serves and asks ``respond`` first. A tag lookup whose answer must
    wait (PostgreSQL, nothing kept yet) comes here as ASGI and is answered here the same way,
    awaiting its read, past the layers it does not need (uvicorn's request cycle still
    orders answers, keeps the connection and sees disconnects); any other request, and a
    lookup that fails, goes through every layer to its route.
    """

    def __init__(self, app: ProxiedRequest, state: Any, *, cors: bool) -> None:
        self.app = app
        self.state = state  # the framework app's state, which holds the service context
        self.cors = cors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            lookup = self._lookup(scope.get("raw_path") or b"", scope["query_string"])
            if lookup is not None and _plain(scope["headers"], self.cors):
                started = time.perf_counter()
                client = scope.get("client")
                peer = client[0] if client else None
                answered = await self._answer(lookup, scope["headers"], peer)
                if answered is not None:
                    start = {"type": "http.response.start", "status": 200, "headers": answered.head}
                    await send(start)
                    await send({"type": "http.response.body", "body": answered.body})
                    _done(lookup, answered, started)
                    return
        await self.app(scope, receive, send)

    def respond(
        self,
        method: bytes,
        url: bytes,
        headers: list[tuple[bytes, bytes]],
        peer: str | None,
        default_headers: list[tuple[bytes, bytes]],
    ) -> bytes | None:
        """The whole HTTP response to a tag lookup that can be answered now, or None: the
        request goes the ASGI way."""
        if method != b"GET":
            return None
        path, _, query = url.partition(b"?")
        lookup = self._lookup(path, query)
        if lookup is None or not _plain(headers, self.cors):
            return None
        ctx = getattr(self.state, "ctx", None)
        if ctx is None or not (ctx.index.headers.keeps or ctx.index.headers.reads_at_once):
            return None  # the answer would wait (PostgreSQL, nothing kept): no request id
        started = time.perf_counter()
        answered = self._answer_now(lookup, headers, peer, ctx)
        if answered is None:
            return None
        response = [_OK]
        for name, value in [*default_headers, *answered.head]:  # uvicorn's (server, date) first
            response += [name, b": ", value, b"\r\n"]
        response += [b"\r\n", answered.body]
        _done(lookup, answered, started)
        return b"".join(response)

    def _lookup(self, path: bytes, query: bytes) -> _Lookup | None:
        """The tag lookup a GET is (``path`` as sent, without its query), or None."""
        if not path.startswith(_PREFIX):
            return None
        rest = path[len(_PREFIX) :]
        if b"%" in rest or b"#" in path or b"#" in query:  # the path as sent, not decoded
            return None
        try:
            file_id = rest.decode("ascii")
        except UnicodeDecodeError:
            return None
        selectors = lookup_selectors(file_id, query)
        return _Lookup(file_id, path.decode("ascii"), selectors) if selectors else None

    def _answer_now(
        self, lookup: _Lookup, headers: list[tuple[bytes, bytes]], peer: str | None, ctx: Any
    ) -> _Answer | None:
        """The answer's headers and body if it can be given without a wait, else None."""
        try:
            with self._request(lookup, headers, peer) as (given, request_id, base):
                answers = get_attributes_now(ctx, lookup.file_id, lookup.selectors, base)
        except Exception:
            # The ASGI way answers it again, with the route's problem document or its
            # logged 500: one place decides how a failure looks.
            return None
        return None if answers is None else _answered(answers, given, request_id)

    async def _answer(
        self, lookup: _Lookup, headers: list[tuple[bytes, bytes]], peer: str | None
    ) -> _Answer | None:
        """The answer's headers and body, awaiting the read; None if it failed (the layers
        and the route answer it again, in their words)."""
        ctx = getattr(self.state, "ctx", None)
        if ctx is None:
            return None
        try:
            with self._request(lookup, headers, peer) as (given, request_id, base):
                answers = await get_attributes_async(ctx, lookup.file_id, lookup.selectors, base)
        except Exception:
            return None
        return _answered(answers, given, request_id)

    @contextmanager
    def _request(
        self, lookup: _Lookup, headers: list[tuple[bytes, bytes]], peer: str | None
    ) -> Iterator[tuple[str | None, str, str]]:
        """(the request id the client gave, the request's id, the bulk data base), the id
        set for the log records made meanwhile, as the request log layer sets it."""
        given, request_id = logs.request_id_of(headers)
        token = logs.request_id_var.set(request_id)
        try:
            base = urls.file_bulk_data_base(lookup.file_id, self.app.root_path_for(headers, peer))
            yield given, request_id, base
        finally:
            logs.request_id_var.reset(token)


class _Lookup(NamedTuple):
    file_id: str
    path: str  # as sent, for the log line
    selectors: list[str]


class _Answer(NamedTuple):
    head: list[tuple[bytes, bytes]]  # the answer's own headers, after uvicorn's
    body: bytes
    given: str | None  # the request id the client sent
    request_id: str


def _answered(answers: list[dict[str, Any]], given: str | None, request_id: str) -> _Answer:
    body = lookup_body(answers)
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", b"%d" % len(body)),
        (b"x-request-id", request_id.encode()),
    ]
    return _Answer(head, body, given, request_id)


def _done(lookup: _Lookup, answered: _Answer, started: float) -> None:
    """The request's log line and metrics, as the request log layer writes them."""
    logs.request_done(
        answered.given, answered.request_id, "GET", lookup.path, _TEMPLATE, 200, started
    )


def _plain(headers: list[tuple[bytes, bytes]], cors: bool) -> bool:
    """Whether the request has no body and, with CORS configured, no origin (CORS adds its
    headers to those on the ASGI way)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return False
        if cors and name == b"origin":
            return False
    return True


class _Answered:
    """What uvicorn finds as the connection's current request once it is answered here:
    complete, so the next request starts at once and a shutdown closes the connection."""

    response_complete = True
    disconnected = False
    message_event = asyncio.Event()  # set on disconnect; nothing waits on it


_ANSWERED = _Answered()


def _direct_answers_of(app: Any) -> DirectAnswers | None:
    """The ``DirectAnswers`` layer of what uvicorn serves, if it has one (uvicorn may wrap
    it in its own layers)."""
    for _ in range(8):
        if isinstance(app, DirectAnswers):
            return app
        app = getattr(app, "app", None)
    return None


class DirectAnsweringProtocol(CoalescingHttpToolsProtocol):
    """uvicorn's httptools protocol (writes coalesced) that answers tag lookups itself."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._direct = _direct_answers_of(self.app)

    def on_headers_complete(self) -> None:
        if self._direct is not None and self._may_answer_now():
            client = self.client[0] if self.client else None
            response = self._direct.respond(
                self.parser.get_method(),
                self.url,
                self.headers,
                client,
                self.server_state.default_headers,
            )
            if response is not None:
                # Written now: it is whole, and nothing else of this turn could join it.
                self.transport.write_now(response)  # type: ignore[attr-defined]
                self.cycle = _ANSWERED  # type: ignore[assignment]
                self.on_response_complete()
                return
        super().on_headers_complete()

    def _may_answer_now(self) -> bool:
        """Whether an answer written now keeps uvicorn's guarantees: answers in request order,
        writes held back while the client does not read, keep-alive as the request asks."""
        cycle = self.cycle
        parser = self.parser
        return (
            (cycle is None or cycle.response_complete)
            and not self.pipeline
            and not self.flow.write_paused
            and self.limit_concurrency is None
            and not self.root_path
            and parser.get_http_version() == "1.1"
            and parser.should_keep_alive()
            and not parser.should_upgrade()
        )
