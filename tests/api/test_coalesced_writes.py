"""The HTTP protocol that joins a response's small writes: what reaches the socket, in what
order, and that real responses through uvicorn (small, streamed, large, kept alive) arrive
whole and in order."""

from __future__ import annotations

import asyncio
import http.client
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from dicom_file_service.api.coalesced_writes import (
    SMALL_WRITE,
    CoalescingHttpToolsProtocol,
    CoalescingTransport,
)
from tests.conftest import free_port, uvicorn_in_thread


class SocketTransport(asyncio.Transport):
    """Stands in for the socket's transport: records each write as the kernel would see it."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default


def test_small_writes_of_one_turn_leave_in_one_write() -> None:
    async def scenario() -> list[bytes]:
        inner = SocketTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(memoryview(b"body"))
        assert inner.writes == []  # kept until the turn ends
        assert transport.get_write_buffer_size() == len(b"HTTP/1.1 200 OK\r\n\r\nbody")
        await asyncio.sleep(0)
        transport.write(b"next")
        await asyncio.sleep(0)
        return inner.writes

    assert asyncio.run(scenario()) == [b"HTTP/1.1 200 OK\r\n\r\nbody", b"next"]


def test_a_large_write_goes_at_once_after_what_was_kept() -> None:
    async def scenario() -> list[bytes]:
        inner = SocketTransport()
        transport = CoalescingTransport(inner, asyncio.get_running_loop())
        large = b"x" * (SMALL_WRITE + 1)
        transport.write(b"head")
        transport.write(large)
        assert inner.writes == [b"head", large]
        transport.write(b"a" * (SMALL_WRITE - 2))
        transport.write(b"bcd")  # would pass the limit: what is kept goes first
        await asyncio.sleep(0)
        return inner.writes[2:]

    assert asyncio.run(scenario()) == [b"a" * (SMALL_WRITE - 2), b"bcd"]


def test_close_and_end_of_file_write_what_is_kept_first_and_abort_drops_it() -> None:
    async def scenario() -> tuple[SocketTransport, SocketTransport]:
        loop = asyncio.get_running_loop()
        closed, aborted = SocketTransport(), SocketTransport()
        first = CoalescingTransport(closed, loop)
        first.write(b"last words")
        first.close()
        assert closed.writes == [b"last words"] and closed.closed
        second = CoalescingTransport(aborted, loop)
        second.write(b"never sent")
        second.abort()
        await asyncio.sleep(0)  # the turn's flush finds nothing
        return closed, aborted

    closed, aborted = asyncio.run(scenario())
    assert closed.writes == [b"last words"]
    assert aborted.writes == [] and aborted.aborted


def test_everything_else_is_the_socket_transports() -> None:
    async def scenario() -> None:
        transport = CoalescingTransport(SocketTransport(), asyncio.get_running_loop())
        assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
        assert not transport.is_closing()

    asyncio.run(scenario())


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/small":
        body = b'{"tag":"(0010,0010)"}'
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif path == "/streamed":  # chunked, with the loop turning between the pieces
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for n in range(50):
            await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"%03d," % n, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:  # large: bigger than the limit, after a small head
        body = bytes(range(256)) * 8192
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=CoalescingHttpToolsProtocol, log_level="warning"
    )
    with uvicorn_in_thread(config):
        yield port


def test_responses_arrive_whole_and_in_order_on_one_kept_alive_connection(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(3):
        for path, expected in [
            ("/small", b'{"tag":"(0010,0010)"}'),
            ("/streamed", b"".join(b"%03d," % n for n in range(50))),
            ("/large", bytes(range(256)) * 8192),
        ]:
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == expected
    conn.close()


def test_pipelined_requests_get_their_answers_in_order(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n" * 3
            + b"GET /small HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 4
    assert received.count(b'{"tag":"(0010,0010)"}') == 4
