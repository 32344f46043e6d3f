"""Arrays to PNG bytes: 8-bit grayscale, 8-bit RGB and 16-bit grayscale.

PNGs are served to browsers and cached, so encoding speed matters more than the last few
percent of size: zlib level 1 is several times faster than Pillow's default (6) and gives
files only slightly larger on medical images. Grayscale images are deflated with the Z_RLE
strategy: on the test images it is both faster and 5-25 % smaller than the default
strategy (long runs of equal filtered bytes); on colour images it is larger, so they keep
the default.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, PngImagePlugin

#: zlib level for PNG: fast, since renderings are served at once and cached.
DEFAULT_COMPRESS_LEVEL = 1
_Z_RLE = 3  # zlib's Z_RLE strategy (Pillow's ``compress_type``)
_Z_DEFAULT_STRATEGY = 0


def encode_png(
    arr: NDArray[Any],
    *,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
    text: Mapping[str, str] | None = None,
) -> bytes:
    """Encode ``arr`` as PNG.

    Accepts uint8 (H, W) → 8-bit grayscale, uint8 (H, W, 3) → 8-bit RGB, uint16 (H, W) →
    16-bit grayscale. ``text`` is written as tEXt chunks (e.g. how to read 16-bit values).
    """
    image = to_image(arr)
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    strategy = _Z_DEFAULT_STRATEGY if image.mode == "RGB" else _Z_RLE
    out = io.BytesIO()
    image.save(
        out, format="PNG", compress_level=compress_level, compress_type=strategy, pnginfo=info
    )
    return out.getvalue()


def to_image(arr: NDArray[Any]) -> Image.Image:
    """The Pillow image for an array ``encode_png`` accepts (no copy where Pillow allows)."""
    unsigned = arr.dtype.kind == "u"
    if unsigned and arr.dtype.itemsize == 1 and arr.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(arr), mode="L")
    if unsigned and arr.dtype.itemsize == 1 and arr.ndim == 3 and arr.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")
    if unsigned and arr.dtype.itemsize == 2 and arr.ndim == 2:
        # Pillow's "I;16" is little-endian 16-bit; the PNG writer converts to big-endian.
        data = np.ascontiguousarray(arr, dtype="<u2")
        return Image.frombuffer("I;16", (arr.shape[1], arr.shape[0]), data, "raw", "I;16", 0, 1)
    raise ValueError(f"cannot encode an array of {arr.dtype} with shape {arr.shape} as PNG")


def png_to_jpeg(png: bytes, *, quality: int = 90) -> bytes:
    """An 8-bit PNG (grayscale or RGB) re-encoded as baseline JPEG (PS3.18 rendered media)."""
    with Image.open(io.BytesIO(png)) as image:
        if image.mode not in ("L", "RGB"):
            raise ValueError(f"a {image.mode} image has no 8-bit JPEG form")
        out = io.BytesIO()
        image.save(out, format="JPEG", quality=quality)
    return out.getvalue()
