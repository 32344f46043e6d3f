"""The STOW-RS response dataset (PS3.18 10.5.3, Table 10.5.3-1), as DICOM JSON.

(0008,1190) *Retrieve URL* of the study, (0008,1199) *Referenced SOP Sequence* of what was
stored, each with its class, instance and Retrieve URL, and (0008,1198) *Failed SOP Sequence*
with (0008,1197) *Failure Reason* for what was not, present only when something failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

# (0008,1197) Failure Reason codes of PS3.4 Annex GG.4 / PS3.18 Table 10.5.3-2.
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
SOP_CLASS_NOT_SUPPORTED = 0x0122
TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
# (0008,1196) Warning Reason: stored, but the data set does not match what it declares.
DATASET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007


@dataclass(frozen=True)
class StoredInstance:
    sop_class_uid: str
    sop_instance_uid: str
    retrieve_url: str
    warning_reason: int | None = None


@dataclass(frozen=True)
class FailedInstance:
    sop_class_uid: str | None  # None: the part could not be read far enough to know
    sop_instance_uid: str | None
    reason: int


def _ui(value: str | None) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def stow_response(
    study_url: str | None, stored: list[StoredInstance], failed: list[FailedInstance]
) -> dict[str, Any]:
    """The response dataset; ``study_url`` when every stored instance is of one study."""
    response: dict[str, Any] = {}
    if study_url is not None and stored:
        response["00081190"] = {"vr": "UR", "Value": [study_url]}
    if failed:
        response["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _ui(item.sop_class_uid),
                    "00081155": _ui(item.sop_instance_uid),
                    "00081197": {"vr": "US", "Value": [item.reason]},
                }
                for item in failed
            ],
        }
    response["00081199"] = {
        "vr": "SQ",
        "Value": [
            {
                "00081150": _ui(item.sop_class_uid),
                "00081155": _ui(item.sop_instance_uid),
                "00081190": {"vr": "UR", "Value": [item.retrieve_url]},
                **(
                    {"00081196": {"vr": "US", "Value": [item.warning_reason]}}
                    if item.warning_reason is not None
                    else {}
                ),
            }
            for item in stored
        ],
    }
    return response


def stow_response_xml(response: dict[str, Any]) -> bytes:
    """The same response dataset in the Native DICOM Model (PS3.19 A.1), for a client that
    asks for ``application/dicom+xml``."""
    keywords = {
        "00081150": "ReferencedSOPClassUID",
        "00081155": "ReferencedSOPInstanceUID",
        "00081190": "RetrieveURL",
        "00081196": "WarningReason",
        "00081197": "FailureReason",
        "00081198": "FailedSOPSequence",
        "00081199": "ReferencedSOPSequence",
    }

    def attributes(dataset: dict[str, Any]) -> str:
        out = []
        for tag in sorted(dataset):
            element = dataset[tag]
            head = (
                f"<DicomAttribute tag={quoteattr(tag)} vr={quoteattr(element['vr'])} "
                f"keyword={quoteattr(keywords.get(tag, ''))}>"
            )
            if element["vr"] == "SQ":
                body = "".join(
                    f'<Item number="{n}">{attributes(item)}</Item>'
                    for n, item in enumerate(element.get("Value", []), start=1)
                )
            else:
                body = "".join(
                    f'<Value number="{n}">{escape(str(v))}</Value>'
                    for n, v in enumerate(element.get("Value", []), start=1)
                )
            out.append(head + body + "</DicomAttribute>")
        return "".join(out)

    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<NativeDicomModel xmlns="http://dicom.nema.org/PS3.19/models/NativeDICOM">'
        + attributes(response)
        + "</NativeDicomModel>\n"
    ).encode()
