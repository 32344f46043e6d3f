"""uvicorn's HTTP protocol with a response's small writes joined into one socket write.

uvicorn writes a response's head as soon as the app sends ``http.response.start`` and its body
when the app sends it: two ``write`` system calls for a tag lookup's few hundred bytes, and two
wake-ups of the client, which on a small machine shares the cores with us. Here small writes
made in one turn of the event loop are kept and written together at the end of that turn
(``call_soon``): a response sent in one go (every fast-path answer, every JSON answer) leaves
in one write, and nothing waits longer than the turn that wrote it. A large write, a close and
an end of file first write what is kept, in order.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Writes up to this size are kept for the end of the turn; a larger one goes at once.
SMALL_WRITE = 16 * 1024


class CoalescingTransport:
    """A transport that joins the small writes of one event-loop turn (see the module)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []
        self._kept_size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        size = len(data)
        if size > SMALL_WRITE or self._kept_size + size > SMALL_WRITE:
            self.flush()
            self._transport.write(data)
            return
        if not self._kept:
            self._loop.call_soon(self.flush)
        self._kept.append(bytes(data))
        self._kept_size += size

    def write_now(self, data: bytes) -> None:
        """Write ``data`` at once, after what is kept (a whole response, nothing to join)."""
        self.flush()
        self._transport.write(data)

    def flush(self) -> None:
        """Write what is kept (once per turn; again at once before a large write or close)."""
        if self._kept:
            data = self._kept[0] if len(self._kept) == 1 else b"".join(self._kept)
            self._kept.clear()
            self._kept_size = 0
            if not self._transport.is_closing():
                self._transport.write(data)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._kept.clear()
        self._kept_size = 0
        self._transport.abort()

    def is_closing(self) -> bool:  # asked after every response: not through __getattr__
        return self._transport.is_closing()

    def get_write_buffer_size(self) -> int:
        return self._kept_size + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:
        # Everything else (get_extra_info, is_closing, pause_reading, set_protocol, ...) is
        # the socket transport's own.
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a ``CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(
            CoalescingTransport(transport, self.loop)  # type: ignore[arg-type]
        )
