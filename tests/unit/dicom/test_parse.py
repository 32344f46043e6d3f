"""parse_file: identity, DICOM JSON header, bulk locations, and refusing what is not DICOM."""

from __future__ import annotations

import base64
import contextlib
import random
from pathlib import Path

import orjson
import pydicom
import pytest

from dicom_file_service.dicom.header_index import encode_header, select_elements
from dicom_file_service.dicom.parse import parse_file
from dicom_file_service.errors import InvalidDicom, MissingIdentity, ServiceError
from tests.api.dicom_factory import without
from tests.datafiles import all_candidate_files
from tests.datafiles import data_file as datafile

PREFIX = "/dicom-image/ID/bulkdata"


def test_identity_and_query_fields_of_ct_small() -> None:
    p = parse_file(datafile("CT_small.dcm"), bulk_data_uri_prefix=PREFIX)
    ds = pydicom.dcmread(datafile("CT_small.dcm"))
    assert p.sop_instance_uid == ds.SOPInstanceUID
    assert p.study_instance_uid == ds.StudyInstanceUID
    assert p.series_instance_uid == ds.SeriesInstanceUID
    assert p.sop_class_uid == ds.SOPClassUID
    assert p.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert p.patient_name == "CompressedSamples^CT1"
    assert p.modality == "CT"
    assert p.number_of_frames == 1
    assert p.has_pixel_data


def test_header_is_dicom_json_with_file_meta_and_pixel_data_as_bulk() -> None:
    p = parse_file(datafile("CT_small.dcm"), bulk_data_uri_prefix=PREFIX)
    assert p.header["00020010"] == {"vr": "UI", "Value": ["1.2.840.10008.1.2.1"]}
    assert p.header["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert p.header["00280010"] == {"vr": "US", "Value": [128]}
    assert p.header["7FE00010"] == {"vr": "OW", "BulkDataURI": f"{PREFIX}/7FE00010"}
    # Pixel Data and a 2,068-byte private OB value are bulk; everything else is inline.
    assert p.bulk_lengths == {"7FE00010": 128 * 128 * 2, "00431029": 2068}
    assert p.header["00431029"] == {"vr": "OB", "BulkDataURI": f"{PREFIX}/00431029"}
    assert list(p.header) == sorted(p.header)


def test_header_round_trips_through_pydicom() -> None:
    for name in ("CT_small.dcm", "rtplan.dcm", "MR_small_bigendian.dcm"):
        p = parse_file(datafile(name), bulk_data_uri_prefix=PREFIX)
        back = pydicom.Dataset.from_json(p.header, bulk_data_uri_handler=lambda *_: b"")
        ds = pydicom.dcmread(datafile(name), stop_before_pixels=True)
        for elem in ds:
            if elem.VR in ("OB", "OW", "UN", "SQ") or elem.tag.is_private:
                continue
            assert back[elem.tag].value == elem.value, (name, elem.tag)


def test_encapsulated_pixel_data_length_is_the_framed_length() -> None:
    path = datafile("JPEG2000.dcm")
    p = parse_file(path, bulk_data_uri_prefix=PREFIX)
    ds = pydicom.dcmread(path)
    assert p.bulk_lengths["7FE00010"] == len(ds.PixelData)
    assert p.transfer_syntax_uid == "1.2.840.10008.1.2.4.91"


def test_multiframe_and_deflated_files() -> None:
    assert (
        parse_file(datafile("emri_small.dcm"), bulk_data_uri_prefix=PREFIX).number_of_frames == 10
    )
    deflated = parse_file(datafile("image_dfl.dcm"), bulk_data_uri_prefix=PREFIX)
    assert deflated.transfer_syntax_uid == "1.2.840.10008.1.2.1.99"
    assert deflated.has_pixel_data


def test_sequences_nest_and_small_binary_is_inline() -> None:
    p = parse_file(datafile("rtplan.dcm"), bulk_data_uri_prefix=PREFIX)
    beams = p.header["300A00B0"]["Value"]
    assert beams[0]["300A00C2"]["Value"] == [
        pydicom.dcmread(datafile("rtplan.dcm")).BeamSequence[0].BeamName
    ]
    ct = parse_file(datafile("CT_small.dcm"), bulk_data_uri_prefix=PREFIX)
    inline = [e for e in ct.header.values() if "InlineBinary" in e]
    assert inline
    assert all(len(base64.b64decode(e["InlineBinary"])) <= 1024 for e in inline)


def test_stored_header_is_compact_json_with_an_index_of_every_element() -> None:
    for name in ("CT_small.dcm", "rtplan.dcm", "JPEG2000.dcm"):
        p = parse_file(datafile(name), bulk_data_uri_prefix=PREFIX)
        json_bytes, index = encode_header(p.header)
        assert orjson.loads(json_bytes) == p.header
        assert json_bytes.startswith(b'{"00020000"')
        for key, element in p.header.items():
            assert select_elements(json_bytes, index, [key, "FFFFFFFF"]) == {key: element}


@pytest.mark.parametrize("cut", [10, 131, 200, 1000, 6000, 20000, 39000])
def test_truncated_files_are_invalid(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.dcm"
    path.write_bytes(datafile("CT_small.dcm").read_bytes()[:cut])
    with pytest.raises(InvalidDicom, match=r"truncated|only|not a DICOM"):
        parse_file(path, bulk_data_uri_prefix=PREFIX)


def test_unterminated_encapsulated_pixel_data_is_invalid(tmp_path: Path) -> None:
    data = datafile("JPEG2000.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-8])  # drop the Sequence Delimitation Item
    with pytest.raises(InvalidDicom, match=r"delimiter|truncated"):
        parse_file(path, bulk_data_uri_prefix=PREFIX)


def test_text_and_random_bytes_are_not_dicom(tmp_path: Path) -> None:
    for content in (b"hello world\n" * 100, bytes(random.Random(1).randbytes(5000)), b""):
        path = tmp_path / "x"
        path.write_bytes(content)
        with pytest.raises(InvalidDicom):
            parse_file(path, bulk_data_uri_prefix=PREFIX)


@pytest.mark.parametrize(
    ("missing", "named"),
    [
        ("SOPInstanceUID", r"SOP Instance UID \(0008,0018\)"),
        ("StudyInstanceUID", r"Study Instance UID \(0020,000D\)"),
        ("SeriesInstanceUID", r"Series Instance UID \(0020,000E\)"),
    ],
)
def test_missing_identity_names_the_attribute(tmp_path: Path, missing: str, named: str) -> None:
    path = tmp_path / "x.dcm"
    path.write_bytes(without(datafile("CT_small.dcm"), missing))
    with pytest.raises(MissingIdentity, match=named):
        parse_file(path, bulk_data_uri_prefix=PREFIX)


def test_an_invalid_but_addressable_uid_is_kept_with_a_warning(tmp_path: Path) -> None:
    ds = pydicom.dcmread(datafile("CT_small.dcm"))
    ds.SOPInstanceUID = "not-a-uid"
    path = tmp_path / "x.dcm"
    ds.save_as(path)
    parsed = parse_file(path, bulk_data_uri_prefix=PREFIX)
    assert parsed.sop_instance_uid == "not-a-uid"
    assert any("not a valid UID" in w for w in parsed.warnings)


def test_corrupted_files_raise_only_domain_errors(tmp_path: Path) -> None:
    """Cut, overwritten and grown files are stored or refused with a precise error; any other
    exception is a bug in our parser and fails here (pydicom's own complaints about the data
    become InvalidDicom, ours are not hidden)."""
    rng = random.Random(7)
    path = tmp_path / "fuzz.dcm"
    for name in (
        "CT_small.dcm",
        "JPEG2000.dcm",
        "rtplan.dcm",
        "rtstruct.dcm",
        "MR_small_RLE.dcm",
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
    ):
        data = datafile(name).read_bytes()
        for i in range(60):
            blob = bytearray(data)
            if i % 3 == 0:
                blob = blob[: rng.randrange(1, len(blob))]
            elif i % 3 == 1:
                for _ in range(rng.randrange(1, 12)):
                    blob[rng.randrange(len(blob))] = rng.randrange(256)
            else:
                at = rng.randrange(len(blob))
                blob[at:at] = rng.randbytes(rng.randrange(1, 9))
            path.write_bytes(bytes(blob))
            with contextlib.suppress(ServiceError):
                parse_file(path, bulk_data_uri_prefix=PREFIX)


def test_every_bundled_file_parses_or_is_refused_cleanly() -> None:
    outcomes = {"ok": 0, "refused": 0}
    for path in all_candidate_files():
        try:
            parse_file(path, bulk_data_uri_prefix=PREFIX)
            outcomes["ok"] += 1
        except (InvalidDicom, MissingIdentity):
            outcomes["refused"] += 1
    assert outcomes["ok"] >= 200


def _native_files_pydicom_decodes() -> list[Path]:
    """Every test file with native pixel data that pydicom itself decodes: valid images."""
    import warnings

    import pydicom

    from tests.datafiles import all_candidate_files

    found = []
    for path in all_candidate_files():
        if path.suffix.lower() not in (".dcm", "") or path.stat().st_size > 50_000_000:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path)
                if "PixelData" not in ds or ds.file_meta.TransferSyntaxUID.is_compressed:
                    continue
                ds.pixel_array  # noqa: B018 - decodes, or raises for a broken file
        except Exception:
            continue
        found.append(path)
    return found


@pytest.mark.parametrize("path", _native_files_pydicom_decodes(), ids=lambda p: p.name)
def test_every_native_image_pydicom_decodes_has_the_pixel_data_length_it_should(
    path: Path,
) -> None:
    """The expected Pixel Data length holds for every photometric interpretation, 4:2:2
    subsampling included (PS3.3 C.7.6.3.1.2): no valid image is refused as truncated."""
    parsed = parse_file(path, bulk_data_uri_prefix=PREFIX)
    assert parsed.has_pixel_data


def test_a_deflate_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    """300 MB of zeros deflated into 300 KB: refused by its measured inflated size (pydicom
    would inflate it whole, at ingest and again at every render); a small one is fine."""
    import resource

    from dicom_file_service.errors import InvalidDicom
    from tests.api.dicom_factory import deflate_bomb

    bomb = tmp_path / "bomb.dcm"
    bomb.write_bytes(deflate_bomb(300 * 1024 * 1024))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InvalidDicom, match="inflates to more than 67108864 bytes"):
        parse_file(bomb, bulk_data_uri_prefix=PREFIX)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown_mb < 32, f"refusing it took {grown_mb:.0f} MB"
    small = tmp_path / "small.dcm"
    small.write_bytes(deflate_bomb(1024 * 1024))
    assert parse_file(small, bulk_data_uri_prefix=PREFIX).has_pixel_data


def test_bytes_after_the_deflated_stream_do_not_hang_the_size_check(tmp_path: Path) -> None:
    """Found by the fuzzer: the stream's end with bytes after it, reached while the inflated
    size was being measured, looped forever (a request that never ends)."""
    import subprocess
    import sys

    from tests.api.dicom_factory import deflate_bomb

    path = tmp_path / "trailing.dcm"
    path.write_bytes(deflate_bomb(2 * 1024 * 1024) + b"trailing" * 40)
    code = (
        "from dicom_file_service.dicom.parse import parse_file; "
        f"parse_file({str(path)!r}, bulk_data_uri_prefix='')"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, capture_output=True)
    assert done.returncode == 0, done.stderr[-2000:]
