"""A data set received over the DICOM network (C-STORE), kept as an upload is.

The listener hands over the data set as pynetdicom received it, in a file, with what the
association negotiated. It is written as a Part 10 file (``dicom.part10``: the file meta made
from the presentation context and the request, the data set's bytes unchanged, a deflated one
inflated) into a staged upload, and stored by the ingest every other door uses, with its
policy, its limits and its duplicate rule, plus one check of its own: the data set must be the
instance the request names (its Affected SOP Instance UID).

Duplicates are judged on the data set, not the file: a modality that sends an instance again
from another AE title (so with another (0002,0016) *Source Application Entity Title* in the
file meta made here) sends the same instance, and succeeds; other content under a stored SOP
Instance UID is refused, the stored instance unchanged.
"""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from dicom_file_service.dicom.part10 import (
    data_set_chunks,
    data_set_offset,
    file_meta,
    stored_syntax,
)
from dicom_file_service.dicom.stow import DUPLICATE_SOP_INSTANCE
from dicom_file_service.errors import FileNotFound, ServiceError
from dicom_file_service.index import repository as repo
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.records import InstanceRecord
from dicom_file_service.service.store_outcome import (
    FailedOutcome,
    Outcome,
    StoredOutcome,
    failed,
    store_instance,
)


def store_received(
    ctx: ServiceContext,
    data_set: BinaryIO,
    *,
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax: str,
    calling_ae_title: str | None,
) -> Outcome:
    """Store the data set read from ``data_set`` (positioned at its first byte), received in
    ``transfer_syntax`` for the instance the request names; blocking."""
    digest = hashlib.sha256()
    with ctx.new_upload() as staged:
        try:
            meta = file_meta(
                sop_class_uid, sop_instance_uid, stored_syntax(transfer_syntax), calling_ae_title
            )
            staged.write(meta)
            max_inflated = ctx.settings.max_inflated_bytes
            for chunk in data_set_chunks(data_set, transfer_syntax, max_inflated=max_inflated):
                digest.update(chunk)
                staged.write(chunk)
        except ServiceError as exc:
            exc.about(sop_class_uid, sop_instance_uid)
            return failed(exc)
        outcome = store_instance(
            ctx, staged, study_instance_uid=None, sop_instance_uid=sop_instance_uid
        )
    if isinstance(outcome, FailedOutcome) and outcome.reason == DUPLICATE_SOP_INSTANCE:
        same = _stored_with_data_set(ctx, sop_instance_uid, digest.hexdigest())
        if same is not None:
            return StoredOutcome(same, same.warnings)
    return outcome


def _stored_with_data_set(
    ctx: ServiceContext, sop_instance_uid: str, sha256: str
) -> InstanceRecord | None:
    """The stored instance, when its data set's bytes hash to ``sha256``."""
    with ctx.index.read() as conn:
        record = repo.get_by_sop_instance_uid(conn, sop_instance_uid)
    if record is None:
        return None
    digest = hashlib.sha256()
    try:
        with ctx.store.open_reader(record.blob_key, record.size) as f:
            f.seek(data_set_offset(f))
            while chunk := f.read(1024 * 1024):
                digest.update(chunk)
    except FileNotFound:
        return None
    return record if digest.hexdigest() == sha256 else None
