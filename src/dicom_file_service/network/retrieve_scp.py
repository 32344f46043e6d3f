"""C-MOVE and C-GET as the listener answers them (PS3.4 C.4.2, C.4.3).

Both retrieve what the identifier names (``service.retrieve``: the rows WADO-RS would send)
with one C-STORE sub-operation per instance, sent as stored (``service.sending``). A C-MOVE
goes to a registered destination AE (``service.modalities``), found by its AE title; an unknown
one is 0xA801. A C-GET sends on the requestor's own association, in the contexts it proposed
with the SCP role. A C-CANCEL stops between sub-operations.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.presentation import build_context

from dicom_file_service import metrics
from dicom_file_service.dicom.query_retrieve import retrieve_keys
from dicom_file_service.errors import BadRequest, ServiceError
from dicom_file_service.network.statuses import (
    CANCEL,
    IDENTIFIER_DOES_NOT_MATCH,
    MOVE_DESTINATION_UNKNOWN,
    NOT_AUTHORIZED,
    PENDING,
    UNABLE_TO_PROCESS,
    status,
)
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.modalities import by_ae_title, permits
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.retrieve import instances_for
from dicom_file_service.service.sending import OutgoingInstance, proposed_contexts

log = logging.getLogger(__name__)


def handle_get(event: Any, ctx: ServiceContext) -> Iterator[Any]:
    requestor = event.assoc.requestor
    if not permits(ctx, requestor.ae_title, requestor.address, "get"):
        yield from _refused(status(NOT_AUTHORIZED, f"{requestor.ae_title} may not retrieve"), "get")
        return
    found = _instances(event, ctx)
    if isinstance(found, Dataset):
        yield from _refused(found, "get")
        return
    yield len(found)
    yield from _sub_operations(event, ctx, found, "get")


def handle_move(event: Any, ctx: ServiceContext) -> Iterator[Any]:
    requestor = event.assoc.requestor
    destination = str(event.move_destination or "").strip()
    known = by_ae_title(ctx, destination)
    if not known:
        metrics.DIMSE_OPERATIONS.labels("move", f"{MOVE_DESTINATION_UNKNOWN:04X}").inc()
        yield None, None
        return
    if not permits(ctx, requestor.ae_title, requestor.address, "move"):
        # pynetdicom asks for the destination before any status: it is known, but gets
        # nothing (only Verification is proposed to it).
        yield known[0].host, known[0].port, {"contexts": _contexts([])}
        yield from _refused(
            status(NOT_AUTHORIZED, f"{requestor.ae_title} may not retrieve"), "move"
        )
        return
    found = _instances(event, ctx)
    records = [] if isinstance(found, Dataset) else found
    yield known[0].host, known[0].port, {"contexts": _contexts(records)}
    if isinstance(found, Dataset):
        yield from _refused(found, "move")
        return
    yield len(found)
    yield from _sub_operations(event, ctx, found, "move")


def _refused(answer: Dataset, operation: str) -> Iterator[Any]:
    """A retrieve that ends before any sub-operation: one announced (pynetdicom answers none
    as an empty success), then the failure."""
    yield 1
    yield answer, None
    metrics.DIMSE_OPERATIONS.labels(operation, f"{int(answer.Status):04X}").inc()


def _instances(event: Any, ctx: ServiceContext) -> list[InstanceRecord] | Dataset:
    try:
        return instances_for(ctx, retrieve_keys(event.identifier))
    except BadRequest as exc:
        return status(IDENTIFIER_DOES_NOT_MATCH, exc.detail)
    except ServiceError as exc:
        return status(UNABLE_TO_PROCESS, exc.detail)
    except Exception as exc:  # an identifier pydicom cannot decode
        return status(IDENTIFIER_DOES_NOT_MATCH, f"unreadable identifier: {exc}")


def _sub_operations(
    event: Any, ctx: ServiceContext, records: list[InstanceRecord], operation: str
) -> Iterator[Any]:
    for record in records:
        if event.is_cancelled:
            metrics.DIMSE_OPERATIONS.labels(operation, f"{CANCEL:04X}").inc()
            yield CANCEL, None
            return
        yield PENDING, OutgoingInstance(ctx, record)
    metrics.DIMSE_OPERATIONS.labels(operation, "0000").inc()


def _contexts(records: list[InstanceRecord]) -> list[Any]:
    """The contexts a C-MOVE proposes to its destination: the sending jobs' (each stored
    syntax alone, then both Little Endians), or Verification alone when nothing is sent."""
    return proposed_contexts(records) or [build_context("1.2.840.10008.1.1")]
