"""Render one frame of a stored DICOM file as a browser-ready image (API "Rendering (/png)").

The pipeline (PS3.4 N.2, PS3.3 C.11): decode one frame (``pixels``), then for grayscale the
Modality LUT, the VOI LUT and MONOCHROME1 inversion straight to 8 bits (``voi``), for colour
the conversion to 8-bit RGB (``color``); then an optional downscale, then PNG (``encode``).

``bit_depth=16`` gives a 16-bit grayscale PNG of the *modality values* instead of display
values: rounded to integers, plus 32768 when the header allows negative values (e.g.
Hounsfield units + 32768), clipped to 0..65535, never inverted nor windowed; the PNG says
so in a tEXt chunk ``dicom:offset``. Colour images have no modality values: asking for
16 bits of one is an :class:`InvalidParameter`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from dicom_file_service.dicom import elements
from dicom_file_service.dicom import voi as voi_module
from dicom_file_service.dicom.color import rgb_8bit
from dicom_file_service.dicom.encode import encode_png, to_image
from dicom_file_service.dicom.pixels import Frame, decode_frame, read_header
from dicom_file_service.dicom.pixels import frame_count as frame_count
from dicom_file_service.errors import InvalidParameter, ServiceError, UndecodablePixelData

#: Bump when the rendering of the same options changes, so cached renderings are not reused.
RENDER_VERSION = 1

_MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})


@dataclass(frozen=True)
class RenderOptions:
    """What to render: a frame, its VOI, its size and the PNG's bit depth.

    The window override is LINEAR (C.11.2.1.2.1) and replaces the file's VOI; ``voi`` and the
    window apply to grayscale 8-bit output only (colour images and 16-bit modality values
    have no VOI). Invalid combinations raise :class:`InvalidParameter` at construction.
    """

    frame: int = 1  # 1-based
    window_center: float | None = None  # override (both or neither)
    window_width: float | None = None
    voi: Literal["file", "minmax"] = "file"
    width: int | None = None  # downscale to fit, keep aspect, never upscale
    height: int | None = None
    bit_depth: Literal[8, 16] = 8

    def __post_init__(self) -> None:
        if (self.window_center is None) != (self.window_width is None):
            raise InvalidParameter("give both window_center and window_width, or neither")
        if self.window_center is not None and not math.isfinite(self.window_center):
            raise InvalidParameter("window_center must be a finite number")
        if self.window_width is not None and not (
            math.isfinite(self.window_width) and self.window_width > 0
        ):
            raise InvalidParameter("window_width must be a finite number above 0")
        if self.voi not in ("file", "minmax"):
            raise InvalidParameter("voi must be 'file' or 'minmax'")
        if self.bit_depth not in (8, 16):
            raise InvalidParameter("bit_depth must be 8 or 16")
        for name in ("width", "height"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 65535:
                raise InvalidParameter(f"{name} must be between 1 and 65535")

    def cache_key(self) -> str:
        """A stable, short, file-name-safe string of every parameter that changes the output.

        E.g. ``r1-f1-file-8`` or ``r1-f2-c40-w400-file-256x-8``; floats in their shortest
        round-trip form, so equal options always give equal keys.
        """
        parts = [f"r{RENDER_VERSION}", f"f{self.frame}"]
        if self.window_center is not None and self.window_width is not None:
            parts += [f"c{_num(self.window_center)}", f"w{_num(self.window_width)}"]
        parts.append(self.voi)
        if self.width is not None or self.height is not None:
            parts.append(f"{self.width or ''}x{self.height or ''}")
        parts.append(str(self.bit_depth))
        return "-".join(parts)

    @property
    def window(self) -> voi_module.Window | None:
        if self.window_center is None or self.window_width is None:
            return None
        return voi_module.Window(self.window_center, self.window_width, "LINEAR")


def render_png(
    source: str | os.PathLike[str] | BinaryIO,
    options: RenderOptions,
    *,
    max_pixels: int,
    max_bytes: int | None = None,
    frame_table: bytes | None = None,
) -> bytes:
    """One frame of ``source`` as PNG bytes (see :func:`render_array` for the errors).

    ``frame_table`` (``parse.frame_table``, captured at ingest) lets the decoder seek straight
    to an encapsulated frame instead of walking the fragments before it.
    """
    arr, offset = _render_source(source, options, max_pixels, max_bytes, frame_table)
    if arr.dtype == np.uint16:
        return encode_png(arr, text={"dicom:offset": str(offset)})
    return encode_png(arr)


def render_array(
    source: str | os.PathLike[str] | BinaryIO, options: RenderOptions, *, max_pixels: int
) -> NDArray[Any]:
    """One frame of ``source`` as uint8 (H, W) or (H, W, 3), or uint16 (H, W) for 16 bits.

    Raises :class:`NoPixelData`, :class:`FrameOutOfRange`, :class:`ImageTooLarge` (before
    decoding, from Rows x Columns x Samples per Pixel), :class:`UndecodablePixelData`
    (no decoder, corrupt stream, unsupported photometric interpretation),
    :class:`InvalidDicom` (unreadable header) and :class:`InvalidParameter`.
    """
    return _render_source(source, options, max_pixels, None, None)[0]


def _render_source(
    source: str | os.PathLike[str] | BinaryIO,
    options: RenderOptions,
    max_pixels: int,
    max_bytes: int | None,
    frame_table: bytes | None,
) -> tuple[NDArray[Any], int]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            return _render(f, options, max_pixels, max_bytes, frame_table)
    return _render(source, options, max_pixels, max_bytes, frame_table)


def _render(
    f: BinaryIO,
    options: RenderOptions,
    max_pixels: int,
    max_bytes: int | None,
    frame_table: bytes | None,
) -> tuple[NDArray[Any], int]:
    """The output array and, for 16 bits, the offset added to the modality values."""
    start = f.tell()
    header = read_header(f)
    photometric = elements.photometric(header)
    samples = header.get("SamplesPerPixel") or 1
    if options.bit_depth == 16 and (photometric not in _MONOCHROME or samples != 1):
        raise InvalidParameter(
            f"bit_depth=16 is for grayscale images; this one is {photometric or 'colour'}: "
            "ask for bit_depth=8"
        )
    frame = decode_frame(
        f,
        header,
        options.frame,
        max_pixels=max_pixels,
        max_bytes=max_bytes,
        start=start,
        frame_table=frame_table,
    )
    try:
        image, offset = _to_output(frame, options)
        return _downscale(image, options.width, options.height), offset
    except ServiceError:
        raise
    except Exception as exc:  # a malformed LUT or attribute must not escape as a 500
        raise UndecodablePixelData(
            f"cannot render the decoded frame ({frame.photometric}): {type(exc).__name__}: {exc}"
        ) from exc


def _to_output(frame: Frame, options: RenderOptions) -> tuple[NDArray[Any], int]:
    arr = frame.pixels
    photometric = frame.photometric
    if arr.ndim == 2 and photometric != "PALETTE COLOR":
        # Grayscale (MONOCHROME1/2; an unknown single-sample interpretation is shown as 2).
        gs = voi_module.grayscale_pipeline(frame.header, frame.index, photometric)
        if options.bit_depth == 16:
            offset = voi_module.modality_offset_16(gs, arr.dtype)
            return voi_module.modality_16bit(arr, gs), offset
        return (
            voi_module.display_8bit(arr, gs, window=options.window, minmax=options.voi == "minmax"),
            0,
        )
    return rgb_8bit(arr, photometric, frame.header), 0


def _downscale(arr: NDArray[Any], width: int | None, height: int | None) -> NDArray[Any]:
    """Fit within width x height keeping the aspect ratio; never upscale.

    Lanczos with Pillow's ``reducing_gap``: a box reduction by an integer factor first,
    then Lanczos for the rest, which is nearly as good as Lanczos alone and much faster.
    """
    rows, columns = arr.shape[:2]
    scale = min(
        1.0,
        width / columns if width else 1.0,
        height / rows if height else 1.0,
    )
    if scale >= 1.0:
        return arr
    size = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    if arr.dtype == np.uint16:
        floats = Image.fromarray(arr.astype(np.float32), mode="F")
        resized = floats.resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
        sixteen: NDArray[np.uint16] = np.clip(np.rint(np.asarray(resized)), 0, 65535).astype(
            np.uint16
        )
        return sixteen
    resized = to_image(arr).resize(size, Image.Resampling.LANCZOS, reducing_gap=2.0)
    result: NDArray[np.uint8] = np.asarray(resized)
    return result


def _num(value: float) -> str:
    """Shortest round-trip form; integers without '.0'; no '-0'."""
    value = float(value) + 0.0
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def tiny_image() -> bytes:
    """A valid 4x4 CT-like image, made in memory: what start-up warms the decoders with."""
    import io

    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.3")
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = UID("1.2.3")
    ds.StudyInstanceUID, ds.SeriesInstanceUID = UID("1.2.3.1"), UID("1.2.3.2")
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.PixelData = np.arange(16, dtype="<u2").tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def warm_up() -> None:
    """Render a tiny image made in memory, once per process, before the first request.

    The first rendering in a process pays for lazy imports and decoder discovery in pydicom
    and Pillow (about 15 ms); a server does this at start-up instead of on a user's request.
    """
    import io

    render_png(io.BytesIO(tiny_image()), RenderOptions(), max_pixels=64)
