"""Media-type negotiation: what an ``Accept`` header (or a ``contentType`` / ``accept``
parameter) asks for, judged in one place for every door.

PS3.18 8.7 lets a client ask for instances, frames, bulk data and renderings in several media
types, each with a ``transfer-syntax`` parameter; what cannot be answered is a 406 naming what
can. The service layer never sees a header: it is told "as stored or Explicit VR Little
Endian", "decoded or not", "PNG or JPEG".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dicom_file_service.dicom.transcode import EXPLICIT_LITTLE
from dicom_file_service.errors import NotAcceptable

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
OCTET_STREAM = "application/octet-stream"
JPEG = "image/jpeg"
PNG = "image/png"
RENDERED_TYPES = (JPEG, PNG)
_ANY = ("*/*", "multipart/*")


@dataclass(frozen=True)
class MediaRange:
    """One ``Accept`` item: its media range and parameters (lower case, unquoted)."""

    media: str
    params: dict[str, str] = field(default_factory=dict)


def media_ranges(accept: str | None) -> list[MediaRange]:
    """The media ranges of an ``Accept`` header, in the order given (``*/*`` when absent)."""
    ranges = []
    for item in (accept or "*/*").split(","):
        media, *params = [p.strip().lower().replace('"', "") for p in item.split(";")]
        if media:
            ranges.append(MediaRange(media, dict(p.split("=", 1) for p in params if "=" in p)))
    return ranges or [MediaRange("*/*")]


def retrieve_syntaxes(accept: str | None) -> set[str]:
    """The transfer syntaxes instances may go in; ``*``: as stored. Without
    ``transfer-syntax``, the standard's default, Explicit VR Little Endian (PS3.18 8.7.3.5.2)."""
    syntaxes = set()
    for r in media_ranges(accept):
        if r.media in _ANY:
            syntaxes.add("*")
        elif r.media == "multipart/related" and r.params.get("type", DICOM) == DICOM:
            syntaxes.add(r.params.get("transfer-syntax", EXPLICIT_LITTLE))
    if not syntaxes:
        raise NotAcceptable(
            f"cannot answer with {accept!r}: instances are sent as "
            f'multipart/related; type="{DICOM}", as stored (transfer-syntax=*) or in '
            f"Explicit VR Little Endian (transfer-syntax={EXPLICIT_LITTLE})"
        )
    return syntaxes


def goes_as_stored(stored_syntax: str, sop_instance_uid: str, syntaxes: set[str]) -> bool:
    """Whether an instance goes as stored (else transcoded); 406 if it can go neither way."""
    if "*" in syntaxes or stored_syntax in syntaxes:
        return True
    if EXPLICIT_LITTLE in syntaxes:
        return False
    raise NotAcceptable(
        f"instance {sop_instance_uid} is stored in {stored_syntax}, which was not asked for: "
        f"ask for transfer-syntax=* (as stored) or {EXPLICIT_LITTLE}"
    )


def frames_decoded(accept: str | None, stored_type: str) -> bool:
    """Whether frames go decoded (else as stored). As stored: their own media type
    (``application/octet-stream`` for native pixel data, the bitstream's for compressed), or
    octet-stream with ``transfer-syntax=*`` (as OHIF asks). Decoded: octet-stream in the
    default syntax, Explicit VR Little Endian (PS3.18 8.7.3.3.2)."""
    decodable = False
    for r in media_ranges(accept):
        if r.media in _ANY:
            return False
        if r.media != "multipart/related":
            continue
        part_type = r.params.get("type", OCTET_STREAM)
        syntax = r.params.get("transfer-syntax")
        if part_type == "*/*" or (
            part_type.endswith("/*") and stored_type.startswith(part_type[:-1])
        ):
            return False
        if part_type == stored_type and syntax in (None, "*") and stored_type != OCTET_STREAM:
            return False
        if part_type == OCTET_STREAM:
            if syntax == "*" or stored_type == OCTET_STREAM:
                return False
            decodable = decodable or syntax in (None, EXPLICIT_LITTLE)
    if decodable:
        return True
    raise NotAcceptable(
        f"cannot answer with {accept!r}: these frames are stored as "
        f'{stored_type}; ask for multipart/related; type="{stored_type}" (as stored) or '
        f'type="{OCTET_STREAM}" (decoded)'
    )


def bulk_data_multipart(accept: str | None) -> bool:
    """Bulk data goes as ``multipart/related; type="application/octet-stream"`` (PS3.18's
    form, and what ``*/*`` gets), or bare when the client asks for octet-stream first."""
    for r in media_ranges(accept):
        if r.media == OCTET_STREAM:
            return False
        if r.media in _ANY or (
            r.media == "multipart/related"
            and r.params.get("type", OCTET_STREAM) in (OCTET_STREAM, "*/*")
        ):
            return True
    raise NotAcceptable(
        f"cannot answer with {accept!r}: bulk data is sent as "
        f'multipart/related; type="{OCTET_STREAM}" or as {OCTET_STREAM}'
    )


def rendered_type(wanted: str | None) -> str:
    """The rendering's media type: JPEG by default (PS3.18 8.3.5.1), PNG when asked first."""
    for r in media_ranges(wanted):
        if r.media in RENDERED_TYPES:
            return r.media
        if r.media in ("*/*", "image/*"):
            return JPEG
    raise NotAcceptable(f"cannot answer with {wanted!r}: renderings are {JPEG} or {PNG}")


def wado_uri_type(content_type: str) -> str:
    """WADO-URI's ``contentType`` (PS3.18 9.1.2.1.4): DICOM wherever it is listed, else the
    first rendering media type listed."""
    listed = [r.media for r in media_ranges(content_type)]
    if DICOM in listed:
        return DICOM
    for media in listed:
        if media in RENDERED_TYPES:
            return media
    raise NotAcceptable(f"contentType {content_type!r}: WADO-URI answers {DICOM}, {JPEG} or {PNG}")


def wants_xml(accept: str | None) -> bool:
    """``application/dicom+xml`` when it is listed before DICOM JSON, if that is listed at
    all (PS3.18 10.5.3)."""
    for r in media_ranges(accept):
        if r.media == DICOM_JSON:
            return False
        if r.media == DICOM_XML:
            return True
    return False


def search_answer_type(accept: str | None) -> str:
    """QIDO-RS answers DICOM JSON (PS3.18 10.6.3), under whichever name the client uses."""
    for r in media_ranges(accept):
        if r.media in (DICOM_JSON, "application/json"):
            return r.media
        if r.media in ("*/*", "application/*"):
            return DICOM_JSON
    raise NotAcceptable(
        f"cannot answer with {accept!r}: search results are {DICOM_JSON} (or application/json)"
    )
