"""The rendering pipeline on real files: each behaviour checked against an independent
computation of the standard's formula from pydicom's pixel data, not against stored values.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicom_file_service.dicom.render import RenderOptions, frame_count, render_array, render_png
from dicom_file_service.errors import (
    FrameOutOfRange,
    ImageTooLarge,
    InvalidParameter,
    NoPixelData,
    ServiceError,
    UndecodablePixelData,
)
from tests.datafiles import data_file as datafile

LIMIT = 50_000_000


def render(source: str | Path | BinaryIO, **options: Any) -> np.ndarray:
    if isinstance(source, str):
        source = datafile(source)
    return render_array(source, RenderOptions(**options), max_pixels=LIMIT)


def modality(name: str) -> np.ndarray:
    """Rescaled values of frame 1, computed here with pydicom (PS3.4 N.2.1.1)."""
    ds = dcmread(datafile(name))
    stored = ds.pixel_array.astype(np.float64)
    return stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def copy_with(name: str, tmp_path: Path, change: Callable[[Dataset], None]) -> Path:
    ds = dcmread(datafile(name))
    change(ds)
    out = tmp_path / name
    ds.save_as(out)
    return out


def linear(x: np.ndarray, c: float, w: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 to 0..255, truncated."""
    y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255
    return np.clip(y, 0, 255).astype(np.uint8)


class CountingReader(io.RawIOBase):
    """A file that counts the bytes read from it."""

    def __init__(self, path: Path) -> None:
        self._f = path.open("rb")
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._f.read(len(buffer))
        buffer[: len(data)] = data
        self.bytes_read += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def close(self) -> None:
        self._f.close()
        super().close()


# --- grayscale ---------------------------------------------------------------------------


def test_default_uses_the_files_first_window_after_rescale() -> None:
    # MR2: Rescale Slope 3.774114 (the trap of a naive pipeline), window 1000 / 2000
    ours = render("MR2_UNCI.dcm")
    np.testing.assert_array_equal(ours, linear(modality("MR2_UNCI.dcm"), 1000, 2000))


def test_signed_pixels_with_a_narrow_window() -> None:
    # 693: Pixel Representation 1, 14 bits stored, intercept -1024, window 40 / 100
    ours = render("693_UNCI.dcm")
    np.testing.assert_array_equal(ours, linear(modality("693_UNCI.dcm"), 40, 100))
    assert 0 < ours.mean() < 255


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    mono1 = render("RG3_UNCR.dcm").astype(np.int16)

    def as_mono2(ds: Dataset) -> None:
        ds.PhotometricInterpretation = "MONOCHROME2"

    mono2 = render(copy_with("RG3_UNCR.dcm", tmp_path, as_mono2)).astype(np.int16)
    # floor(255 - y) is 255 - floor(y), or one less where y has a fraction
    assert set(np.unique(255 - mono2 - mono1)) <= {0, 1}
    assert np.corrcoef(mono1.ravel(), mono2.ravel())[0, 1] < -0.99


def test_window_override_changes_the_output() -> None:
    default = render("CT_small.dcm")
    narrow = render("CT_small.dcm", window_center=40, window_width=80)
    assert not np.array_equal(default, narrow)
    hu = modality("CT_small.dcm")
    np.testing.assert_array_equal(narrow, linear(hu, 40, 80))
    assert (narrow[hu <= 0] == 0).all() and (narrow[hu > 79] == 255).all()


def test_minmax_spans_the_full_range_and_ignores_the_file_window() -> None:
    hu = modality("MR2_UNCI.dcm")
    ours = render("MR2_UNCI.dcm", voi="minmax")
    expected = np.floor((hu - hu.min()) / (hu.max() - hu.min()) * 255).astype(np.uint8)
    assert np.abs(ours.astype(int) - expected).max() <= 1
    assert ours.min() == 0 and ours.max() == 255


def _with_function(function: str, center: float, width: float) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = center, width, function

    return change


def test_linear_exact_differs_from_linear(tmp_path: Path) -> None:
    hu = modality("CT_small.dcm")
    exact = render(copy_with("CT_small.dcm", tmp_path, _with_function("LINEAR_EXACT", 40, 10)))
    plain = render(copy_with("CT_small.dcm", tmp_path, _with_function("LINEAR", 40, 10)))
    # C.11.2.1.3.2: y = ((x - c) / w + 0.5) * 255, clipped
    expected = np.clip(((hu - 40) / 10 + 0.5) * 255, 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(exact, expected)
    np.testing.assert_array_equal(plain, linear(hu, 40, 10))
    assert not np.array_equal(exact, plain)


def test_sigmoid(tmp_path: Path) -> None:
    hu = modality("CT_small.dcm")
    ours = render(copy_with("CT_small.dcm", tmp_path, _with_function("SIGMOID", 40, 400)))
    # C.11.2.1.3.1: y = 255 / (1 + exp(-4 (x - c) / w))
    expected = np.floor(255 / (1 + np.exp(-4 * (hu - 40) / 400)))
    assert np.abs(ours - expected).max() <= 1
    assert not np.array_equal(ours, linear(hu, 40, 400))


def _voi_lut_expected(ds: Dataset) -> np.ndarray:
    item = ds.VOILUTSequence[0]
    entries, first, bits = item.LUTDescriptor
    lut = np.asarray(item.LUTData, dtype=np.int64)
    index = np.clip(ds.pixel_array.astype(np.int64) - first, 0, entries - 1)
    # C.11.2.1.1: the LUT's 2^bits output range spread over 256 levels
    expected: np.ndarray = (lut[index] * 256 // 2**bits).astype(np.uint8)
    return expected


def test_voi_lut_sequence(tmp_path: Path) -> None:
    np.testing.assert_array_equal(
        render("vlut_04.dcm"), _voi_lut_expected(dcmread(datafile("vlut_04.dcm")))
    )

    def gamma(ds: Dataset) -> None:  # vlut_04's own LUT is a scaled identity: make it a curve
        x = np.arange(256) / 255
        ds.VOILUTSequence[0].LUTData = [int(v) for v in (x**2.2 * 65535).round()]

    curved = copy_with("vlut_04.dcm", tmp_path, gamma)
    ours = render(curved)
    np.testing.assert_array_equal(ours, _voi_lut_expected(dcmread(curved)))
    assert ours.mean() < render("vlut_04.dcm").mean() - 20


def test_modality_lut_sequence() -> None:
    ds = dcmread(datafile("mlut_18.dcm"))
    item = ds.ModalityLUTSequence[0]
    entries, first, _ = item.LUTDescriptor
    lut = np.asarray(item.LUTData, dtype=np.float64)
    values = lut[np.clip(ds.pixel_array.astype(np.int64) - first, 0, entries - 1)]
    # no window in the file: the min-max window of the modality values
    expected = np.floor((values - values.min()) / (values.max() - values.min()) * 255)
    np.testing.assert_array_equal(render("mlut_18.dcm"), expected.astype(np.uint8))


def test_bits_above_bits_stored_are_ignored_and_signed_values_sign_extended(
    tmp_path: Path,
) -> None:
    true = np.arange(-32, 32, dtype=np.int16).reshape(8, 8) * 60  # fits 12 bits signed
    garbage = (true.astype(np.uint16) & 0x0FFF) | 0xA000  # e.g. overlay bits up high

    def twelve_bit_signed(ds: Dataset) -> None:
        ds.Rows = ds.Columns = 8
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 1
        ds.PixelData = garbage.tobytes()
        del ds.RescaleSlope, ds.RescaleIntercept

    ours = render(
        copy_with("CT_small.dcm", tmp_path, twelve_bit_signed), window_center=0, window_width=4000
    )
    np.testing.assert_array_equal(ours, linear(true.astype(np.float64), 0, 4000))


def test_enhanced_multiframe_uses_the_functional_groups() -> None:
    # eCT_Supplemental: rescale -1024 and window 49 / 102 only in the Shared Functional Groups
    ds = dcmread(datafile("eCT_Supplemental.dcm"))
    assert "WindowCenter" not in ds and "RescaleIntercept" not in ds
    hu = ds.pixel_array[0].astype(np.float64) - 1024
    np.testing.assert_array_equal(render("eCT_Supplemental.dcm"), linear(hu, 49, 102))


def test_float_pixel_data_renders_min_max(tmp_path: Path) -> None:
    values = np.linspace(-1.5, 3.5, 40, dtype=np.float32).reshape(2, 4, 5)
    values[1] *= -1

    def float_frames(ds: Dataset) -> None:
        del ds.PixelData, ds.RescaleSlope, ds.RescaleIntercept, ds.PixelRepresentation
        ds.Rows, ds.Columns, ds.NumberOfFrames = 4, 5, 2
        ds.BitsAllocated, ds.BitsStored = 32, 32
        ds.FloatPixelData = values.tobytes()

    path = copy_with("CT_small.dcm", tmp_path, float_frames)
    for frame in (1, 2):
        x = values[frame - 1].astype(np.float64)
        expected = np.floor((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8)
        np.testing.assert_array_equal(render(path, frame=frame), expected)


# --- colour ------------------------------------------------------------------------------


def test_palette_colour() -> None:
    ds = dcmread(datafile("OBXXXX1A.dcm"))
    luts = [
        np.frombuffer(ds[f"{c}PaletteColorLookupTableData"].value, "<u2")
        for c in ("Red", "Green", "Blue")
    ]
    expected = np.stack([lut[ds.pixel_array] >> 8 for lut in luts], axis=-1).astype(np.uint8)
    ours = render("OBXXXX1A.dcm")
    np.testing.assert_array_equal(ours, expected)
    assert (ours[..., 0] != ours[..., 2]).any()
    np.testing.assert_array_equal(render("OBXXXX1A_expb.dcm"), ours)  # LUTs in big endian


def test_ybr_full_422_is_converted_to_rgb_once() -> None:
    # The same colour bars as SC_rgb.dcm, stored as YBR_FULL_422 (lossy only by subsampling).
    original = render("SC_rgb.dcm").astype(np.int16)
    for name in ("SC_ybr_full_422_uncompressed.dcm", "SC_rgb_dcmtk_+eb+cy+s2.dcm"):
        ours = render(name)
        assert ours.shape == original.shape
        assert np.abs(ours - original).mean() < 3, name


def test_planar_configuration_1_equals_0() -> None:
    assert dcmread(datafile("color-pl.dcm")).PlanarConfiguration == 1
    np.testing.assert_array_equal(render("color-pl.dcm"), render("color-px.dcm"))


def test_16_bit_colour_is_shifted_to_8_bits() -> None:
    sixteen = render("SC_rgb_16bit.dcm")
    np.testing.assert_array_equal(sixteen, dcmread(datafile("SC_rgb_16bit.dcm")).pixel_array >> 8)
    np.testing.assert_array_equal(render("SC_rgb_32bit.dcm"), sixteen)


def test_jpeg_ls_and_jpeg_2000_decode_like_the_uncompressed_file() -> None:
    reference = render("MR_small.dcm")
    for name in ("MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "MR_small_RLE.dcm"):
        np.testing.assert_array_equal(render(name), reference, err_msg=name)


# --- frames, errors and limits -----------------------------------------------------------


def test_multiframe_selects_one_frame_and_reads_only_that_frame() -> None:
    path = datafile("emri_small.dcm")
    one, two = render("emri_small.dcm", frame=1), render("emri_small.dcm", frame=2)
    assert one.shape == two.shape == (64, 64)
    assert not np.array_equal(one, two)
    for name, frames in (
        ("emri_small.dcm", 10),
        ("emri_small_jpeg_2k_lossless.dcm", 10),
        ("color3d_jpeg_baseline.dcm", 120),
    ):
        path = datafile(name)
        reader = CountingReader(path)
        render(reader, frame=2)  # type: ignore[arg-type]
        # the header and about one frame's worth of the pixel data, not all of them
        assert reader.bytes_read < os.path.getsize(path) * 3 / frames, name


def test_frame_count() -> None:
    assert frame_count(dcmread(datafile("emri_small.dcm"), stop_before_pixels=True)) == 10
    assert frame_count(dcmread(datafile("CT_small.dcm"), stop_before_pixels=True)) == 1


@pytest.mark.parametrize("frame", [0, 11])
def test_frame_out_of_range(frame: int) -> None:
    with pytest.raises(FrameOutOfRange, match="1 to 10"):
        render("emri_small.dcm", frame=frame)


def test_no_pixel_data() -> None:
    with pytest.raises(NoPixelData):
        render("rtplan.dcm")


def test_max_pixels_is_checked_before_decoding() -> None:
    path = datafile("CT_small.dcm")
    reader = CountingReader(path)
    with pytest.raises(ImageTooLarge, match="128 x 128"):
        render_array(reader, RenderOptions(), max_pixels=128 * 128 - 1)  # type: ignore[arg-type]
    # The header, and at most a read-ahead chunk of the 32 KiB of pixel data
    assert reader.bytes_read < os.path.getsize(path) - 128 * 128 * 2 + 4096
    assert render_array(path, RenderOptions(), max_pixels=128 * 128).shape == (128, 128)


def test_undecodable_pixel_data_names_the_transfer_syntax() -> None:
    with pytest.raises(UndecodablePixelData, match=r"JPEG 2000.*1\.2\.840\.10008\.1\.2\.4\.91"):
        render("JPEG2000-embedded-sequence-delimiter.dcm")
    with pytest.raises(UndecodablePixelData, match="Explicit VR Little Endian"):
        render("MR_truncated.dcm")


def test_a_decoder_panic_is_undecodable_pixel_data() -> None:
    # pylibjpeg-rle is Rust: a corrupt segment makes it panic (a BaseException, not Exception)
    path = datafile("MR_small_RLE.dcm")
    with path.open("rb") as f:
        dcmread(f, stop_before_pixels=True)
        pixel_data_at = f.tell()
    data = bytearray(path.read_bytes())
    data[pixel_data_at + 121] = 0x81  # a run length pointing past the end of the segment
    with pytest.raises(UndecodablePixelData, match=r"RLE Lossless.*PanicException"):
        render(io.BytesIO(bytes(data)))


@pytest.mark.filterwarnings("ignore::UserWarning:pydicom")
@pytest.mark.parametrize(
    "name", ["CT_small.dcm", "emri_small_jpeg_2k_lossless.dcm", "OBXXXX1A_rle.dcm", "vlut_04.dcm"]
)
def test_corrupt_files_raise_only_domain_errors(name: str) -> None:
    rng = np.random.default_rng(7)
    data = datafile(name).read_bytes()
    outcomes = set()
    for attempt in range(24):
        corrupt = bytearray(data)
        if attempt % 2:
            corrupt = corrupt[: int(rng.integers(0, len(data)))]
        else:
            for at in rng.integers(0, len(data), size=int(rng.integers(1, 16))):
                corrupt[at] = int(rng.integers(0, 256))
        try:
            render(io.BytesIO(bytes(corrupt)), frame=1 + attempt % 2)
            outcomes.add("rendered")
        except ServiceError as exc:
            outcomes.add(exc.code)
    assert len(outcomes) > 1  # the corruptions did reach the decoder and the checks


def test_downscale_keeps_the_aspect_ratio_and_never_upscales() -> None:
    assert render("US1_UNCR.dcm").shape == (480, 640, 3)
    assert render("US1_UNCR.dcm", width=160).shape == (120, 160, 3)
    assert render("US1_UNCR.dcm", height=60).shape == (60, 80, 3)
    assert render("US1_UNCR.dcm", width=160, height=30).shape == (30, 40, 3)
    assert render("CT_small.dcm", width=1000, height=1000).shape == (128, 128)
    full = render("CT_small.dcm").astype(np.float64)
    half = render("CT_small.dcm", width=64).astype(np.float64)
    box = full.reshape(64, 2, 64, 2).mean(axis=(1, 3))
    assert np.abs(half - box).mean() < 4  # a filtered reduction, not a subsampling


def test_bit_depth_16_gives_a_16_bit_png_of_the_modality_values() -> None:
    png = render_png(datafile("CT_small.dcm"), RenderOptions(bit_depth=16), max_pixels=LIMIT)
    with Image.open(io.BytesIO(png)) as image:
        assert image.mode == "I;16"
        assert image.info["dicom:offset"] == "32768"
        values = np.asarray(image).astype(np.int64)
    np.testing.assert_array_equal(values - 32768, modality("CT_small.dcm").astype(np.int64))
    # unsigned data without rescale: the stored values themselves, MONOCHROME1 not inverted
    rg = render("RG3_UNCR.dcm", bit_depth=16)
    np.testing.assert_array_equal(rg, dcmread(datafile("RG3_UNCR.dcm")).pixel_array)


def test_bit_depth_16_of_a_colour_image_is_invalid() -> None:
    with pytest.raises(InvalidParameter, match="grayscale"):
        render("US1_UNCR.dcm", bit_depth=16)


def test_png_is_grayscale_or_rgb() -> None:
    for name, mode in (("CT_small.dcm", "L"), ("US1_UNCR.dcm", "RGB")):
        png = render_png(datafile(name), RenderOptions(), max_pixels=LIMIT)
        with Image.open(io.BytesIO(png)) as image:
            assert image.format == "PNG" and image.mode == mode
            np.testing.assert_array_equal(np.asarray(image), render(name))


# --- options -----------------------------------------------------------------------------


def test_cache_key_is_distinct_for_distinct_options() -> None:
    variants = [
        RenderOptions(),
        RenderOptions(frame=2),
        RenderOptions(window_center=40, window_width=400),
        RenderOptions(window_center=40, window_width=401),
        RenderOptions(window_center=40.5, window_width=400),
        RenderOptions(voi="minmax"),
        RenderOptions(width=64),
        RenderOptions(height=64),
        RenderOptions(width=64, height=64),
        RenderOptions(bit_depth=16),
    ]
    keys = [o.cache_key() for o in variants]
    assert len(set(keys)) == len(keys)
    assert RenderOptions(window_center=40.0, window_width=400).cache_key() == keys[2]
    assert all(k.replace("-", "").replace(".", "").isalnum() and len(k) < 80 for k in keys)


@pytest.mark.parametrize(
    "options",
    [
        {"window_center": 40},
        {"window_width": 40},
        {"window_center": 40, "window_width": 0},
        {"window_center": float("nan"), "window_width": 10},
        {"voi": "best"},
        {"bit_depth": 12},
        {"width": 0},
    ],
)
def test_invalid_options_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameter):
        RenderOptions(**options)


def test_warm_up_renders_without_a_file() -> None:
    from dicom_file_service.dicom.render import warm_up

    warm_up()  # exercises the whole pipeline on an image made in memory; must not raise


def test_a_frame_that_would_take_more_memory_than_allowed_is_refused_before_decoding(
    tmp_path: Path,
) -> None:
    """The budget counts bytes (decoded samples plus floating-point intermediates), not just
    samples: 4096 x 4096 x 16 bits needs 160 MiB to render."""
    ds = dcmread(datafile("CT_small.dcm"))
    ds.Rows = ds.Columns = 4096
    ds.PixelData = np.zeros(4096 * 4096, dtype=np.uint16).tobytes()
    path = tmp_path / "big.dcm"
    ds.save_as(path, enforce_file_format=True)
    with pytest.raises(ImageTooLarge, match="DICOM_FS_MAX_RENDER_BYTES"):
        render_png(path, RenderOptions(), max_pixels=10**9, max_bytes=100 * 1024 * 1024)
    assert render_png(path, RenderOptions(), max_pixels=10**9, max_bytes=384 * 1024 * 1024)
