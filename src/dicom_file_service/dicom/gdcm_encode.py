"""JPEG Lossless (Process 14, and its Selection Value 1) written by GDCM.

pydicom has no JPEG Lossless encoder, and of the installed libraries only GDCM (its build of
the IJG lossless codec) writes one; yet 1.2.840.10008.1.2.4.70 is the lossless syntax many
workstations and toolkits ask for first. One frame of native samples goes in as a GDCM
image and comes out as the one fragment GDCM's JPEG codec writes per frame. GDCM's Python
objects are reference counted by GDCM: the image must come from an ``ImageWriter`` that
outlives it (as pydicom's own GDCM encoder does), or GDCM aborts the process.
"""

from __future__ import annotations

from typing import Any

import gdcm
import numpy as np

JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"

_SYNTAX = {
    JPEG_LOSSLESS: gdcm.TransferSyntax.JPEGLosslessProcess14,
    JPEG_LOSSLESS_SV1: gdcm.TransferSyntax.JPEGLosslessProcess14_1,
}


def encode_jpeg_lossless(
    uid: str,
    pixels: np.ndarray[Any, Any],
    *,
    bits_allocated: int,
    bits_stored: int,
    signed: bool,
    photometric: str,
) -> bytes:
    """One frame (``rows x columns`` or ``rows x columns x 3``) in JPEG Lossless ``uid``."""
    rows, columns = pixels.shape[0], pixels.shape[1]
    samples = 3 if pixels.ndim == 3 else 1
    writer = gdcm.ImageWriter()  # owns the image below for as long as it is used
    image = writer.GetImage()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((columns, rows, 1))
    pi_type = gdcm.PhotometricInterpretation.GetPIType(photometric)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.ExplicitVRLittleEndian))
    image.SetPixelFormat(
        gdcm.PixelFormat(samples, bits_allocated, bits_stored, bits_stored - 1, int(signed))
    )
    if samples > 1:
        image.SetPlanarConfiguration(0)
    dtype = f"<{'i' if signed else 'u'}{bits_allocated // 8}"
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetByteStringValue(np.ascontiguousarray(pixels, dtype=dtype).tobytes())
    image.SetDataElement(element)

    converter = gdcm.ImageChangeTransferSyntax()
    converter.SetTransferSyntax(gdcm.TransferSyntax(_SYNTAX[uid]))
    converter.SetInput(image)
    if not converter.Change():
        raise ValueError("GDCM could not encode the frame as JPEG Lossless")
    fragments = converter.GetOutput().GetDataElement().GetSequenceOfFragments()
    if fragments is None or fragments.GetNumberOfFragments() != 1:
        raise ValueError("GDCM wrote JPEG Lossless in other than one fragment")
    buffer = fragments.GetFragment(0).GetByteValue().GetBuffer()
    # GDCM hands char* back as str: re-encode it to the bytes it was.
    return bytes(buffer.encode("utf-8", "surrogateescape"))
