"""Media-type negotiation: what an ``Accept`` header (or a ``contentType`` / ``accept``
parameter) asks for, judged in one place for every door.

PS3.18 8.7 lets a client ask for instances, frames, bulk data and renderings in several media
types, each with a ``transfer-syntax`` parameter; what cannot be answered is a 406 naming what
can. The service layer never sees a header: it is told a transfer syntax (the stored one:
as stored), "PNG or JPEG".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dicom_file_service.dicom.encoders import EXPLICIT_LITTLE, TARGETS
from dicom_file_service.dicom.frames import frame_media_type
from dicom_file_service.errors import NotAcceptable

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
OCTET_STREAM = "application/octet-stream"
ZIP = "application/zip"
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


def _by_preference(accept: str | None) -> list[MediaRange]:
    """The media ranges in the client's order of preference: by ``q`` (RFC 9110 12.4.2),
    ties in the order given; ``q=0`` means "not this"."""

    def q(r: MediaRange) -> float:
        try:
            return float(r.params.get("q", "1"))
        except ValueError:
            return 0.0

    return sorted((r for r in media_ranges(accept) if q(r) > 0), key=q, reverse=True)


def retrieve_syntaxes(accept: str | None) -> list[str]:
    """The transfer syntaxes instances may go in, in the client's order; ``*``: as stored.
    Without ``transfer-syntax`` (and with no ``Accept`` at all), the standard's default,
    Explicit VR Little Endian (PS3.18 8.7.3.4)."""
    syntaxes: list[str] = []
    for r in _by_preference(accept):
        if r.media in _ANY:
            syntaxes.append(EXPLICIT_LITTLE)
        elif r.media == "multipart/related" and r.params.get("type", DICOM) == DICOM:
            syntaxes.append(r.params.get("transfer-syntax", EXPLICIT_LITTLE))
    if not syntaxes:
        raise NotAcceptable(
            f"cannot answer with {accept!r}: instances are sent as "
            f'multipart/related; type="{DICOM}", as stored (transfer-syntax=*) or in one of '
            + ", ".join(sorted(TARGETS))
            + f"; a study or series also as {ZIP} (its files as stored)"
        )
    return syntaxes


def wants_zip(accept: str | None) -> bool:
    """Whether a study or series goes as one ZIP of its files (PS3.18 lists application/zip
    among the bulk media types of a study and a series): when ``application/zip`` comes, in
    the client's order of preference, before anything ``retrieve_syntaxes`` would answer.
    Its files are as stored, so one asked for in another ``transfer-syntax`` than ``*`` is
    not offered."""
    for r in _by_preference(accept):
        if r.media == ZIP and r.params.get("transfer-syntax", "*") == "*":
            return True
        if r.media in _ANY or (
            r.media == "multipart/related" and r.params.get("type", DICOM) == DICOM
        ):
            return False
    return False


def pick_syntax(
    stored: str, choices: list[str], why_not: Callable[[str], str | None], what: str
) -> str:
    """The first of the client's ``choices`` that can be met: ``*`` or the stored syntax (sent
    as stored), or one the encoders take (``why_not`` answers ``None``); else a 406 that says,
    for each choice, why not."""
    reasons = []
    for choice in choices:
        if choice in ("*", stored):
            return stored
        why = why_not(choice)
        if why is None:
            return choice
        reasons.append(f"{choice}: {why}")
    raise NotAcceptable(
        f"{what} is stored in {stored} and cannot be sent in any syntax asked for ("
        + "; ".join(reasons)
        + "): ask for transfer-syntax=* (as stored) or "
        + EXPLICIT_LITTLE
    )


#: PS3.18 Table 8.7.3-5: the transfer syntax a frame media type means without one named.
_FRAME_DEFAULTS = {
    OCTET_STREAM: EXPLICIT_LITTLE,
    "image/jpeg": "1.2.840.10008.1.2.4.50",
    "image/jls": "1.2.840.10008.1.2.4.80",
    "image/jp2": "1.2.840.10008.1.2.4.90",
    "image/jpx": "1.2.840.10008.1.2.4.92",
    "image/jphc": "1.2.840.10008.1.2.4.201",
    "image/dicom-rle": "1.2.840.10008.1.2.5",
}


def frame_syntaxes(accept: str | None, stored: str) -> list[str]:
    """The transfer syntaxes frames may go in, in the client's order. ``stored`` is the
    syntax of the frames as stored (native pixel data is Explicit VR Little Endian here).

    A part type names its syntaxes (``image/jls``: JPEG-LS; ``application/octet-stream``:
    native pixels), ``transfer-syntax`` one of them, or ``*`` whatever is stored (as OHIF
    asks); a wildcard type takes the stored frames if they are of its kind. Without an
    ``Accept`` (or ``*/*``) frames go as native pixels (PS3.18 8.7.3.4)."""
    out: list[str] = []
    stored_type = frame_media_type(stored)
    for r in _by_preference(accept):
        if r.media in _ANY:
            out.append(EXPLICIT_LITTLE)
            continue
        if r.media != "multipart/related":
            continue
        part_type = r.params.get("type", OCTET_STREAM)
        syntax = r.params.get("transfer-syntax")
        if part_type == "*/*" or (
            part_type.endswith("/*") and stored_type.startswith(part_type[:-1])
        ):
            out.append(stored)
        elif syntax == "*" and (part_type in (stored_type, OCTET_STREAM)):
            out.append(stored)  # OHIF asks for octet-stream with * and takes any bitstream
        elif syntax is None and part_type in _FRAME_DEFAULTS:
            out.append(_FRAME_DEFAULTS[part_type])
        elif syntax is not None and frame_media_type(syntax) == part_type:
            out.append(syntax)
    if not out:
        raise NotAcceptable(
            f"cannot answer with {accept!r}: these frames are stored as {stored_type} "
            f"(transfer-syntax={stored}); ask for it, for type={OCTET_STREAM} (decoded) or "
            "a compressed media type with a transfer-syntax the service can encode"
        )
    return out


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
