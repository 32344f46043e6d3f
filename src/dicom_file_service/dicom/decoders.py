"""The decoder chain, chosen once: which library decodes each compressed transfer syntax.

pydicom tries the plugins of a transfer syntax's decoder in order until one succeeds; with
python-gdcm installed it would try GDCM first. The order here is deliberate:

1. pylibjpeg (libjpeg for the JPEG processes, OpenJPEG for JPEG 2000 and HTJ2K, its RLE
   plugin), pyjpegls, Pillow and pydicom's own, in pydicom's order. pylibjpeg's libjpeg is
   what the rendering tests pin against DCMTK, so it stays first where it decodes at all.
2. GDCM last, as the fallback for streams the others refuse; except for JPEG 2000 (lossless
   and lossy, Part 1), where GDCM stays first as pydicom has it: its OpenJPEG decodes a
   frame on all cores (MR2_J2KR: 51 ms against pylibjpeg's 83 ms here, the same CPU time),
   and on every JPEG 2000 test file the two decode the same samples (a test holds them to
   it); the first image of a study is what a user waits for.
3. For JPEG Extended (1.2.840.10008.1.2.4.51) our own GDCM plugin in place of pydicom's,
   which declines 12-bit samples although GDCM decodes them (with the IJG library's 12-bit
   build): libjpeg refuses some real 12-bit encoders' streams ("scan start must be zero"),
   and Pillow reads only 8-bit JPEG. The frames it decodes match DCMTK's ``dcmdjpeg``.

``configure`` is called when this module is imported (by ``pixels``, so before anything
decodes) and is idempotent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydicom import uid
from pydicom.pixels.decoders.base import get_decoder

if TYPE_CHECKING:
    from pydicom.pixels.decoders.base import DecodeRunner

_GDCM = "gdcm"
_GDCM_JPEG_EXTENDED = "gdcm-jpeg-extended"
# Where GDCM decodes first (see the module's docstring).
GDCM_FIRST = (uid.JPEG2000Lossless, uid.JPEG2000)

try:
    import gdcm

    _HAVE_GDCM = True
except ImportError:  # pragma: no cover - python-gdcm is a dependency
    _HAVE_GDCM = False


DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("gdcm",)}
"""What the plugin below needs, in the form pydicom's plugin interface asks for."""


def is_available(transfer_syntax: str) -> bool:
    """Part of pydicom's decoder plugin interface: the plugin decodes JPEG Extended only."""
    return _HAVE_GDCM and transfer_syntax == uid.JPEGExtended12Bit


def decode_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One JPEG Extended frame (8- or 12-bit samples) decoded by GDCM, as pydicom's own GDCM
    plugin does for the other JPEG processes."""
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())

    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    pi_type = gdcm.PhotometricInterpretation.GetPIType(runner.photometric_interpretation)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(pi_type))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    ts_type = gdcm.TransferSyntax.GetTSType(str.__str__(uid.JPEGExtended12Bit))
    image.SetTransferSyntax(gdcm.TransferSyntax(ts_type))
    bits = runner.bits_stored
    image.SetPixelFormat(
        gdcm.PixelFormat(
            runner.samples_per_pixel,
            runner.bits_allocated,
            bits,
            bits - 1,
            runner.pixel_representation,
        )
    )
    buffer = image.GetBuffer()
    if not buffer:
        raise ValueError("GDCM could not decode the JPEG Extended stream")
    # GDCM hands char* back as str: re-encode it to the bytes it was.
    return bytes(buffer.encode("utf-8", "surrogateescape"))


def configure() -> None:
    """Put the plugins of every decoder in the order the module docstring gives."""
    if not _HAVE_GDCM:
        return
    gdcm.Trace.WarningOff()  # the IJG library's retries are not the service's to log
    gdcm.Trace.ErrorOff()
    for syntax in uid.AllTransferSyntaxes:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:  # a syntax nothing decodes (or that needs no decoding)
            continue
        if _GDCM_JPEG_EXTENDED in decoder.available_plugins or syntax in GDCM_FIRST:
            continue
        if _GDCM in decoder.available_plugins:
            decoder.remove_plugin(_GDCM)
            if syntax != uid.JPEGExtended12Bit:
                decoder.add_plugin(_GDCM, ("pydicom.pixels.decoders.gdcm", "_decode_frame"))
        if syntax == uid.JPEGExtended12Bit:
            decoder.add_plugin(_GDCM_JPEG_EXTENDED, (__name__, "decode_frame"))


configure()
