"""Sending stored instances by C-STORE, byte for byte: the listener's C-MOVE and C-GET
(``network``) and the sending jobs (``service.dimse_scu``) alike.

pynetdicom's retrieve handlers take a pydicom Dataset for each sub-operation and encode it
again, which may change bytes (odd lengths, undefined lengths, a value pydicom would write
another way) and decodes the whole instance in memory. An archive sends what it stored. So a
handler yields an ``OutgoingInstance``, a Dataset carrying only the two UIDs pynetdicom reads,
and ``Association.send_c_store`` is wrapped once, in the listener's process, to send such an
instance from a file instead: its stored bytes when the receiver accepted their transfer
syntax, else transcoded (``service.retrieve``), streamed by pynetdicom's chunked send.
``proposed_contexts`` is what a requestor proposes to send such instances.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _config
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context

from dicom_file_service import metrics
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.retrieve import instance_file

log = logging.getLogger(__name__)
_installed = threading.Lock()
_original_send = Association.send_c_store
MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1-255
LITTLE_ENDIAN = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]  # Explicit, Implicit VR


class OutgoingInstance(Dataset):
    """A stored instance on its way out: the UIDs pynetdicom reads, and where its bytes are."""

    def __init__(self, ctx: ServiceContext, record: InstanceRecord) -> None:
        super().__init__()
        self.SOPClassUID = record.sop_class_uid
        self.SOPInstanceUID = record.sop_instance_uid
        self._outgoing = (ctx, record)


def accepted_syntaxes(assoc: Association, sop_class_uid: str) -> list[str]:
    """The transfer syntaxes ``assoc`` may send instances of ``sop_class_uid`` in, as the
    Storage SCU: its own proposals when requestor, the peer's SCP role when C-GET's acceptor."""
    out = []
    for cx in assoc.accepted_contexts:
        if cx.abstract_syntax == sop_class_uid and cx.as_scu:
            out.append(str(cx.transfer_syntax[0]))
    return list(dict.fromkeys(out))


def _no_delay(assoc: Association) -> None:
    """TCP_NODELAY on the association's socket (the one a C-MOVE or a sending job opened):
    with Nagle's algorithm on, each C-STORE waits on the peer's delayed ACK (measured: a
    C-MOVE of 200 instances 9.8 s with it, 1.1 s without)."""
    raw = getattr(getattr(assoc.dul, "socket", None), "socket", None)
    if raw is not None:
        with contextlib.suppress(OSError):
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _send_c_store(self: Association, dataset: Any, *args: Any, **kwargs: Any) -> Dataset:
    if not isinstance(dataset, OutgoingInstance):
        return _original_send(self, dataset, *args, **kwargs)
    ctx, record = dataset._outgoing
    _no_delay(self)
    try:
        with instance_file(ctx, record, accepted_syntaxes(self, record.sop_class_uid)) as path:
            answer = _original_send(self, path, *args, **kwargs)
    except Exception as exc:
        metrics.DIMSE_SENT_INSTANCES.labels("failed").inc()
        log.warning("an instance was not sent: %s", getattr(exc, "detail", exc))
        raise
    metrics.DIMSE_SENT_INSTANCES.labels("sent").inc()
    return answer


def install() -> None:
    """Send ``OutgoingInstance``s from their files (idempotent; the listener's process and the
    sending jobs call it before they send)."""
    with _installed:
        _config.STORE_SEND_CHUNKED_DATASET = True
        Association.send_c_store = _send_c_store  # type: ignore[method-assign]


def proposed_contexts(records: list[InstanceRecord]) -> list[PresentationContext]:
    """What a requestor proposes to send ``records``: each SOP class in each stored syntax
    (a context of its own, so it is sent as stored), and in Explicit and Implicit VR Little
    Endian (one context) for what must be transcoded; past ``MAX_CONTEXTS``, only the
    latter, for the first ``MAX_CONTEXTS`` SOP classes."""
    wanted: dict[str, list[str]] = {}
    for record in records:
        syntaxes = wanted.setdefault(record.sop_class_uid, [])
        if record.transfer_syntax_uid not in syntaxes:
            syntaxes.append(record.transfer_syntax_uid)
    contexts = []
    for sop_class, syntaxes in wanted.items():
        # Each stored syntax alone (Explicit VR Little Endian too: offered with Implicit, an
        # acceptor may well pick Implicit), then both Little Endians for what is transcoded.
        contexts += [build_context(sop_class, [syntax]) for syntax in syntaxes]
        contexts.append(build_context(sop_class, LITTLE_ENDIAN))
    if len(contexts) > MAX_CONTEXTS:
        contexts = [build_context(c, LITTLE_ENDIAN) for c in list(wanted)[:MAX_CONTEXTS]]
    return contexts
