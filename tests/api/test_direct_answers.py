"""Tag lookups answered by the HTTP protocol itself: the same bytes as the ASGI way, the same
log line and metrics, and every request it must not answer left to the ASGI way.

The service runs in this process (uvicorn in a thread, the protocol ``serve`` uses) so that
the answers the protocol gives can be counted: a parity test that never took the direct way
would prove nothing.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import uvicorn

from dicom_file_service.api import direct_answers, logs
from dicom_file_service.api.app import create_app
from dicom_file_service.api.direct_answers import DirectAnsweringProtocol, DirectAnswers
from dicom_file_service.api.forwarded import ProxiedRequest
from dicom_file_service.service.schema import upgrade_schema
from dicom_file_service.settings import Settings
from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import free_port, postgres_schema, require_postgres, uvicorn_in_thread
from tests.datafiles import data_file


@dataclass
class Live:
    port: int
    file_id: str
    answered: list[bytes]  # the responses the protocol wrote itself
    awaited: list[bytes]  # the bodies answered as ASGI, past the layers (reads that wait)


@contextlib.contextmanager
def _serving(settings: Settings) -> Iterator[Live]:
    """The service on ``settings``, in this process, counting the answers given each way."""
    upgrade_schema(settings)
    answered: list[bytes] = []
    awaited: list[bytes] = []
    respond, answer = DirectAnswers.respond, DirectAnswers._answer

    app = create_app(settings)
    # Counted on the class, for this service's instance only (another module-scoped service
    # may be running, its own count wrapped around this one).

    def counted(self: DirectAnswers, *args: object, **kwargs: object) -> bytes | None:
        response = respond(self, *args, **kwargs)  # type: ignore[arg-type]
        if response is not None and self is app:
            answered.append(response)
        return response

    async def counted_later(self: DirectAnswers, *args: object) -> Any:
        given = await answer(self, *args)  # type: ignore[arg-type]
        if given is not None and self is app:
            awaited.append(given.body)
        return given

    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=DirectAnsweringProtocol,
        log_level="warning",
    )
    with pytest.MonkeyPatch.context() as patch, uvicorn_in_thread(config):
        patch.setattr(DirectAnswers, "respond", counted)
        patch.setattr(DirectAnswers, "_answer", counted_later)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
            stored = c.post(
                "/dicom-image",
                content=copy_with_new_uid(data_file("CT_small.dcm")),
                headers={"content-type": "application/dicom"},
            )
            assert stored.status_code == 201
            file_id = stored.json()["file_id"]
            c.get(f"/dicom-image/{file_id}", params={"dicom_tag": "(0010,0010)"})  # warm
        yield Live(port, file_id, answered, awaited)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with _serving(Settings(data_dir=tmp_path_factory.mktemp("direct"), dicom_port=0)) as served:
        yield served


@pytest.fixture(scope="module")
def live_pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """On PostgreSQL, where every lookup's read waits: answered as ASGI, past the layers."""
    require_postgres()
    with postgres_schema() as url:
        directory = tmp_path_factory.mktemp("direct-pg")
        with _serving(Settings(data_dir=directory, dicom_port=0, database_url=url)) as served:
            yield served


def _exchange(port: int, request: bytes, answers: int = 1) -> bytes:
    """The bytes a raw connection receives for ``request`` (``answers`` responses)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while received.count(b"HTTP/1.1 ") < answers or not _complete(received, answers):
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def _complete(received: bytes, answers: int) -> bool:
    """Whether the last of ``answers`` responses has all of its body."""
    last = received.rsplit(b"HTTP/1.1 ", 1)[-1]
    head, sep, body = last.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = re.search(rb"content-length: (\d+)", head)
    if length is not None:
        return len(body) >= int(length.group(1))
    return body.endswith(b"0\r\n\r\n")


def _get(path: str, *headers: str, version: str = "1.1") -> bytes:
    lines = [f"GET {path} HTTP/{version}", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


def _comparable(response: bytes) -> bytes:
    """A response without the lines that differ between any two answers (date, our own
    request id)."""
    return re.sub(rb"date: [^\r]*\r\n|x-request-id: [0-9a-f]{32}\r\n", b"", response)


LOOKUPS = [
    "?dicom_tag=(0010,0010)",
    "?dicom_tag=PatientName&dicom_tag=(0028,0010)",
    "?dicom_tag=(7FE0,0010)",  # a bulk data URI
    "?dicom_tag=0x00100010",
    "?dicom_tag=(0008,0005)",
]


@pytest.mark.parametrize("query", LOOKUPS)
@pytest.mark.parametrize(
    "headers",
    [(), ("X-Request-ID: lookup-1",), ("X-Forwarded-Prefix: /pacs", "X-Forwarded-Proto: https")],
)
def test_a_lookup_answered_by_the_protocol_is_the_asgi_answer(
    live: Live, query: str, headers: tuple[str, ...]
) -> None:
    """The same request once on the direct way and once with an empty chunked body (which
    only the ASGI way reads): the same response, byte for byte."""
    path = f"/dicom-image/{live.file_id}{query}"
    before = len(live.answered)
    direct = _exchange(live.port, _get(path, *headers))
    assert len(live.answered) == before + 1, "the protocol did not answer it"
    routed = _exchange(
        live.port, _get(path, *headers, "Transfer-Encoding: chunked")[:-2] + b"\r\n0\r\n\r\n"
    )
    assert len(live.answered) == before + 1, "the chunked request did not go the ASGI way"
    assert direct.startswith(b"HTTP/1.1 200 OK\r\n")
    assert _comparable(direct) == _comparable(routed)
    if headers and headers[0].startswith("X-Request-ID"):
        assert b"x-request-id: lookup-1\r\n" in direct
    if "7FE0" in query and headers and "Prefix" in headers[0]:
        assert b'"bulk_data_uri":"/pacs/dicom-image/' in direct


FAILING = [
    ("/dicom-image/AAAAAAAAAAAAAAAAAAAAAA?dicom_tag=(0010,0010)", b"404"),
    ("/dicom-image/{id}?dicom_tag=(0011,0011)", b"404"),
    ("/dicom-image/{id}?dicom_tag=NotAKeyword", b"400"),
    ("/dicom-image/{id}?dicom_tag=(0010,0010)&dicom_tag=", b"400"),
]


@pytest.mark.parametrize("served", ["live", "live_pg"])
@pytest.mark.parametrize(("path", "status"), FAILING)
def test_a_failing_lookup_gets_the_routes_problem_document(
    request: pytest.FixtureRequest, served: str, path: str, status: bytes
) -> None:
    """Whichever way it would have gone (the protocol's, or past the layers where its read
    waits): through every layer to its route, which answers it in its words."""
    live: Live = request.getfixturevalue(served)
    before = (len(live.answered), len(live.awaited))
    response = _exchange(live.port, _get(path.replace("{id}", live.file_id)))
    assert response.startswith(b"HTTP/1.1 " + status)
    assert b"content-type: application/problem+json" in response
    assert (len(live.answered), len(live.awaited)) == before


def test_pipelined_lookups_keep_their_order_behind_a_request_the_asgi_way_answers(
    live: Live,
) -> None:
    first = f"/dicom-image/{live.file_id}/metadata"  # the framework's route
    lookups = [f"/dicom-image/{live.file_id}?dicom_tag={t}" for t in ("(0010,0010)", "Rows")]
    before = len(live.answered)
    received = _exchange(live.port, b"".join(_get(p) for p in [first, *lookups]), answers=3)
    parts = received.split(b"HTTP/1.1 200 OK")[1:]
    assert len(parts) == 3
    assert b'"00100010"' in parts[0]  # the metadata first
    assert b'"keyword":"PatientName"' in parts[1]
    assert b'"keyword":"Rows"' in parts[2]
    assert len(live.answered) == before  # queued behind the first: the ASGI way
    received = _exchange(live.port, b"".join(_get(p) for p in lookups), answers=2)
    assert received.index(b"PatientName") < received.index(b'"Rows"')
    assert len(live.answered) == before + 2  # nothing in front of them: answered directly


def test_an_http_1_0_lookup_is_answered_and_closed_the_asgi_way(live: Live) -> None:
    before = len(live.answered)
    path = f"/dicom-image/{live.file_id}?dicom_tag=(0010,0010)"
    received = _exchange(live.port, _get(path, version="1.0"))
    assert received.startswith(b"HTTP/1.1 200 OK") and b"connection: close" in received
    assert len(live.answered) == before


def test_direct_answers_are_logged_and_counted(live: Live) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{live.port}", timeout=30) as c:

        def count() -> float:
            text = c.get("/metrics").text
            line = re.search(
                r'dicom_fs_requests_total\{method="GET",route="/dicom-image/\{file_id\}",'
                r'status="200"\} ([0-9.e+]+)',
                text,
            )
            return float(line.group(1)) if line else 0.0

        before, answered = count(), len(live.answered)
        for _ in range(5):
            r = c.get(f"/dicom-image/{live.file_id}", params={"dicom_tag": "(0010,0010)"})
            assert r.status_code == 200
        assert len(live.answered) == answered + 5
        assert count() == before + 5


def test_the_request_line_of_a_direct_answer(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    handler = logs.request_lines.handler
    assert handler is not None
    written = io.StringIO()
    monkeypatch.setattr(handler, "stream", written)
    path = f"/dicom-image/{live.file_id}?dicom_tag=(0010,0010)"
    _exchange(live.port, _get(path, "X-Request-ID: line-check-7"))
    deadline = time.monotonic() + 5
    while "line-check-7" not in written.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    seen = written.getvalue()
    line = next(line for line in seen.splitlines() if "line-check-7" in line)
    assert '"route":"/dicom-image/{file_id}"' in line
    assert '"status":200' in line
    assert f'"file_id":"{live.file_id}"' in line
    assert "(0010,0010)" not in line  # the query is not logged


def test_requests_it_must_not_answer_are_left_to_the_asgi_way() -> None:
    """Checked on ``respond`` itself: each is declined before the index is touched."""
    proxied = ProxiedRequest(None, (), None)  # type: ignore[arg-type]
    state = SimpleNamespace(ctx=object())  # reaching the lookup would raise, not decline
    direct = DirectAnswers(proxied, state, cors=True)
    url = b"/dicom-image/AAAAAAAAAAAAAAAAAAAAAA?dicom_tag=(0010,0010)"
    cases = [
        (b"HEAD", url, []),
        (b"POST", url, []),
        (b"GET", url, [(b"origin", b"https://viewer.example")]),  # CORS adds its headers
        (b"GET", url, [(b"content-length", b"3")]),
        (b"GET", url, [(b"transfer-encoding", b"chunked")]),
        (b"GET", b"/dicom-image/AAAAAAAAAAAAAAAAAAAAAA/png?dicom_tag=(0010,0010)", []),
        (b"GET", b"/dicom-image/A%41AAAAAAAAAAAAAAAAAAAAA?dicom_tag=(0010,0010)", []),
        (b"GET", b"/dicom-image/AAAAAAAAAAAAAAAAAAAAAA?xdicom_tag=1", []),
        (b"GET", b"/dicomweb/studies?dicom_tag=(0010,0010)", []),
    ]
    for method, target, headers in cases:
        assert direct.respond(method, target, headers, "127.0.0.1", []) is None
    # Before the service has started there is nothing to answer from.
    assert (
        DirectAnswers(proxied, SimpleNamespace(), cors=False).respond(
            b"GET", url, [], "127.0.0.1", []
        )
        is None
    )
    assert direct_answers._direct_answers_of(SimpleNamespace(app=direct)) is direct


@pytest.mark.parametrize("query", LOOKUPS)
@pytest.mark.parametrize("headers", [(), ("X-Request-ID: lookup-2", "X-Forwarded-Prefix: /pacs")])
def test_a_lookup_whose_read_waits_is_answered_as_the_layers_would(
    live_pg: Live, query: str, headers: tuple[str, ...]
) -> None:
    """On PostgreSQL the protocol cannot answer (the read waits): the lookup is answered as
    ASGI without the layers, in the bytes the layers and the route give a chunked request."""
    path = f"/dicom-image/{live_pg.file_id}{query}"
    before = len(live_pg.awaited)
    direct = _exchange(live_pg.port, _get(path, *headers))
    assert len(live_pg.awaited) == before + 1, "not answered past the layers"
    assert not live_pg.answered, "the protocol answered a read that waits"
    routed = _exchange(
        live_pg.port, _get(path, *headers, "Transfer-Encoding: chunked")[:-2] + b"\r\n0\r\n\r\n"
    )
    assert len(live_pg.awaited) == before + 1, "the chunked request did not go through them"
    assert direct.startswith(b"HTTP/1.1 200 OK\r\n")
    assert _comparable(direct) == _comparable(routed)
    if headers:
        assert b"x-request-id: lookup-2\r\n" in direct
    if "7FE0" in query and headers:
        assert b'"bulk_data_uri":"/pacs/dicom-image/' in direct


def test_lookups_whose_read_waits_keep_their_order_and_are_counted(live_pg: Live) -> None:
    """Pipelined behind the framework's route and each other, in order; each in the
    metrics as the request log layer counts it."""
    first = f"/dicom-image/{live_pg.file_id}/metadata"
    lookups = [f"/dicom-image/{live_pg.file_id}?dicom_tag={t}" for t in ("(0010,0010)", "Rows")]
    before = len(live_pg.awaited)
    received = _exchange(live_pg.port, b"".join(_get(p) for p in [first, *lookups]), answers=3)
    parts = received.split(b"HTTP/1.1 200 OK")[1:]
    assert len(parts) == 3
    assert b'"00100010"' in parts[0]
    assert b'"keyword":"PatientName"' in parts[1]
    assert b'"keyword":"Rows"' in parts[2]
    assert len(live_pg.awaited) == before + 2
    with httpx.Client(base_url=f"http://127.0.0.1:{live_pg.port}", timeout=30) as c:
        metrics = c.get("/metrics").text
    assert re.search(
        r'dicom_fs_requests_total\{method="GET",route="/dicom-image/\{file_id\}",'
        r'status="200"\} ([0-9.e+]+)',
        metrics,
    )
