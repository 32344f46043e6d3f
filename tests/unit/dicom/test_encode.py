"""PNG encoding: what goes in comes back out of Pillow unchanged, in the right PNG mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dicom_file_service.dicom.encode import encode_png

RNG = np.random.default_rng(20240601)


def decode(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image


@pytest.mark.parametrize(
    ("arr", "mode"),
    [
        (RNG.integers(0, 256, (37, 53), dtype=np.uint8), "L"),
        (RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8), "RGB"),
        (RNG.integers(0, 65536, (37, 53), dtype=np.uint16), "I;16"),
    ],
    ids=["gray8", "rgb8", "gray16"],
)
def test_png_decodes_back_to_the_same_array(arr: np.ndarray, mode: str) -> None:
    with decode(encode_png(arr)) as image:
        assert image.mode == mode
        assert image.size == (53, 37)
        back = np.asarray(image)
    np.testing.assert_array_equal(back, arr)


def test_sixteen_bit_png_header_says_16_bits() -> None:
    png = encode_png(np.array([[0, 65535]], dtype=np.uint16))
    # IHDR: width, height, then bit depth 16 and colour type 0 (grayscale)
    assert png[24:26] == bytes([16, 0])


def test_non_contiguous_and_big_endian_arrays_encode_correctly() -> None:
    base = RNG.integers(0, 65536, (20, 30), dtype=np.uint16)
    with decode(encode_png(base.astype(">u2"))) as image:
        np.testing.assert_array_equal(np.asarray(image), base)
    rgb = RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    view = rgb[::2, ::3]
    with decode(encode_png(view)) as image:
        np.testing.assert_array_equal(np.asarray(image), view)


def test_text_chunks_are_written() -> None:
    png = encode_png(np.zeros((2, 2), dtype=np.uint16), text={"dicom:offset": "32768"})
    with decode(png) as image:
        assert image.info["dicom:offset"] == "32768"


def test_smooth_images_are_compressed() -> None:
    ramp = np.add.outer(np.arange(256), np.arange(256)) // 3
    rgb = np.stack([ramp, ramp // 2, 255 - ramp], axis=-1).astype(np.uint8) & 0xF7
    assert len(encode_png(rgb)) < rgb.nbytes / 20


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((4, 4), dtype=np.float32),
        np.zeros((4, 4, 4), dtype=np.uint8),
        np.zeros((4, 4, 3), dtype=np.uint16),
        np.zeros(4, dtype=np.uint8),
        np.zeros((0, 5), dtype=np.uint8),
    ],
    ids=["float", "rgba", "rgb16", "1d", "empty"],
)
def test_other_arrays_are_refused(arr: np.ndarray) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        encode_png(arr)
