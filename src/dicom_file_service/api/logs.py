"""Logs an operator's tools can read, and that never carry patient data.

One JSON line per request (``method``, ``route`` — the template, never the path, which holds
UIDs —, ``status``, ``duration_ms``, ``request_id``, ``file_id`` where the route has one),
and every other record of the service as a JSON line too, errors with their stack. The
request id comes from ``X-Request-ID`` when the client sends one, else is made here, and is
sent back in the response's ``X-Request-ID``. Anything shaped like a UID in a message or a
stack is masked, as a last guard: a log line must never name a patient's study.

``DICOM_FS_LOG_FORMAT=text`` keeps plain lines for a terminal (``auto``, the default: text on
a terminal, JSON otherwise).

The request lines skip the ``logging`` machinery (a record, a formatter and a locked write
each, about a third of a tag lookup's own time): each line is made with orjson and kept until
the event loop's current turn ends, then the turn's lines go out in one write, under the
handler's lock so they never interleave with other records. An idle service writes each line
at once; a busy one writes a few dozen per system call.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import re
import secrets
import sys
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicom_file_service import metrics

log = logging.getLogger("dicom_file_service.requests")
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)
# What a route learns that the request's line should carry (the id of an uploaded file): a
# dict the route fills in, so that it reaches the line from threads too.
_noted: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "noted", default=None
)


def note(**fields: Any) -> None:
    """Add fields (never patient data) to the current request's log line."""
    noted = _noted.get()
    if noted is not None:
        noted.update(fields)


_UID = re.compile(r"\b[0-2](?:\.(?:0|[1-9][0-9]*)){3,}\b")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_FILE_ROUTE = re.compile(r"^/dicom-image/([A-Za-z0-9_-]{22})(?:/|$)")
_STANDARD = set(vars(logging.makeLogRecord({})))


def scrub(text: str) -> str:
    """UIDs masked: they identify a patient's studies, series and images."""
    return _UID.sub("<uid>", text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": scrub(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            line["stack"] = scrub(self.formatException(record.exc_info))
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


_MAX_PENDING_LINES = 256


class RequestLines:
    """The request lines of this process, written once per turn of the event loop."""

    def __init__(self) -> None:
        self.handler: logging.StreamHandler[Any] | None = None
        self.json = True
        self._pending: list[str] = []

    def add(self, fields: dict[str, Any]) -> None:
        if self.handler is None or not log.isEnabledFor(logging.INFO):
            return
        if self.json:
            line = orjson.dumps(
                {
                    "time": round(time.time(), 3),
                    "level": "info",
                    "logger": log.name,
                    "message": "request",
                    **fields,
                }
            ).decode()
        else:
            line = (
                f"{time.strftime('%Y-%m-%d %H:%M:%S')} INFO {log.name} {fields['method']} "
                f"{fields['route']} {fields['status']} {fields['duration_ms']} ms "
                f"{fields['request_id']}"
            )
        if not self._pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop (a test calling the app by hand): write now
                self._pending.append(line)
                self.flush()
                return
        self._pending.append(line)
        if len(self._pending) >= _MAX_PENDING_LINES:  # a turn that never ends: bounded
            self.flush()

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        handler = self.handler
        if not lines or handler is None:
            return
        handler.acquire()
        try:
            handler.stream.write("\n".join(lines) + "\n")
            handler.stream.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing else to tell it to
            pass
        finally:
            handler.release()


request_lines = RequestLines()


def configure(log_format: str, level: str = "INFO") -> None:
    """The service's records (``dicom_file_service.*``) to stderr, in the chosen format."""
    use_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger("dicom_file_service")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    request_lines.flush()
    request_lines.handler = handler
    request_lines.json = use_json


# Request ids made here: a random prefix per process and a counter (uuid4 costs a system
# call per request); 32 hex digits like a UUID's, unique across processes and restarts.
_ID_PREFIX = secrets.token_hex(10)
_ID_COUNTER = itertools.count(1)


def _new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFF:012x}"


class RequestLog:
    """The outermost wrapper: the request id for everything below it, and the request's line
    once the answer is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given, request_id = request_id_of(scope["headers"])
        token = request_id_var.set(request_id)
        noted: dict[str, Any] = {}
        noted_token = _noted.set(noted)
        started = time.perf_counter()
        status = 500
        id_header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), id_header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            path: str = scope["path"]
            route = scope.get("route")
            template = getattr(route, "path", None) or _fast_template(path)
            request_done(given, request_id, scope["method"], path, template, status, started, noted)
            _noted.reset(noted_token)
            request_id_var.reset(token)


def request_id_of(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str]:
    """(the id the client sent, or None; the request's id: the client's if well formed, else
    a new one)."""
    raw_id = next((v for k, v in headers if k == b"x-request-id"), None)
    given = raw_id.decode("latin-1") if raw_id is not None else None
    return given, given if given is not None and _REQUEST_ID.match(given) else _new_request_id()


def request_done(
    given: str | None,
    request_id: str,
    method: str,
    path: str,
    template: str,
    status: int,
    started: float,
    noted: dict[str, Any] | None = None,
) -> None:
    """The request's log line and its metrics, once its answer is sent (``started``: its
    ``time.perf_counter()`` when it came)."""
    seconds = time.perf_counter() - started
    fields: dict[str, Any] = {
        # A client's own id is its text: masked like any other (ours are hex).
        "request_id": scrub(request_id) if given is not None else request_id,
        "method": method,
        "route": template,
        "status": status,
        "duration_ms": round(seconds * 1000, 2),
    }
    match = _FILE_ROUTE.match(path)
    if match:
        fields["file_id"] = match.group(1)
    for key, value in (noted or {}).items():
        fields[key] = scrub(value) if isinstance(value, str) else value
    request_lines.add(fields)
    metrics.REQUEST_TALLY.record(method, template, status, seconds)


def _fast_template(path: str) -> str:
    """The template of a path answered without the router (the fast paths), or "unmatched"."""
    if _FILE_ROUTE.match(path):
        return "/dicom-image/{file_id}/png" if path.endswith("/png") else "/dicom-image/{file_id}"
    return "/dicom-image" if path == "/dicom-image" else "unmatched"
