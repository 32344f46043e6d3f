"""Ingest: validate a staged upload, store its bytes, index it — in an order that loses nothing.

Order (docs/architecture.md, "Writes"): parse and validate the staged file; write the blob
atomically and durably under a fresh key; insert the index row in one transaction; only then
acknowledge. Where the store's put waits on a network (S3), the blob is written while the file
is parsed and while the row's statements run (the COMMIT waits for it), and removed again if
the file is refused, once its put has ended. A crash before the commit leaves at most
an unreferenced blob (swept), never an index row without its bytes. The unique constraint on
SOP Instance UID settles races between concurrent uploads of the same instance.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection

from dicom_file_service import metrics
from dicom_file_service.errors import (
    CommitOutcomeUnknown,
    DuplicateInstance,
    DuplicateKey,
    EmptyUpload,
    InvalidDicom,
    ServiceError,
    StudyMismatch,
)
from dicom_file_service.index import repository as repo
from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.extra_keys import rows_of as extra_key_rows
from dicom_file_service.service.parsing import PreparedUpload
from dicom_file_service.service.prerender import enqueue_prerender
from dicom_file_service.service.records import IngestResult
from dicom_file_service.service.removal import remove_instance_bytes
from dicom_file_service.service.staging import StagedUpload

log = logging.getLogger(__name__)


def ingest_staged(
    ctx: ServiceContext,
    staged: StagedUpload,
    *,
    overwrite: bool = False,
    study_instance_uid: str | None = None,
    one_of_many: bool = False,
    sop_instance_uid: str | None = None,
) -> IngestResult:
    """Store the finished upload in ``staged``; blocking (call off the event loop).

    ``study_instance_uid``: the study the instance must belong to (STOW-RS to
    ``/studies/{study}``); another is refused before anything is stored. ``one_of_many``:
    one part of a request carrying several (parsed where it can use another core).
    ``sop_instance_uid``: the instance the data set must be (a C-STORE's Affected SOP
    Instance UID); a data set of another is refused.
    """
    try:
        result = _ingest(ctx, staged, overwrite, study_instance_uid, one_of_many, sop_instance_uid)
    except ServiceError:
        metrics.UPLOADS.labels("rejected").inc()
        raise
    finally:
        # Consumed either way; removed here, in the ingest's thread, not by the caller's
        # context on the event loop (a change to the scratch directory: it can wait).
        staged.discard()
    metrics.UPLOADS.labels("stored" if result.created else "present").inc()
    if result.created:
        metrics.STORED_BYTES.inc(result.record.size)
    return result


def _ingest(
    ctx: ServiceContext,
    staged: StagedUpload,
    overwrite: bool,
    study_instance_uid: str | None,
    one_of_many: bool = False,
    sop_instance_uid: str | None = None,
) -> IngestResult:
    file_id = ids.new_file_id()
    # A fresh key: nothing stored is touched however this upload ends.
    blob_key = ids.instance_key(file_id)
    sending = _send_held(ctx, staged, blob_key)
    try:
        sha256 = staged.finish()
        if staged.size == 0:
            raise EmptyUpload("the upload is empty: send the DICOM file's bytes")
        if sending is None:
            sending = _send_while_parsing(ctx, staged, blob_key)
        prepared = ctx.parsers.parse(staged.path, one_of_many=one_of_many)
        parsed = prepared.parsed
        if sop_instance_uid is not None and parsed.sop_instance_uid != sop_instance_uid:
            refused: ServiceError = InvalidDicom(
                f"the data set's SOP Instance UID {parsed.sop_instance_uid} is not the "
                f"request's Affected SOP Instance UID {sop_instance_uid}: not stored"
            )
            refused.about(parsed.sop_class_uid, parsed.sop_instance_uid)
            raise refused
        if study_instance_uid is not None and parsed.study_instance_uid != study_instance_uid:
            refused = StudyMismatch(
                f"the instance belongs to study {parsed.study_instance_uid}, not to "
                f"{study_instance_uid} named by the request"
            )
            refused.about(parsed.sop_class_uid, parsed.sop_instance_uid)  # STOW-RS names it
            raise refused
        # No read first: the insert's unique constraint finds a stored instance (then the new
        # blob goes, and the stored one is compared), so a new upload costs one transaction.
        try:
            if sending is None:
                ctx.store.put_file(blob_key, staged.path)
            elif overwrite:
                sending.result()
                sending = None
        except ServiceError as exc:
            exc.about(parsed.sop_class_uid, parsed.sop_instance_uid)
            raise
    except BaseException:
        if sending is not None:
            _unsent(ctx, sending, blob_key)
        raise
    try:
        # A put still under way (S3) is waited for by the COMMIT, not before the insert.
        result = _index(
            ctx, prepared, file_id, blob_key, sha256, staged.size, overwrite, stored=sending
        )
    except ServiceError as exc:
        exc.about(parsed.sop_class_uid, parsed.sop_instance_uid)  # STOW-RS names it
        raise
    return dataclasses.replace(result, warnings=parsed.warnings) if parsed.warnings else result


def _send_held(ctx: ServiceContext, staged: StagedUpload, blob_key: str) -> Future[None] | None:
    """On a remote store, an upload held whole in memory goes up from there at once, while
    ``finish`` makes its scratch file for the parser: making and writing the file (0.19 ms
    timed inside the service, more where the filesystem's journal is busy) held up the start
    of a 2 ms put (PostgreSQL + S3 uploads from one client, A/B of 6 rounds: 1.07x). None
    otherwise: a larger upload is sent from its file, a local store moves the file in."""
    if not ctx.store.remote:
        return None
    data = staged.held()
    if data is None:
        return None
    return ctx.store_pool.submit(ctx.store.put_bytes, blob_key, data)


def _send_while_parsing(
    ctx: ServiceContext, staged: StagedUpload, blob_key: str
) -> Future[None] | None:
    """Start storing the bytes now where the store's put waits on a network and leaves the
    staged file for the parser (S3): the upload then costs the longer of the two, not their
    sum. None where the put moves the file into place (local disk): it follows the parse."""
    if not ctx.store.remote:
        return None
    return ctx.store_pool.submit(ctx.store.put_file, blob_key, staged.path)


def _unsent(ctx: ServiceContext, sending: Future[None], blob_key: str) -> None:
    """The upload is refused (or failed) after its bytes began to go up: let the put end,
    then remove what it stored. Nothing refers to the key meanwhile; ``sweep`` removes what
    a failed put left, or what could not be removed here."""
    try:
        sending.result()
    except Exception:
        return  # nothing stored; the failure is the upload's answer if nothing came first
    try:
        ctx.store.delete(blob_key)
    except Exception as exc:
        log.warning(
            "could not remove a refused upload's blob; sweep will",
            extra={"key": blob_key, "error": type(exc).__name__},
        )


def _index(
    ctx: ServiceContext,
    prepared: PreparedUpload,
    file_id: str,
    blob_key: str,
    sha256: str,
    size: int,
    overwrite: bool,
    stored: Future[None] | None = None,
) -> IngestResult:
    """The index row, committed once the bytes are stored (``stored``: their put, still under
    way; the row's statements run meanwhile and its COMMIT waits for it)."""
    parsed, keys = prepared.parsed, prepared.keys
    extra = extra_key_rows(ctx, prepared.header_json)  # DICOM_FS_EXTRA_QUERY_KEYS
    values: dict[str, Any] = {
        "file_id": file_id,
        "sop_instance_uid": parsed.sop_instance_uid,
        "series_instance_uid": parsed.series_instance_uid,
        "study_instance_uid": parsed.study_instance_uid,
        "sop_class_uid": parsed.sop_class_uid,
        "transfer_syntax_uid": parsed.transfer_syntax_uid,
        "patient_id": parsed.patient_id,
        "patient_name": parsed.patient_name,
        "modality": parsed.modality,
        "study_date": parsed.study_date,
        "number_of_frames": parsed.number_of_frames,
        "size": size,
        "sha256": sha256,
        "blob_key": blob_key,
        "created_at": time.time(),
        "header": prepared.header_json,
        "header_index": prepared.header_index,
        "bulk_lengths": orjson.dumps(parsed.bulk_lengths),
        "frame_table": parsed.frame_table,
        "warnings": repo.encode_warnings(parsed.warnings),
    }
    if not overwrite:
        # The common case is one INSERT: the unique constraint, not a prior read inside the
        # transaction, settles a race with a concurrent upload of the same instance.
        def insert(conn: Connection) -> tuple[int, bool]:
            seq = repo.insert_instance(conn, values, keys, extra)
            return seq, enqueue_prerender(ctx, conn, file_id)

        try:
            with _uncommitted_blob_removed(ctx, blob_key, stored):
                # Concurrent uploads share one durable COMMIT; each is answered after it.
                seq, enqueued = ctx.index.commit_grouped(insert, ready=stored)
            if enqueued:
                ctx.jobs.committed()
        except DuplicateKey as exc:
            with ctx.index.read() as conn:
                current = repo.get_by_sop_instance_uid(conn, parsed.sop_instance_uid)
            if current is not None and current.sha256 == sha256:
                return IngestResult(record=current, created=False)  # it won the race
            raise _duplicate(parsed.sop_instance_uid, current.file_id if current else None) from exc
        return IngestResult(record=_record(seq, values), created=True)

    replaced: repo.InstanceRecord | None = None
    enqueued = False
    try:
        with _uncommitted_blob_removed(ctx, blob_key), ctx.index.transaction() as conn:
            current = repo.get_by_sop_instance_uid(conn, parsed.sop_instance_uid)
            if current is not None and current.sha256 == sha256:
                raise _Identical(current)
            if current is not None:
                repo.delete_by_file_id(conn, current.file_id)
                replaced = current
            try:
                seq = repo.insert_instance(conn, values, keys, extra)
            except DuplicateKey as exc:  # a concurrent writer on another database session
                raise _duplicate(parsed.sop_instance_uid, None) from exc
            enqueued = enqueue_prerender(ctx, conn, file_id)
    except _Identical as found:  # nothing written; the new blob was removed
        return IngestResult(record=found.record, created=False)
    if enqueued:
        ctx.jobs.committed()
    if replaced is not None:  # committed: the old bytes go, best effort
        remove_instance_bytes(ctx, replaced.file_id, replaced.blob_key)
        log.info("instance replaced", extra={"file_id": file_id, "replaced": replaced.file_id})
    return IngestResult(
        record=_record(seq, values),
        created=True,
        replaced_file_id=replaced.file_id if replaced else None,
    )


def _record(seq: int, values: dict[str, Any]) -> repo.InstanceRecord:
    """The new row as the repository would read it back, without reading it back."""
    fields = repo.InstanceRecord.__dataclass_fields__
    kept = {k: values[k] for k in fields if k not in ("seq", "warnings")}
    return repo.InstanceRecord(seq=seq, **kept, warnings=_decoded_warnings(values["warnings"]))


def _decoded_warnings(stored: bytes | None) -> tuple[str, ...]:
    return tuple(orjson.loads(stored)) if stored else ()


class _Identical(Exception):
    """Byte-identical content is already stored (found inside the overwrite transaction)."""

    def __init__(self, record: repo.InstanceRecord) -> None:
        super().__init__(record.file_id)
        self.record = record


@contextmanager
def _uncommitted_blob_removed(
    ctx: ServiceContext, blob_key: str, stored: Future[None] | None = None
) -> Iterator[None]:
    """Remove the new blob if the block (ending in the row's commit) fails.

    Only failures before the commit undo the blob. A commit whose outcome is unknown (the
    connection died during COMMIT) keeps it: the row may exist and refer to it; sweep removes
    it later if no row does. After the commit the row refers to it and it stays. ``stored``:
    the blob's put, done by the time the block fails; if it failed, nothing was stored.
    """
    try:
        yield
    except CommitOutcomeUnknown:
        log.warning("commit outcome unknown; the blob is kept for sweep", extra={"key": blob_key})
        raise
    except BaseException:
        if stored is not None and stored.done() and (stored.cancelled() or stored.exception()):
            raise  # the put failed: nothing to remove
        try:
            ctx.store.delete(blob_key)
        except Exception:  # the real error matters more; sweep reclaims the blob
            log.warning("could not remove an unindexed blob", exc_info=True)
        raise


def _duplicate(sop_instance_uid: str, file_id: str | None) -> DuplicateInstance:
    where = f" as file {file_id}" if file_id else ""
    return DuplicateInstance(
        f"SOP Instance UID {sop_instance_uid} is already stored{where} with different "
        "content; repeat the upload with ?overwrite=true to replace it"
    )


def ingest_path(
    ctx: ServiceContext, path: Path, *, overwrite: bool = False, one_of_many: bool = False
) -> IngestResult:
    """Ingest a file from the local filesystem (the CLI's bulk import, a de-identified copy),
    streaming it; ``one_of_many`` as for ``ingest_staged``."""
    with StagedUpload(ctx.scratch, ctx.settings.max_upload_bytes) as staged:
        with open(path, "rb") as f:
            while chunk := f.read(1024 * 1024):
                staged.write(chunk)
        return ingest_staged(ctx, staged, overwrite=overwrite, one_of_many=one_of_many)
