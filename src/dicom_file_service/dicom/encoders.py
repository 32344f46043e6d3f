"""The transfer syntaxes the service can write, and one frame encoded in each.

Native syntaxes (Implicit and Explicit VR Little Endian, Deflated Explicit VR Little Endian)
take any decodable instance. The compressed ones are those an installed encoder writes:
RLE Lossless (pylibjpeg-rle), JPEG-LS lossless and near-lossless (pyjpegls, CharLS), JPEG 2000
lossless and lossy (pylibjpeg-openjpeg), through pydicom's encoders; JPEG Baseline and
Extended for 8-bit samples through Pillow (libjpeg-turbo), and JPEG Lossless (Process 14 and
its Selection Value 1) through GDCM (``gdcm_encode``), which pydicom has no encoder for.
No installed encoder writes HTJ2K, nor 12-bit JPEG Extended that every decoder reads
(libjpeg refuses GDCM's), so those are decoded but never claimed.

Every encoder has limits of its own (bit depths, signedness, samples): ``unencodable`` says,
from the image attributes alone, why an image cannot go in a syntax, so the answer is known
before anything is decoded.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PilImage
from pydicom.pixels.encoders.base import get_encoder

from dicom_file_service.dicom.gdcm_encode import (
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    encode_jpeg_lossless,
)

EXPLICIT_LITTLE = "1.2.840.10008.1.2.1"
IMPLICIT_LITTLE = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
RLE = "1.2.840.10008.1.2.5"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEG_LS_NEAR = "1.2.840.10008.1.2.4.81"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
J2K = "1.2.840.10008.1.2.4.91"

NATIVE = frozenset({EXPLICIT_LITTLE, IMPLICIT_LITTLE, DEFLATED})

#: The allowed error of JPEG-LS near-lossless (NEAR): each sample within 2 of the original,
#: a PSNR above 42 dB even at 8 bits.
JLS_NEAR = 2
#: JPEG 2000 lossy at this PSNR (dB) over the frame's own range of values: OpenJPEG's target
#: is over the bit depth's full range, which a CT's 12 bits of values in 16 make 30 dB too
#: lenient, so the target is raised by the difference.
J2K_PSNR = 50.0
#: JPEG at this quality, colour without chroma subsampling: above 40 dB on the test images
#: (tests/unit/dicom/test_transcode.py), where 4:2:2 loses too much at sharp colour edges.
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Target:
    """A syntax the service writes: its lossiness and, when lossy, the (0028,2114) *Lossy
    Image Compression Method* it adds (PS3.3 C.7.6.1.1.5.1)."""

    uid: str
    lossy: bool = False
    method: str | None = None


TARGETS = {
    t.uid: t
    for t in (
        Target(EXPLICIT_LITTLE),
        Target(IMPLICIT_LITTLE),
        Target(DEFLATED),
        Target(RLE),
        Target(JPEG_BASELINE, True, "ISO_10918_1"),
        Target(JPEG_EXTENDED, True, "ISO_10918_1"),
        Target(JPEG_LOSSLESS),
        Target(JPEG_LOSSLESS_SV1),
        Target(JPEG_LS_LOSSLESS),
        Target(JPEG_LS_NEAR, True, "ISO_14495_1"),
        Target(J2K_LOSSLESS),
        Target(J2K, True, "ISO_15444_1"),
    )
}


@dataclass(frozen=True)
class ImageParams:
    """The Image Pixel module attributes that decide which encoder can take an image."""

    rows: int = 0
    columns: int = 0
    samples: int = 1
    bits_allocated: int = 8
    bits_stored: int = 8
    signed: bool = False
    photometric: str = "MONOCHROME2"
    has_pixels: bool = True
    float_pixels: bool = False


def unencodable(uid: str, image: ImageParams) -> str | None:
    """Why ``image`` cannot be written in ``uid`` (``None``: it can)."""
    if uid not in TARGETS:
        return "no encoder for this transfer syntax"
    if uid in NATIVE or not image.has_pixels:
        return None  # a data set without pixel data goes in any syntax as it is
    if image.float_pixels:
        return "float pixel data has no compressed transfer syntax"
    if image.samples not in (1, 3):
        return f"{image.samples} samples per pixel"
    if TARGETS[uid].lossy and image.photometric == "PALETTE COLOR":
        return "palette indices cannot be compressed lossily"
    if uid == RLE:
        return None if image.bits_allocated in (8, 16, 32) else "bits allocated not 8, 16 or 32"
    if uid in (JPEG_BASELINE, JPEG_EXTENDED):
        if image.bits_allocated != 8 or image.bits_stored > 8 or image.signed:
            return "the JPEG encoder takes unsigned 8-bit samples only"
        return None
    if uid in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        if image.bits_allocated not in (8, 16) or not 2 <= image.bits_stored <= 16:
            return "JPEG Lossless takes 2 to 16 bits"
        return None
    if uid in (JPEG_LS_LOSSLESS, JPEG_LS_NEAR):
        if image.bits_allocated not in (8, 16) or not 2 <= image.bits_stored <= 16:
            return "JPEG-LS takes 2 to 16 bits"
        if uid == JPEG_LS_NEAR and image.signed:
            return "JPEG-LS near-lossless takes unsigned samples only"
        return None
    if image.bits_allocated not in (8, 16, 32) or not 1 <= image.bits_stored <= 24:
        return "JPEG 2000 takes 1 to 24 bits"  # OpenJPEG's limit
    return None


def encoded_photometric(uid: str, image: ImageParams) -> str:
    """(0028,0004) of the encoded frames, for pixels given as RGB or monochrome: JPEG codes
    colour as YCbCr, here with full chroma (PS3.5 8.2.1), JPEG 2000 through its colour
    transform, reversible or not (PS3.5 8.2.4); the others keep the samples as given."""
    if image.samples != 3:
        return image.photometric
    if uid in (JPEG_BASELINE, JPEG_EXTENDED):
        return "YBR_FULL"
    if uid == J2K_LOSSLESS:
        return "YBR_RCT"
    if uid == J2K:
        return "YBR_ICT"
    return image.photometric


def encode_frame(uid: str, pixels: np.ndarray[Any, Any], image: ImageParams) -> bytes:
    """One frame (``rows x columns`` or ``rows x columns x 3``, colour as RGB) encoded in
    ``uid``, a compressed syntax that ``unencodable`` accepted for ``image``."""
    if uid in (JPEG_BASELINE, JPEG_EXTENDED):
        return _jpeg(uid, pixels)
    if uid in (JPEG_LOSSLESS, JPEG_LOSSLESS_SV1):
        return encode_jpeg_lossless(
            uid,
            pixels,
            bits_allocated=image.bits_allocated,
            bits_stored=image.bits_stored,
            signed=image.signed,
            photometric=encoded_photometric(uid, image),
        )
    options: dict[str, Any] = {
        "rows": image.rows,
        "columns": image.columns,
        "samples_per_pixel": image.samples,
        "bits_allocated": image.bits_allocated,
        "bits_stored": image.bits_stored,
        "pixel_representation": int(image.signed),
        "photometric_interpretation": encoded_photometric(uid, image),
        "number_of_frames": 1,
        "planar_configuration": 0,
    }
    if uid == JPEG_LS_NEAR:
        options["jls_error"] = JLS_NEAR
    if uid == J2K:
        options["j2k_psnr"] = [_j2k_target(pixels, image)]
    plugin = {RLE: "pylibjpeg", JPEG_LS_LOSSLESS: "pyjpegls", JPEG_LS_NEAR: "pyjpegls"}
    encoder = get_encoder(uid)
    return bytes(encoder.encode(pixels, encoding_plugin=plugin.get(uid, ""), **options))


def _j2k_target(pixels: np.ndarray[Any, Any], image: ImageParams) -> float:
    full = float(2**image.bits_stored - 1)
    spread = float(pixels.max()) - float(pixels.min()) if pixels.size else full
    return J2K_PSNR + 20 * float(np.log10(full / max(spread, 1.0)))


def _jpeg(uid: str, pixels: np.ndarray[Any, Any]) -> bytes:
    """8-bit JPEG by Pillow: greyscale, or RGB coded as YCbCr without subsampling. A baseline
    stream is an extended (Process 2) stream too, but for its start-of-frame marker: SOF0
    becomes SOF1 for JPEG Extended, which nothing else in the stream depends on."""
    out = io.BytesIO()
    picture = PilImage.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    picture.save(out, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)
    stream = out.getvalue()
    if uid == JPEG_EXTENDED:
        at = _marker(stream, 0xC0)
        stream = stream[:at] + b"\xff\xc1" + stream[at + 2 :]
    return stream


def _marker(stream: bytes, code: int) -> int:
    """Where the header segment with marker ``code`` starts, walking the segments from SOI
    by their lengths (ITU T.81 B.1.1.4), so no byte of a table is taken for a marker."""
    at = 2
    while at + 4 <= len(stream) and stream[at] == 0xFF:
        if stream[at + 1] == code:
            return at
        at += 2 + int.from_bytes(stream[at + 2 : at + 4], "big")
    raise ValueError("the JPEG stream has no start-of-frame marker where expected")
