"""C-FIND as the listener answers it: the QIDO-RS search of the same keys (PS3.4 C.4.1).

The identifier becomes QIDO-RS's query (``dicom.query_retrieve``), answered page by page by
``service.qido`` with its matching, bounds and character-set handling; each match is one
Pending answer holding the identifier's attributes. A C-CANCEL is honoured between answers
(pynetdicom marks the request cancelled; the next answer is Cancel, PS3.4 C.4.1.2.3).

The Pending answers do not go through pynetdicom one by one (about a millisecond each in
Python: a 1,000-answer query took a second, where Orthanc takes a seventh of that): each
identifier is written from the match's DICOM JSON (``dicom.json_data_set``), framed with a
command set encoded once (``network.pdata``), and the answers go to the socket some tens of
kilobytes at a time. The final answer (Success, Cancel or a failure) is pynetdicom's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from dicom_file_service import metrics
from dicom_file_service.dicom.json_data_set import encode_attributes
from dicom_file_service.dicom.query_retrieve import (
    FindQuery,
    answer,
    find_query,
    patient_answers,
)
from dicom_file_service.errors import BadRequest, ServiceError
from dicom_file_service.network.contexts import FIND_MODELS
from dicom_file_service.network.pdata import pdata_pdus, pending_find_command
from dicom_file_service.network.statuses import (
    CANCEL,
    IDENTIFIER_DOES_NOT_MATCH,
    NOT_AUTHORIZED,
    PENDING,
    SUCCESS,
    UNABLE_TO_PROCESS,
    status,
)
from dicom_file_service.service import qido
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.locations import NoUrls
from dicom_file_service.service.modalities import permits

log = logging.getLogger(__name__)
Answer = tuple[Dataset | int, Dataset | None]
FIRST_PAGE = 50
"""Matches searched before the first answers leave; each next page is twice as long."""


def handle_find(event: Any, ctx: ServiceContext) -> Iterator[Answer]:
    final = SUCCESS
    try:
        for code, identifier in _answers(event, ctx):
            if code != PENDING:
                final = code if isinstance(code, int) else int(code.Status)
            yield code, identifier
    finally:
        metrics.DIMSE_OPERATIONS.labels("find", f"{final:04X}").inc()


def _answers(event: Any, ctx: ServiceContext) -> Iterator[Answer]:
    requestor = event.assoc.requestor
    if not permits(ctx, requestor.ae_title, requestor.address, "find"):
        yield status(NOT_AUTHORIZED, f"{requestor.ae_title} may not query"), None
        return
    model = FIND_MODELS.get(str(event.request.AffectedSOPClassUID), "study")
    try:
        identifier = event.identifier
        query = find_query(identifier)
        if query.level == "PATIENT" and model != "patient":
            raise BadRequest("the PATIENT level is in the Patient Root model only")
    except BadRequest as exc:
        yield status(IDENTIFIER_DOES_NOT_MATCH, exc.detail), None
        return
    except Exception as exc:  # an identifier pydicom cannot decode
        yield status(IDENTIFIER_DOES_NOT_MATCH, f"unreadable identifier: {exc}"), None
        return
    ae_title = ctx.settings.ae_title
    sender = _PendingSender(event)
    try:
        for page in _found(ctx, query, ae_title):
            for found in page:
                if event.is_cancelled:
                    if sender.flush():
                        yield CANCEL, None
                    return
                if not sender.add(found):
                    return  # the connection is gone: nothing more to say
            if not sender.flush():  # the requestor reads a page while the next is searched
                return
    except BadRequest as exc:
        if sender.flush():
            yield status(IDENTIFIER_DOES_NOT_MATCH, exc.detail), None
        return
    except ServiceError as exc:
        log.warning("C-FIND failed: %s", exc.detail)
        if sender.flush():
            yield status(UNABLE_TO_PROCESS, exc.detail), None
        return
    if sender.flush():
        yield SUCCESS, None


class _PendingSender:
    """Pending answers written straight to the association's socket, batched."""

    batch_bytes = 64 * 1024

    def __init__(self, event: Any) -> None:
        assoc = event.assoc
        context_id, _, transfer_syntax = event.context
        self._socket = assoc.dul.socket
        self._implicit = UID(str(transfer_syntax)).is_implicit_VR
        self._context_id = int(context_id)
        self._max_pdu = int(assoc.requestor.maximum_length or 0)
        command = pending_find_command(event.request, PENDING)
        self._command = pdata_pdus(self._context_id, command, command=True, max_pdu=self._max_pdu)
        self._buffer: list[bytes] = []
        self._size = 0

    def add(self, attributes: dict[str, Any]) -> bool:
        data_set = encode_attributes(attributes, implicit_vr=self._implicit)
        pdus = pdata_pdus(self._context_id, data_set, command=False, max_pdu=self._max_pdu)
        self._buffer += (self._command, pdus)
        self._size += len(self._command) + len(pdus)
        return self._size < self.batch_bytes or self.flush()

    def flush(self) -> bool:
        """Write what is buffered; False when the connection is gone."""
        if not self._buffer:
            return True
        data, self._buffer, self._size = b"".join(self._buffer), [], 0
        return bool(self._socket.write_now(data))


def _found(ctx: ServiceContext, query: FindQuery, ae_title: str) -> Iterator[list[dict[str, Any]]]:
    """The answers, a page at a time as the search finds them, the first page short (a
    patient's after all its studies were found: its counts need them all)."""
    pages = qido.search_all(
        ctx,
        query.params,
        query.qido_level,
        NoUrls(),
        returned=query.returned_keys,
        first_page=FIRST_PAGE,
    )
    if query.level == "PATIENT":
        studies = (m for page in pages for m in page)
        yield list(patient_answers(query, studies, ae_title=ae_title))
        return
    for page in pages:
        yield [answer(query, match, ae_title=ae_title) for match in page]
