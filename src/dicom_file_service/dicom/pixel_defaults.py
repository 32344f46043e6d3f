"""Defaults for Type 1 pixel attributes a file omits where only one answer makes sense.

Real modalities leave out attributes the Image Pixel module requires (PS3.3 C.7.6.3) but
whose value is unambiguous: (0028,0103) Pixel Representation absent means unsigned samples
(0, the common case and what other archives and viewers assume), (0028,0002) Samples per
Pixel absent means one sample (a monochrome image), and (0028,0006) Planar Configuration
absent from a colour image means colour-by-pixel (0, the only order JPEG and most encoders
produce). The ingest policy reports each as a warning on the instance; the decoder applies
them, so such an image renders instead of failing. Nothing here changes the stored file.
"""

from __future__ import annotations

from typing import Any

from pydicom.dataset import Dataset

_PIXEL_REPRESENTATION = ("PixelRepresentation", "00280103", "(0028,0103) Pixel Representation")
_SAMPLES = ("SamplesPerPixel", "00280002", "(0028,0002) Samples per Pixel")
_PLANAR = ("PlanarConfiguration", "00280006", "(0028,0006) Planar Configuration")


def _missing(value: Any) -> bool:
    return value is None or value == "" or value == []


def _samples(value: Any) -> int:
    try:
        return int(value) if not _missing(value) else 1
    except (TypeError, ValueError):
        return 1


def defaults_for_json(header: dict[str, Any]) -> list[str]:
    """The defaults the image whose header is ``header`` (DICOM JSON) will be decoded with,
    as warnings: one per attribute it lacks."""

    def value(key: str) -> Any:
        values = header.get(key, {}).get("Value")
        return values[0] if values else None

    said = []
    for _, key, name in (_PIXEL_REPRESENTATION, _SAMPLES):
        if _missing(value(key)):
            default = 0 if key == _PIXEL_REPRESENTATION[1] else 1
            said.append(f"{name} is missing: the pixels are decoded as if it were {default}")
    if _samples(value(_SAMPLES[1])) > 1 and _missing(value(_PLANAR[1])):
        said.append(f"{_PLANAR[2]} is missing: the pixels are decoded as if it were 0")
    return said


def apply_defaults(ds: Dataset) -> None:
    """Give the header ``ds`` (read for decoding, never written back) the defaults above."""
    if _missing(ds.get(_PIXEL_REPRESENTATION[0])):
        ds.PixelRepresentation = 0
    if _missing(ds.get(_SAMPLES[0])):
        ds.SamplesPerPixel = 1
    if _samples(ds.get(_SAMPLES[0])) > 1 and _missing(ds.get(_PLANAR[0])):
        ds.PlanarConfiguration = 0
