"""Pending C-FIND answers framed by hand: the same PDUs pynetdicom sends for the same message,
at every maximum PDU length."""

from __future__ import annotations

from io import BytesIO

import pytest
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.pdu import P_DATA_TF

from dicom_file_service.network.pdata import pdata_pdus, pending_find_command


class _Request:
    MessageID = 17
    AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"


def _pynetdicom_pdus(data_set: bytes, context_id: int, max_pdu: int) -> bytes:
    """The PDUs pynetdicom's DIMSE provider sends for a Pending C-FIND-RSP."""
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = _Request.MessageID
    primitive.AffectedSOPClassUID = _Request.AffectedSOPClassUID
    primitive.Status = 0xFF00
    primitive.Identifier = BytesIO(data_set)
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    out = b""
    for pdata in message.encode_msg(context_id, max_pdu):
        pdu = P_DATA_TF()
        pdu.from_primitive(pdata)
        out += pdu.encode()
    return out


@pytest.mark.parametrize("max_pdu", [0, 16_384, 1_048_576, 64, 7])
@pytest.mark.parametrize("size", [2, 100, 40_000])
def test_a_pending_answer_is_the_pdus_pynetdicom_sends(max_pdu: int, size: int) -> None:
    data_set = bytes(range(256)) * (size // 256) + bytes(size % 256)
    command = pending_find_command(_Request, 0xFF00)
    ours = pdata_pdus(5, command, command=True, max_pdu=max_pdu) + pdata_pdus(
        5, data_set, command=False, max_pdu=max_pdu
    )
    assert ours == _pynetdicom_pdus(data_set, 5, max_pdu)
