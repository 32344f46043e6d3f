"""The listening socket and its associations: pynetdicom's server, made fit for an archive.

pynetdicom's defaults suit a tool, not a service: no TCP_NODELAY (a C-GET of 500 small
instances then waits on delayed ACKs, ~45 s instead of under 1 s), a listen backlog of 5,
accepted sockets without a timeout (a peer that announces a PDU and goes quiet holds a thread
for ever), a PDU read whole into memory whatever length it announces (4 GiB), and a deep copy
of every supported presentation context for each association (tens of milliseconds with every
storage class in every transfer syntax). Here, each accepted socket gets TCP_NODELAY and the
network timeout, a PDU longer than the limit ends the association before its bytes are read,
and the supported contexts are shared: negotiation reads them and builds its own results.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import ssl
import threading
from datetime import datetime
from typing import Any, cast

from pynetdicom import evt
from pynetdicom.ae import ApplicationEntity
from pynetdicom.association import Association
from pynetdicom.transport import (
    AssociationSocket,
    RequestHandler,
    ThreadedAssociationServer,
)
from pynetdicom.utils import make_target

from dicom_file_service.network.acceptor import ArchiveAssociation

log = logging.getLogger(__name__)

_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only
ASSOCIATE_PDU_LIMIT = 256 * 1024
"""Largest A-ASSOCIATE or other non-data PDU read: generous for 128 contexts and user data."""


class GuardedSocket(AssociationSocket):
    """An association's socket that refuses to read a PDU longer than the limit: the
    association then ends as if the peer had closed it, having held at most one read."""

    max_read: int = ASSOCIATE_PDU_LIMIT
    max_data_set: int | None = None

    wait_seconds = 0.05

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The reactor thread reads and writes; a handler sending answers in bulk
        # (``write_now``) writes from the association's thread. One at a time: an SSL
        # connection may not be read and written by two threads at once.
        self._io = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    def wake(self) -> None:
        """End the reactor's wait in ``ready``: something was queued for it to do."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    @property
    def ready(self) -> bool:
        """Whether a PDU can be read, having waited for one (or for ``wake``) at most
        ``wait_seconds``.

        pynetdicom's reactor asks with no wait and sleeps a millisecond between empty turns:
        a thousand wake-ups a second per association, each taking the GIL from the threads
        doing the work (measured: a quarter of the listener's samples under 4 storing
        associations). Here it sleeps in ``select`` until the peer sends, its own side queues a
        PDU to send (``wake``), or its timers are due to be looked at.
        """
        sock = self.socket
        if sock is None or self._is_connected is False:
            return False
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # decrypted bytes that select cannot see
        try:
            ready, _, _ = select.select([sock, self._wake_r], [], [], self.wait_seconds)
        except (OSError, TimeoutError, ValueError):
            self.event_queue.put("Evt17")
            return False
        if self._wake_r in ready:
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
        return sock in ready

    def close(self) -> None:
        super().close()
        for end in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                end.close()

    def send(self, bytestream: bytes) -> None:
        with self._io:
            super().send(bytestream)

    def write_now(self, data: bytes) -> bool:
        """Write ``data`` (whole PDUs) from the calling thread, past the reactor's queue;
        False when the connection is gone (the reactor is told, as by a failed send)."""
        with self._io:
            try:
                cast(socket.socket, self.socket).sendall(data)
            except (OSError, AttributeError):
                self.event_queue.put("Evt17")
                return False
        return True

    def recv(self, nr_bytes: int) -> bytearray:
        with self._io:
            return self._guarded_recv(nr_bytes)

    def _guarded_recv(self, nr_bytes: int) -> bytearray:
        if self.socket is not None and _QUICKACK is not None:
            # Acknowledge at once, not after the kernel's delayed-ACK timer: a client that
            # leaves Nagle's algorithm on (pynetdicom's SCU does) sends a message's second
            # small PDU only once its first is acknowledged, and waits ~40 ms per message
            # otherwise (measured: 13 C-STOREs/s on one association, 139 with this).
            with contextlib.suppress(OSError):
                self.socket.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        if nr_bytes > self.max_read:
            log.warning(
                "a PDU of %d bytes announced, more than the %d this listener reads: "
                "association closed",
                nr_bytes,
                self.max_read,
            )
            raise OSError(f"PDU of {nr_bytes} bytes refused")
        self._refuse_oversized_data_set()
        return super().recv(nr_bytes)

    def _refuse_oversized_data_set(self) -> None:
        """A C-STORE data set past the upload limit ends the association while it arrives
        (pynetdicom writes it to a file of its own, which would otherwise grow to whatever
        the peer sends); the partial file is removed when the association closes."""
        if self.max_data_set is None or self.assoc is None:
            return
        receiving = getattr(getattr(self.assoc.dimse, "message", None), "_data_set_file", None)
        if receiving is not None and receiving.tell() > self.max_data_set:
            log.warning(
                "a C-STORE data set passed %d bytes, the limit (DICOM_FS_MAX_UPLOAD_BYTES): "
                "association closed",
                self.max_data_set,
            )
            raise OSError("data set too large")


class ArchiveRequestHandler(RequestHandler):
    """Creates each association as pynetdicom does, with the guarded socket and the shared
    supported contexts."""

    server: ArchiveServer

    def _create_association(self) -> Association:
        assoc = ArchiveAssociation(self.ae, "acceptor")
        assoc._server = self.server
        assoc.name = f"AcceptorThread@{datetime.now():%Y%m%d%H%M%S}"
        sock = GuardedSocket(assoc, client_socket=self.request)
        sock.max_read = max(ASSOCIATE_PDU_LIMIT, self.server.max_pdu + 6)
        sock.max_data_set = self.server.max_data_set
        assoc.set_socket(sock)
        _wake_reactor_on_work(assoc, sock)
        assoc.acceptor.maximum_length = self.ae.maximum_pdu_size
        assoc.acceptor.ae_title = self.server.ae_title
        assoc.acceptor.address_info = self.local
        assoc.acceptor.implementation_class_uid = self.ae.implementation_class_uid
        assoc.acceptor.implementation_version_name = self.ae.implementation_version_name
        assoc.acceptor._contexts = self.server.contexts  # read, never changed, by negotiation
        assoc.requestor.address_info = self.remote
        for event, bound in self.server._handlers.items():
            if event.is_intervention and bound:
                assoc.bind(event, *bound)
            elif isinstance(event, evt.NotificationEvent):
                for handler, args in cast(list[tuple[Any, Any]], bound):
                    assoc.bind(event, handler, args)
        return assoc


def _wake_reactor_on_work(assoc: Association, sock: GuardedSocket) -> None:
    """The association's reactor waits in ``sock.ready`` instead of sleeping between turns,
    and is woken when a PDU is queued for it to send or it is told to stop."""
    dul = assoc.dul
    dul._run_loop_delay = 0
    queue = dul.to_provider_queue
    put = queue.put

    def put_and_wake(item: Any, block: bool = True, timeout: float | None = None) -> None:
        put(item, block, timeout)
        sock.wake()

    queue.put = put_and_wake  # type: ignore[method-assign]
    kill = dul.kill_dul

    def kill_and_wake() -> None:
        kill()
        sock.wake()

    dul.kill_dul = kill_and_wake  # type: ignore[method-assign]


class ArchiveServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with a real backlog, TCP_NODELAY and socket timeouts."""

    request_queue_size = 128
    max_pdu = 16382
    max_data_set: int | None = None
    socket_timeout: float | None = 60.0

    def get_request(self) -> tuple[socket.socket, Any]:
        assert self.socket is not None
        client, address = self.socket.accept()
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(self.socket_timeout)
        if self.ssl_context:
            # The handshake runs in the association's thread (on its first read), not here:
            # a client that never completes one must not stop the accept loop.
            client = self.ssl_context.wrap_socket(
                client, server_side=True, do_handshake_on_connect=False
            )
        return client, address


def start_server(
    ae: ApplicationEntity,
    address: tuple[str, int],
    *,
    handlers: list[Any],
    backlog: int,
    socket_timeout: float,
    max_data_set: int | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> ArchiveServer:
    """Bind and serve ``ae``'s supported contexts on ``address`` in a thread of its own."""
    server_class = type(
        "ConfiguredArchiveServer",
        (ArchiveServer,),
        {
            "request_queue_size": backlog,
            "max_pdu": ae.maximum_pdu_size,
            "socket_timeout": socket_timeout,
            "max_data_set": max_data_set,
        },
    )
    server = ae.make_server(
        address,
        ae_title=ae.ae_title,
        contexts=ae.supported_contexts,
        ssl_context=ssl_context,
        evt_handlers=handlers,
        server_class=server_class,
        request_handler=ArchiveRequestHandler,
    )
    assert isinstance(server, ArchiveServer)
    thread = threading.Thread(
        target=make_target(server.serve_forever), name=f"dimse-listener-{address[1]}"
    )
    thread.daemon = True
    thread.start()
    ae._servers.append(server)
    return server
