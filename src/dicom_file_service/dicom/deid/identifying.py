"""What identifies the patient in an instance's own values, gathered for cleaning text (the C
action): its names (each part of each person name), its dates (in the spellings text uses),
and the values of the attributes that are identifiers (IDs, accession and study numbers,
addresses, institution, station and device), at every depth. Cleaning a text replaces each
of them where it appears; what the instance does not hold elsewhere cannot be recognised.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

IDENTIFYING_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "IssuerOfPatientID",
    "AccessionNumber",
    "StudyID",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "InstitutionName",
    "InstitutionAddress",
    "StationName",
    "DeviceSerialNumber",
)


def identifying_pattern(ds: Dataset) -> re.Pattern[str] | None:
    """Every identifying value the instance holds, as one case-insensitive pattern."""
    found: set[str] = set()
    for element in _walk(ds):
        if element.VR == "PN" and element.value:
            for name in _values(element.value):
                found.update(p for p in re.split(r"[\^=\s,]+", name) if len(p) >= 2)
        elif element.VR in ("DA", "DT") and element.value:
            for day in _values(element.value):
                found.update(_date_spellings(day))
        elif element.keyword in IDENTIFYING_KEYWORDS and element.value:
            found.update(v for v in _values(element.value) if len(v) >= 2)
    if not found:
        return None
    ordered = sorted(found, key=len, reverse=True)
    return re.compile("|".join(re.escape(v) for v in ordered), re.IGNORECASE)


def _walk(ds: Dataset) -> Iterable[DataElement]:
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                yield from _walk(item)
        else:
            yield element


def _values(value: object) -> list[str]:
    if isinstance(value, MultiValue | list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    return [str(value).strip()] if str(value).strip() else []


def _date_spellings(value: str) -> list[str]:
    """A date as the text around it might write it: 20240131, 2024-01-31, 31.01.2024,
    01/31/2024, 31/01/2024."""
    if len(value) < 8 or not value[:8].isdigit():
        return []
    y, m, d = value[:4], value[4:6], value[6:8]
    return [f"{y}{m}{d}", f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{m}/{d}/{y}", f"{d}/{m}/{y}"]
