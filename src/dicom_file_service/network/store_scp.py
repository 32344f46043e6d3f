"""C-ECHO and C-STORE as the listener answers them.

A C-STORE's data set reaches the handler in a file (pynetdicom's chunked receive: never whole
in memory) and is stored by ``service.received``, the ingest of every door. Its outcome
becomes the C-STORE status (PS3.4 B.2.3): Success, Warning 0xB007 for an instance kept despite
its faults (named in the Error Comment), or the refusal's Failure Reason, the same codes STOW-RS
answers with; the association goes on either way.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from pydicom.dataset import Dataset

from dicom_file_service import metrics
from dicom_file_service.dicom.part10 import data_set_offset
from dicom_file_service.errors import ServiceError
from dicom_file_service.network.statuses import PROCESSING_FAILURE, SUCCESS, status
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.health import readiness
from dicom_file_service.service.received import store_received
from dicom_file_service.service.store_outcome import FailedOutcome

log = logging.getLogger(__name__)


def handle_echo(event: Any, ctx: ServiceContext) -> Dataset:
    """Success while the service can store and answer (its readiness), else a failure."""
    try:
        problems = readiness(ctx)
    except Exception:  # readiness reports, it should not raise; a failure is still an answer
        log.exception("readiness check failed during C-ECHO")
        problems = ["readiness check failed"]
    code = SUCCESS if not problems else PROCESSING_FAILURE
    metrics.DIMSE_OPERATIONS.labels("echo", f"{code:04X}").inc()
    return status(code, "; ".join(problems) or None)


def handle_store(event: Any, ctx: ServiceContext) -> Dataset:
    request, context = event.request, event.context
    path = event.dataset_path
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(data_set_offset(f))
            size -= f.tell()
            outcome = store_received(
                ctx,
                f,
                sop_class_uid=str(request.AffectedSOPClassUID),
                sop_instance_uid=str(request.AffectedSOPInstanceUID),
                transfer_syntax=str(context.transfer_syntax),
                calling_ae_title=event.assoc.requestor.ae_title,
            )
    except ServiceError as exc:  # the store or index unavailable: nothing was stored
        log.warning("C-STORE not stored: %s", exc.detail)
        metrics.DIMSE_OPERATIONS.labels("store", f"{PROCESSING_FAILURE:04X}").inc()
        return status(PROCESSING_FAILURE, exc.detail)
    metrics.DIMSE_RECEIVED_BYTES.inc(size)
    if isinstance(outcome, FailedOutcome):
        metrics.DIMSE_OPERATIONS.labels("store", f"{outcome.reason:04X}").inc()
        log.info(
            "C-STORE refused",
            extra={"status": f"{outcome.reason:04X}", "reason": outcome.detail},
        )
        return status(outcome.reason, outcome.detail)
    code = outcome.warning_reason or SUCCESS
    metrics.DIMSE_OPERATIONS.labels("store", f"{code:04X}").inc()
    return status(code, "; ".join(outcome.warnings) or None)
