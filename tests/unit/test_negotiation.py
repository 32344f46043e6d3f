"""The transfer syntaxes an Accept header asks for, and which one an instance goes in."""

from __future__ import annotations

import pytest

from dicom_file_service.api.negotiation import frame_syntaxes, pick_syntax, retrieve_syntaxes
from dicom_file_service.errors import NotAcceptable

EXPLICIT = "1.2.840.10008.1.2.1"
JPEG = "1.2.840.10008.1.2.4.50"
JLS = "1.2.840.10008.1.2.4.80"
DICOM = 'multipart/related; type="application/dicom"'


def test_instances_default_to_explicit_little_endian_and_follow_q() -> None:
    assert retrieve_syntaxes(None) == [EXPLICIT]
    assert retrieve_syntaxes("*/*") == [EXPLICIT]
    assert retrieve_syntaxes(DICOM) == [EXPLICIT]
    assert retrieve_syntaxes(f"{DICOM}; transfer-syntax=*") == ["*"]
    accept = f"{DICOM}; transfer-syntax={EXPLICIT}; q=0.4, {DICOM}; transfer-syntax={JPEG}"
    assert retrieve_syntaxes(accept) == [JPEG, EXPLICIT]
    assert retrieve_syntaxes(f"{DICOM}; transfer-syntax={JPEG}; q=0, {DICOM}") == [EXPLICIT]
    with pytest.raises(NotAcceptable):
        retrieve_syntaxes("application/dicom+json")


def test_frames_default_to_native_pixels_and_media_types_name_their_syntaxes() -> None:
    assert frame_syntaxes(None, JPEG) == [EXPLICIT]
    assert frame_syntaxes('multipart/related; type="image/jpeg"', JPEG) == [JPEG]
    assert frame_syntaxes('multipart/related; type="image/jls"', JPEG) == [JLS]
    ohif = "multipart/related; type=application/octet-stream; transfer-syntax=*"
    assert frame_syntaxes(ohif, JLS) == [JLS]
    mismatch = f'multipart/related; type="image/jpeg"; transfer-syntax={JLS}'
    with pytest.raises(NotAcceptable):
        frame_syntaxes(mismatch, JPEG)


def test_the_first_choice_met_wins_and_none_met_is_a_406() -> None:
    def no_jpeg(target: str) -> str | None:
        return "16-bit" if target == JPEG else None

    assert pick_syntax(JLS, [JPEG, "*"], no_jpeg, "it") == JLS
    assert pick_syntax(EXPLICIT, [JPEG, JLS], no_jpeg, "it") == JLS
    assert pick_syntax(JPEG, [JPEG], no_jpeg, "it") == JPEG  # stored so: no encoder needed
    with pytest.raises(NotAcceptable, match="16-bit"):
        pick_syntax(EXPLICIT, [JPEG], no_jpeg, "it")
