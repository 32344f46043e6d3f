"""The archive as a DICOM network client (SCU): C-ECHO, C-STORE and C-MOVE to a registered
modality, on pynetdicom, each on an association of its own.

Every call is blocking and bounded by the DIMSE timeouts of the settings (an echo by
``ECHO_TIMEOUT_SECONDS``); a remote that cannot be reached, rejects the association or
aborts it raises ``RemoteFailure`` saying so in words. Instances are sent as stored, byte for
byte, by ``service.sending``'s ``OutgoingInstance`` (or transcoded where the receiver took only
Explicit or Implicit VR Little Endian for them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)

from dicom_file_service.errors import RemoteFailure
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.modalities import Modality
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.sending import OutgoingInstance, install, proposed_contexts

log = logging.getLogger(__name__)

ECHO_TIMEOUT_SECONDS = 10.0
_WARNINGS = frozenset({0x0001, 0xB000, 0xB006, 0xB007})
_PENDING = frozenset({0xFF00, 0xFF01})
Progress = Callable[[int, int], None]  # (done, total)


def status_hex(status: int) -> str:
    return f"0x{status:04X}"


@contextmanager
def _association(
    ctx: ServiceContext,
    modality: Modality,
    contexts: list[PresentationContext],
    timeout: float | None = None,
) -> Iterator[Association]:
    settings = ctx.settings
    ae = AE(ae_title=settings.ae_title)
    ae.acse_timeout = timeout or settings.dicom_acse_timeout_seconds
    ae.dimse_timeout = timeout or settings.dicom_dimse_timeout_seconds
    ae.network_timeout = timeout or settings.dicom_network_timeout_seconds
    ae.connection_timeout = timeout or settings.dicom_network_timeout_seconds
    ae.requested_contexts = contexts
    where = f"{modality.ae_title} at {modality.host}:{modality.port}"
    assoc = ae.associate(
        modality.host,
        modality.port,
        ae_title=modality.ae_title,
        max_pdu=settings.dicom_max_pdu_bytes,
    )
    if not assoc.is_established:
        rsp: Any = assoc.acceptor.primitive  # the A-ASSOCIATE answer, if one came
        if rsp is None:
            raise RemoteFailure(f"{where} cannot be reached (no connection, or no answer in time)")
        if assoc.is_rejected:
            raise RemoteFailure(
                f"{where} rejected the association ({rsp.result_str}, by the "
                f"{rsp.source_str}: {rsp.reason_str})"
            )
        raise RemoteFailure(
            f"{where} accepted none of the proposed presentation contexts, or aborted"
        )
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()


def echo(ctx: ServiceContext, modality: Modality) -> str:
    """C-ECHO: the status's hex when it is success; ``RemoteFailure`` otherwise."""
    with _association(
        ctx, modality, [build_context(Verification)], timeout=ECHO_TIMEOUT_SECONDS
    ) as assoc:
        answer = assoc.send_c_echo()
    if "Status" not in answer:
        raise RemoteFailure(f"{modality.ae_title} did not answer the C-ECHO (timeout or abort)")
    status = int(answer.Status)
    if status != 0x0000:
        raise RemoteFailure(f"{modality.ae_title} answered the C-ECHO with {status_hex(status)}")
    return status_hex(status)


@dataclass
class StoreReport:
    sent: int = 0
    warning: int = 0
    failed: int = 0
    failed_sop_instance_uids: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "warning": self.warning,
            "failed": self.failed,
            "failed_sop_instance_uids": self.failed_sop_instance_uids,
            "details": self.details[:20],
        }


def store(
    ctx: ServiceContext, modality: Modality, records: list[InstanceRecord], progress: Progress
) -> StoreReport:
    """C-STORE of every record on one association, in the order given. An instance the remote
    refuses (or that cannot be written in any accepted syntax) is counted failed and the
    others still go; an association lost on the way fails the rest."""
    install()
    report = StoreReport()
    with _association(ctx, modality, proposed_contexts(records)) as assoc:
        for n, record in enumerate(records, start=1):
            uid = record.sop_instance_uid
            if not assoc.is_established:
                report.failed += 1
                report.failed_sop_instance_uids.append(uid)
                continue
            try:
                answer = assoc.send_c_store(OutgoingInstance(ctx, record))
            except Exception as exc:  # not acceptable, gone meanwhile, no context
                _failed(report, uid, str(getattr(exc, "detail", exc)))
            else:
                status = int(answer.Status) if "Status" in answer else None
                if status == 0x0000:
                    report.sent += 1
                elif status in _WARNINGS:
                    report.sent += 1
                    report.warning += 1
                elif status is None:
                    _failed(report, uid, "no answer (the association was lost or timed out)")
                else:
                    _failed(report, uid, f"refused with status {status_hex(status)}")
            progress(n, len(records))
    return report


def _failed(report: StoreReport, uid: str, why: str) -> None:
    report.failed += 1
    report.failed_sop_instance_uids.append(uid)
    report.details.append(f"{uid}: {why}")
    log.warning("an instance was not sent: %s", why)


@dataclass
class MoveReport:
    status: str = ""
    completed: int = 0
    failed: int = 0
    warning: int = 0
    remaining: int = 0
    failed_sop_instance_uids: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "completed": self.completed,
            "failed": self.failed,
            "warning": self.warning,
            "remaining": self.remaining,
            "failed_sop_instance_uids": self.failed_sop_instance_uids,
        }


def move(
    ctx: ServiceContext, modality: Modality, identifiers: list[Dataset], progress: Progress
) -> MoveReport:
    """C-MOVE of each identifier (their QueryRetrieveLevel says the root: PATIENT the Patient
    Root, others the Study Root) to this archive's AE title, one after another on one
    association; the final responses' counts summed, and the first status not a success (or
    success)."""
    level = identifiers[0].QueryRetrieveLevel
    model = (
        PatientRootQueryRetrieveInformationModelMove
        if level == "PATIENT"
        else StudyRootQueryRetrieveInformationModelMove
    )
    report = MoveReport(status=status_hex(0))
    with _association(ctx, modality, [build_context(model)]) as assoc:
        for identifier in identifiers:
            one = _move_one(ctx, modality, assoc, identifier, model, report, progress)
            for key in ("completed", "failed", "warning"):
                setattr(report, key, getattr(report, key) + getattr(one, key))
            report.failed_sop_instance_uids += one.failed_sop_instance_uids
            if report.status == status_hex(0):
                report.status = one.status
    return report


def _move_one(
    ctx: ServiceContext,
    modality: Modality,
    assoc: Association,
    identifier: Dataset,
    model: Any,
    before: MoveReport,
    progress: Progress,
) -> MoveReport:
    report = MoveReport()
    for answer, found in assoc.send_c_move(identifier, ctx.settings.ae_title, model):
        if "Status" not in answer:
            raise RemoteFailure(
                f"{modality.ae_title} stopped answering the C-MOVE (timeout or abort)"
            )
        status = int(answer.Status)
        report.status = status_hex(status)
        if status not in _PENDING:  # a final response need not say what remains
            report.remaining = 0
        for key in ("completed", "failed", "warning", "remaining"):
            tag = f"NumberOf{key.capitalize()}Suboperations"
            if tag in answer and answer[tag].value is not None:
                setattr(report, key, int(answer[tag].value))
        done = sum(
            getattr(r, k) for r in (before, report) for k in ("completed", "failed", "warning")
        )
        progress(done, done + report.remaining)
        if found is not None and "FailedSOPInstanceUIDList" in found:
            value = found.FailedSOPInstanceUIDList
            report.failed_sop_instance_uids = [str(v) for v in value] if value else []
    return report
