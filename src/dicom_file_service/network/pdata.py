"""DIMSE messages as P-DATA-TF PDUs (PS3.8 9.3.5, Annex E), for answers sent in bulk.

pynetdicom sends each message by building a primitive, encoding its command set twice,
queueing one P-DATA primitive per fragment for the reactor thread and encoding each PDU there:
about half a millisecond of Python a message. A C-FIND's Pending answers differ only in their
identifier, so their command set is encoded once (by pynetdicom, from the request) and each
answer is framed here, many answers to one write on the association's socket.

Each PDU carries one PDV, as pynetdicom and DCMTK send them: a command fragment or a data set
fragment, the last of each flagged, none longer than the peer's maximum PDU length allows.
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

_PDU = struct.Struct(">BBII")  # PDU type 04, reserved, PDU length, PDV item length
_COMMAND, _DATA_SET, _LAST = 0x01, 0x00, 0x02


def pdata_pdus(context_id: int, value: bytes, *, command: bool, max_pdu: int) -> bytes:
    """``value`` (a command set or a data set) as P-DATA-TF PDUs of one PDV each; ``max_pdu``
    is the peer's Maximum Length Received (0: no limit)."""
    size = len(value) if max_pdu == 0 else max_pdu - 6
    kind = _COMMAND if command else _DATA_SET
    parts = []
    for start in range(0, max(len(value), 1), max(size, 1)):
        fragment = value[start : start + size]
        last = start + size >= len(value)
        header = bytes((context_id, kind | (_LAST if last else 0)))
        parts.append(_PDU.pack(4, 0, 6 + len(fragment), 2 + len(fragment)) + header + fragment)
    return b"".join(parts)


def pending_find_command(request: Any, status: int) -> bytes:
    """The command set of a C-FIND-RSP with ``status`` (Pending) answering ``request``, as
    pynetdicom encodes it (Implicit VR Little Endian, group length first)."""
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = request.MessageID
    primitive.AffectedSOPClassUID = request.AffectedSOPClassUID
    primitive.Status = status
    primitive.Identifier = BytesIO(b"\x00")  # present: Command Data Set Type says so
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    command_set: Dataset = message.command_set
    encoded = encode(command_set, True, True)
    if encoded is None:
        raise ValueError("the C-FIND-RSP command set could not be encoded")
    return encoded
