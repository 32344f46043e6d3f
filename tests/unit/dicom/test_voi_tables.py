"""Integer frames go through a table of the values they use; every pixel must come out as the
standard's formulas give it pixel by pixel (the float path, which has no table)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dicom_file_service.dicom.voi import (
    Grayscale,
    Lut,
    Window,
    display_8bit,
    modality_16bit,
    modality_offset_16,
    modality_values,
)

_RNG = np.random.default_rng(20261205)


def _frame(dtype: Any, low: int, high: int) -> np.ndarray[Any, Any]:
    """A 64 x 48 frame of ``dtype`` between ``low`` and ``high``, both ends present."""
    arr = _RNG.integers(low, high, size=(64, 48), endpoint=True).astype(dtype)
    arr[0, 0], arr[-1, -1] = low, high
    return arr


_FRAMES = [
    pytest.param(np.uint8, 0, 255, id="uint8"),
    pytest.param(np.int8, -128, 127, id="int8"),
    pytest.param(np.uint16, 0, 65535, id="uint16-whole-range"),
    pytest.param(np.int16, -32768, 32767, id="int16-whole-range"),
    pytest.param(np.int16, -1024, 3071, id="int16-ct"),
    pytest.param(np.uint16, 900, 1100, id="uint16-narrow"),
    pytest.param(np.uint16, 7, 7, id="one-value"),
]
_PIPELINES = [
    pytest.param(Grayscale(), id="identity"),
    pytest.param(Grayscale(slope=0.5, intercept=-1024.0, invert=True), id="rescale-inverted"),
    pytest.param(
        Grayscale(modality_lut=Lut(first=-50, data=np.linspace(4000, 0, 300), bits=16)),
        id="modality-lut",
    ),
    pytest.param(Grayscale(voi_lut=Lut(first=0, data=np.arange(4096.0), bits=12)), id="voi-lut"),
]


@pytest.mark.parametrize(("dtype", "low", "high"), _FRAMES)
@pytest.mark.parametrize("gs", _PIPELINES)
@pytest.mark.parametrize(
    ("window", "minmax"),
    [
        (None, True),
        (None, False),
        (Window(40.0, 400.0, "LINEAR"), False),
        (Window(1000.0, 1.0, "LINEAR"), False),
        (Window(30.0, 90.0, "SIGMOID"), False),
    ],
    ids=["minmax", "file-voi", "window", "step", "sigmoid"],
)
def test_the_table_gives_each_pixel_what_the_formulas_give(
    dtype: Any, low: int, high: int, gs: Grayscale, window: Window | None, minmax: bool
) -> None:
    arr = _frame(dtype, low, high)
    tabled = display_8bit(arr, gs, window=window, minmax=minmax)
    pixel_by_pixel = display_8bit(arr.astype(np.float64), gs, window=window, minmax=minmax)
    assert tabled.dtype == np.uint8 and tabled.shape == arr.shape
    np.testing.assert_array_equal(tabled, pixel_by_pixel)


@pytest.mark.parametrize(("dtype", "low", "high"), _FRAMES)
@pytest.mark.parametrize("gs", _PIPELINES)
def test_16_bit_modality_values_from_the_table_are_the_formulas(
    dtype: Any, low: int, high: int, gs: Grayscale
) -> None:
    arr = _frame(dtype, low, high)
    tabled = modality_16bit(arr, gs)
    values = np.rint(modality_values(arr.astype(np.float64), gs))
    expected = np.clip(values + modality_offset_16(gs, arr.dtype), 0, 65535)
    assert tabled.dtype == np.uint16
    np.testing.assert_array_equal(tabled, expected.astype(np.uint16))
