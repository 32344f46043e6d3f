"""The presentation contexts the listener accepts (PS3.7 / PS3.8 7.1.1.13).

Every storage SOP class pynetdicom knows, in every transfer syntax pydicom knows (the ingest
keeps any of them; compressed ones preferred, below), with SCP/SCU role selection accepted
both ways so that a C-GET's requestor may act as the Storage SCP on its own association
(PS3.7 D.3.3.4). Query/Retrieve in the
Patient Root and Study Root information models (FIND, MOVE, GET), and Verification.
"""

from __future__ import annotations

from pydicom.uid import AllTransferSyntaxes
from pynetdicom import AllStoragePresentationContexts
from pynetdicom.presentation import PresentationContext, build_context

VERIFICATION = "1.2.840.10008.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"

QUERY_RETRIEVE = (
    PATIENT_ROOT_FIND,
    PATIENT_ROOT_MOVE,
    PATIENT_ROOT_GET,
    STUDY_ROOT_FIND,
    STUDY_ROOT_MOVE,
    STUDY_ROOT_GET,
)
FIND_MODELS = {PATIENT_ROOT_FIND: "patient", STUDY_ROOT_FIND: "study"}
STORAGE_CLASSES = tuple(str(cx.abstract_syntax) for cx in AllStoragePresentationContexts)
_UNCOMPRESSED = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
)
TRANSFER_SYNTAXES = tuple(
    [str(ts) for ts in AllTransferSyntaxes if str(ts) not in _UNCOMPRESSED] + list(_UNCOMPRESSED)
)
"""In the order the acceptor chooses among a requestor's proposals (pynetdicom takes the
acceptor's first that was proposed): a compressed syntax first, since a requestor proposing
one holds its data so (it is kept as sent, and nothing is decoded to send it); then the
uncompressed ones, Explicit VR Little Endian first (deflate costs its sender, big endian is
retired)."""
COMMAND_SYNTAXES = ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2")


def supported_contexts() -> list[PresentationContext]:
    contexts = [build_context(VERIFICATION, list(COMMAND_SYNTAXES))]
    contexts += [build_context(uid, list(COMMAND_SYNTAXES)) for uid in QUERY_RETRIEVE]
    for uid in STORAGE_CLASSES:
        cx = build_context(uid, list(TRANSFER_SYNTAXES))
        cx.scu_role, cx.scp_role = True, True
        contexts.append(cx)
    return contexts
