"""The ingest policy: what the archive makes of a file that parsed and whose framing holds.

An archive keeps what it is sent. A file is refused only when it cannot be addressed or
indexed: it lacks its identity (a Study, Series or SOP Instance UID), one of those is not
text a URL path and the index can hold (empty, over 64 characters, or holding characters
other than printable ASCII without spaces, '/', '\\' or ','), its SOP class is not for
storage or contradicts its file meta, or its frame count is impossible. Everything else is
kept byte for byte, and what is odd about it is said as warnings (STOW-RS WarningReason):
UIDs that are not valid UIDs but address the instance all the same, image attributes with no
Pixel Data, pixel data of another length than its attributes call for, Type 1 pixel
attributes the decoder has to assume. This module judges and says so as a value, a
:class:`Verdict` holding the refusal (the domain error, carrying no HTTP status) or what is
kept with its warnings; the HTTP layer decides how to tell it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydicom.uid import UID

from dicom_file_service.dicom.pixel_defaults import defaults_for_json
from dicom_file_service.errors import (
    InvalidDicom,
    MissingIdentity,
    ServiceError,
    SopClassMismatch,
    SopClassNotSupported,
    TransferSyntaxNotSupported,
)

_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")  # PS3.5 9.1
_ADDRESSABLE = re.compile(r"^[!-~]+$")  # printable ASCII, no space
_UNADDRESSABLE = frozenset("/\\,")  # path separators and the QIDO list separators
_MAX_UID = 64
_MAX_FRAMES = 2**31 - 1  # frames of 8 bytes at least could not fill more in 2**32 bytes


@dataclass(frozen=True)
class ParsedInstance:
    """What the index keeps of a file: identity, a few query fields, the whole header."""

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient_id: str | None
    patient_name: str | None
    modality: str | None
    study_date: str | None
    number_of_frames: int
    has_pixel_data: bool
    header: dict[str, Any]
    bulk_lengths: dict[str, int]
    # Where each frame of encapsulated multi-frame pixel data lies, as pydicom's extended
    # offsets (PS3.5 A.4, (7FE0,0001) Extended Offset Table and (7FE0,0002) its lengths):
    # offsets from the first fragment's item tag, then lengths, each "<Q" packed; None when
    # frames and fragments are not one to one (pydicom then follows the Basic Offset Table).
    frame_table: bytes | None = None
    # What is odd about the file but did not stop it being stored (STOW-RS WarningReason).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """Refused (``refusal``: the error saying why), or kept (``instance``, whose warnings
    ``warnings`` repeats)."""

    instance: ParsedInstance | None = None
    refusal: ServiceError | None = None
    warnings: tuple[str, ...] = ()


def judge(
    header: dict[str, Any],
    bulk_lengths: dict[str, int],
    *,
    has_pixels: bool,
    read_as: str,
    faults: tuple[str, ...] = (),
) -> Verdict:
    """The verdict on the file whose header is ``header`` (DICOM JSON), its data set read in
    the transfer syntax ``read_as`` (what its meta group names, else the encoding its bytes
    were found in); ``faults`` are what the framing found odd but complete, kept as
    warnings."""
    missing = [
        name
        for name, key in (
            ("SOP Instance UID (0008,0018)", "00080018"),
            ("Study Instance UID (0020,000D)", "0020000D"),
            ("Series Instance UID (0020,000E)", "0020000E"),
        )
        if not _first(header, key)
    ]
    if missing:
        return Verdict(
            refusal=MissingIdentity(
                f"the file has no {', '.join(missing)}: it cannot be stored without its identity"
            )
        )
    uids = []
    warnings = list(faults)
    for key, name in (
        ("00080018", "SOP Instance UID"),
        ("0020000D", "Study Instance UID"),
        ("0020000E", "Series Instance UID"),
    ):
        value = _uid(header, key)
        unaddressable = _unaddressable(value)
        if unaddressable:
            return Verdict(
                refusal=InvalidDicom(
                    f"{name} {value[:80]!r} {unaddressable}: the instance could not be "
                    "addressed by it"
                )
            )
        if not _UID.match(value):
            warnings.append(
                f"{name} {value!r} is not a valid UID (PS3.5 9.1: digits and dots, no "
                "leading zeros): the instance is stored and addressed by it as sent"
            )
        uids.append(value)
    sop, study, series = uids
    sop_class = _first(header, "00080016") or _first(header, "00020002") or ""
    ts = _first(header, "00020010") or read_as
    refusal = _class_refusal(header, str(sop_class).strip(), str(ts).strip())
    if refusal is not None:
        refusal.about(str(sop_class).strip()[:64], sop)
        return Verdict(refusal=refusal)
    frames = 0
    if has_pixels:
        try:
            frames = max(1, int(str(_first(header, "00280008") or 1).strip()))
        except ValueError:
            frames = 1
        if frames > _MAX_FRAMES:
            return Verdict(
                refusal=InvalidDicom(
                    f"Number of Frames (0028,0008) {frames} is more than any file can hold "
                    f"(at most {_MAX_FRAMES})"
                )
            )
    name = _first(header, "00100010")
    patient_name = name.get("Alphabetic") if isinstance(name, dict) else None
    if has_pixels:
        warnings.extend(defaults_for_json(header))
    meta_sop = str(_first(header, "00020003") or "").strip().rstrip("\x00")
    if meta_sop and meta_sop != sop:
        warnings.append(
            f"the file meta's Media Storage SOP Instance UID (0002,0003) {meta_sop[:64]} is not "
            f"the data set's SOP Instance UID (0008,0018) {sop}: stored under the data set's"
        )
    instance = ParsedInstance(
        warnings=tuple(warnings),
        sop_instance_uid=sop,
        series_instance_uid=series,
        study_instance_uid=study,
        sop_class_uid=str(sop_class)[:_MAX_UID],
        transfer_syntax_uid=str(ts)[:_MAX_UID],
        patient_id=_text(_first(header, "00100020"), 64),
        patient_name=_text(patient_name, 324),
        modality=_text(_first(header, "00080060"), 16),
        study_date=_text(_first(header, "00080020"), 8),
        number_of_frames=frames,
        has_pixel_data=has_pixels,
        header=header,
        bulk_lengths=bulk_lengths,
    )
    return Verdict(instance=instance, warnings=instance.warnings)


def _class_refusal(header: dict[str, Any], sop_class: str, ts: str) -> ServiceError | None:
    """Why the SOP class or transfer syntax refuses the file, None when they do not.

    The SOP class is one for storage and agrees with the file meta; the transfer syntax
    UID names a transfer syntax. UIDs pydicom does not know (private ones) are accepted."""
    meta_class = str(_first(header, "00020002") or "").strip().rstrip("\x00")
    if meta_class and sop_class and meta_class != sop_class.rstrip("\x00"):
        return SopClassMismatch(
            f"the data set's SOP Class UID (0008,0016) {sop_class[:64]} is not the file "
            f"meta's Media Storage SOP Class UID (0002,0002) {meta_class[:64]}"
        )
    if _known_as(sop_class) not in (None, "SOP Class") or (
        _known_as(sop_class) == "SOP Class" and "Storage" not in UID(sop_class).name
    ):
        return SopClassNotSupported(
            f"SOP Class UID {sop_class} is {UID(sop_class).name}, not a storage SOP class"
        )
    if _known_as(ts) not in (None, "Transfer Syntax"):
        return TransferSyntaxNotSupported(
            f"Transfer Syntax UID (0002,0010) {ts} is {UID(ts).name}, not a transfer syntax"
        )
    return None


def _unaddressable(value: str) -> str | None:
    """Why ``value`` cannot be a UID the instance is addressed by, None when it can be."""
    if len(value) > _MAX_UID:
        return f"is {len(value)} characters long, more than the 64 the index holds"
    if not _ADDRESSABLE.match(value):
        return "holds spaces, control or non-ASCII characters"
    if _UNADDRESSABLE & set(value):
        return "holds '/', '\\' or ','"
    return None


def _known_as(uid: str) -> str | None:
    """The kind pydicom's UID dictionary gives ``uid`` ("SOP Class", ...), None if unknown."""
    found = UID(uid.rstrip("\x00"))
    return str(found.type) if found.name != str(found) and found.type else None


def _first(header: dict[str, Any], key: str) -> Any:
    values = header.get(key, {}).get("Value")
    return values[0] if values else None


def _uid(header: dict[str, Any], key: str) -> str:
    return str(_first(header, key)).strip().rstrip("\x00")


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] if text else None
