"""The DICOM listener: the archive's Application Entity, its handlers, limits and lifecycle.

Run by ``dicom-file-service dimse`` in a process of its own (``serve`` starts one beside its
HTTP workers), so a handler never holds up an HTTP event loop: each association runs in a
thread, over the one ``ServiceContext`` of the process (its index pool, store and parsers).

pynetdicom receives each C-STORE's data set into a temporary file; they are made in a
directory of the scratch area of their own, emptied at start, and a file left by an association
that ended mid-transfer (abort, closed connection) is removed when it ends: such a transfer
stores nothing.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import ssl
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pynetdicom import _config, evt
from pynetdicom.ae import ApplicationEntity

from dicom_file_service import metrics
from dicom_file_service.dicom.part10 import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from dicom_file_service.network.contexts import supported_contexts
from dicom_file_service.network.find_scp import handle_find
from dicom_file_service.network.retrieve_scp import handle_get, handle_move
from dicom_file_service.network.server import ArchiveServer, start_server
from dicom_file_service.network.statuses import PROCESSING_FAILURE, status
from dicom_file_service.network.store_scp import handle_echo, handle_store
from dicom_file_service.service import sending
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.settings import Settings

log = logging.getLogger(__name__)


def make_ae(settings: Settings) -> ApplicationEntity:
    """The archive's AE with its contexts, limits and timeouts from the settings."""
    ae = ApplicationEntity(ae_title=settings.ae_title)
    ae.implementation_class_uid = IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = IMPLEMENTATION_VERSION_NAME
    for cx in supported_contexts():  # one by one: the list setter drops role selection
        ae.add_supported_context(
            str(cx.abstract_syntax),
            cx.transfer_syntax,
            scu_role=cx.scu_role,
            scp_role=cx.scp_role,
        )
    ae.maximum_associations = settings.dicom_max_associations
    ae.maximum_pdu_size = settings.dicom_max_pdu_bytes
    ae.acse_timeout = settings.dicom_acse_timeout_seconds
    ae.dimse_timeout = settings.dicom_dimse_timeout_seconds
    ae.network_timeout = settings.dicom_network_timeout_seconds
    ae.connection_timeout = settings.dicom_network_timeout_seconds
    return ae


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """TLS for the secure port (PS3.15 B.1: TLS 1.2 or later), client certificates required
    when a CA bundle names who may connect; None when no certificate is configured."""
    if settings.dicom_tls_cert is None or settings.dicom_tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.dicom_tls_cert, settings.dicom_tls_key)
    if settings.dicom_tls_client_ca is not None:
        context.load_verify_locations(settings.dicom_tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class DicomListener:
    """The listener of one process: its AE and servers (plain, and TLS when configured)."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.ae = make_ae(ctx.settings)
        self.servers: list[ArchiveServer] = []
        self._received = ctx.settings.resolved_scratch_dir() / "dimse"

    def start(self, host: str) -> None:
        settings = self.ctx.settings
        self._prepare_receiving()
        sending.install()
        if settings.dicom_port:
            self._serve(host, settings.dicom_port, None)
        context = tls_context(settings)
        if context is not None and settings.dicom_tls_port:
            self._serve(host, settings.dicom_tls_port, context)

    def _serve(self, host: str, port: int, context: ssl.SSLContext | None) -> None:
        server = start_server(
            self.ae,
            (host, port),
            handlers=self._handlers(),
            backlog=self.ctx.settings.dicom_listen_backlog,
            socket_timeout=self.ctx.settings.dicom_network_timeout_seconds,
            max_data_set=self.ctx.settings.max_upload_bytes,
            ssl_context=context,
        )
        self.servers.append(server)
        log.info(
            "DICOM listener started",
            extra={
                "ae_title": self.ae.ae_title,
                "port": server.server_address[1],
                "tls": context is not None,
            },
        )

    def _prepare_receiving(self) -> None:
        """C-STORE data sets arrive in the scratch area (same disk as uploads), in a directory
        emptied now: what is there was left by a process that stopped mid-transfer."""
        shutil.rmtree(self._received, ignore_errors=True)
        self._received.mkdir(parents=True, exist_ok=True)
        tempfile.tempdir = str(self._received)
        _config.STORE_RECV_CHUNKED_DATASET = True
        # Identifiers and data sets are not logged (patient data); our own records say what
        # happened. pynetdicom's are errors only.
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False
        logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)

    def _handlers(self) -> list[Any]:
        ctx = self.ctx
        return [
            (evt.EVT_C_ECHO, _guarded(handle_echo, "echo"), [ctx]),
            (evt.EVT_C_STORE, _guarded(handle_store, "store"), [ctx]),
            (evt.EVT_C_FIND, handle_find, [ctx]),
            (evt.EVT_C_GET, handle_get, [ctx]),
            (evt.EVT_C_MOVE, handle_move, [ctx]),
            (evt.EVT_ACCEPTED, _on_accepted),
            (evt.EVT_REJECTED, _on_outcome("rejected")),
            (evt.EVT_RELEASED, _on_outcome("released")),
            (evt.EVT_ABORTED, _on_outcome("aborted")),
            (evt.EVT_CONN_CLOSE, _on_closed),
        ]

    def stop(self) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                server.shutdown()
        self.servers.clear()

    @property
    def ports(self) -> list[int]:
        return [int(s.server_address[1]) for s in self.servers]


def _guarded(handler: Callable[..., Any], operation: str) -> Callable[..., Any]:
    """A handler whose unexpected failure is logged (ours, with its traceback: it is a bug)
    and answered as a processing failure; the association goes on."""

    def run(event: Any, ctx: ServiceContext) -> Any:
        try:
            return handler(event, ctx)
        except Exception:
            log.exception("the %s handler failed", operation)
            metrics.DIMSE_OPERATIONS.labels(operation, f"{PROCESSING_FAILURE:04X}").inc()
            return status(PROCESSING_FAILURE, "the archive failed to process the request")

    run.__name__ = handler.__name__
    return run


def _peer(event: Any) -> dict[str, Any]:
    requestor = event.assoc.requestor
    return {"calling_ae": requestor.ae_title, "peer": requestor.address}


def _on_accepted(event: Any) -> None:
    metrics.DIMSE_ASSOCIATIONS.labels("accepted").inc()
    log.info(
        "association accepted",
        extra={**_peer(event), "contexts": len(event.assoc.accepted_contexts)},
    )


def _on_outcome(outcome: str) -> Callable[[Any], None]:
    def record(event: Any) -> None:
        metrics.DIMSE_ASSOCIATIONS.labels(outcome).inc()
        log.info(f"association {outcome}", extra=_peer(event))

    return record


def _on_closed(event: Any) -> None:
    """Remove the data set file of a C-STORE the association ended in the middle of."""
    message = getattr(event.assoc.dimse, "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is not None:
        with contextlib.suppress(OSError):
            partial.close()
            Path(partial.name).unlink()
        log.info("a C-STORE ended mid-transfer: nothing stored", extra=_peer(event))


def run_forever(ctx: ServiceContext, host: str, stop: threading.Event) -> DicomListener:
    """Start the listener and wait until ``stop`` is set; returns it stopped."""
    listener = DicomListener(ctx)
    listener.start(host)
    try:
        stop.wait()
    finally:
        listener.stop()
    return listener
