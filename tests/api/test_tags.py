"""?dicom_tag= in every form the README names, and /metadata."""

from __future__ import annotations

import io

import httpx
import pydicom
import pytest

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem, post_raw
from tests.conftest import Server
from tests.datafiles import data_file


@pytest.fixture(scope="module")
def ct(server: Server) -> str:
    with server.client() as c:
        return str(post_raw(c, copy_with_new_uid(data_file("CT_small.dcm"))).json()["file_id"])


@pytest.fixture(scope="module")
def rtplan(server: Server) -> str:
    with server.client() as c:
        data = data_file("rtplan.dcm").read_bytes()
        return str(
            c.post(
                "/dicom-image", content=data, headers={"content-type": "application/dicom"}
            ).json()["file_id"]
        )


def tag(client: httpx.Client, file_id: str, *selectors: str) -> httpx.Response:
    return client.get(f"/dicom-image/{file_id}", params=[("dicom_tag", s) for s in selectors])


PATIENT_NAME = {
    "tag": "(0010,0010)",
    "keyword": "PatientName",
    "name": "Patient's Name",
    "vr": "PN",
    "vm": 1,
    "value": "CompressedSamples^CT1",
}


@pytest.mark.parametrize(
    "selector",
    [
        "(0010,0010)",
        "0010,0010",
        "00100010",
        "0x00100010",
        "PatientName",
        "patientname",
        "( 0010 , 0010 )",
        "0X00100010",
    ],
)
def test_every_selector_form_gives_the_same_answer(
    client: httpx.Client, ct: str, selector: str
) -> None:
    r = tag(client, ct, selector)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert {k: r.json()[k] for k in PATIENT_NAME} == PATIENT_NAME


def test_repeated_parameter_gives_a_list_in_request_order(client: httpx.Client, ct: str) -> None:
    r = tag(client, ct, "Modality", "(0028,0010)", "ImagePositionPatient")
    assert r.status_code == 200
    modality, rows, position = r.json()
    assert modality["value"] == "CT"
    assert rows["keyword"] == "Rows" and rows["value"] == 128 and rows["vr"] == "US"
    assert position["vm"] == 3
    assert position["value"] == [-158.135803, -179.035797, -75.699997]


def test_file_meta_and_private_tags(client: httpx.Client, ct: str) -> None:
    ts = tag(client, ct, "(0002,0010)").json()
    assert ts["value"] == "1.2.840.10008.1.2.1" and ts["keyword"] == "TransferSyntaxUID"
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    private = next(e for e in ds if e.tag.is_private and e.VR not in ("OB", "UN", "SQ"))
    group, elem = private.tag.group, private.tag.element
    r = tag(client, ct, f"({group:04X},{elem:04X})")
    assert r.status_code == 200, r.text
    assert r.json()["tag"] == f"({group:04X},{elem:04X})"


def test_sequence_paths(client: httpx.Client, rtplan: str) -> None:
    ds = pydicom.dcmread(data_file("rtplan.dcm"))
    expected = ds.BeamSequence[0].BeamName
    for selector in ("BeamSequence[0].BeamName", "(300A,00B0)[0].(300A,00C2)"):
        r = tag(client, rtplan, selector)
        assert r.status_code == 200, r.text
        assert r.json()["value"] == expected
        assert r.json()["keyword"] == "BeamName"
    seq = tag(client, rtplan, "BeamSequence").json()
    assert seq["vr"] == "SQ"
    assert len(seq["value"]) == len(ds.BeamSequence)
    assert seq["value"][0]["BeamName"] == expected


def test_bulk_data_is_a_reference_not_bytes(client: httpx.Client, ct: str) -> None:
    r = tag(client, ct, "PixelData").json()
    assert r["value"]["length"] == 128 * 128 * 2
    assert ct in r["value"]["bulk_data_uri"]


@pytest.mark.parametrize(
    "selector",
    [
        "(0010,001)",
        "XYZ",
        "NotAKeyword",
        "0010-0010",
        "(0010,0010)[",
        "",
        "(gggg,0010)",
        "BeamSequence[-1].BeamName",
        "a" * 1000,
    ],
)
def test_invalid_selectors_are_400_listing_the_forms(
    client: httpx.Client, ct: str, selector: str
) -> None:
    body = assert_problem(tag(client, ct, selector), 400, "invalid_tag")
    assert "(0010,0010)" in str(body["detail"])


def test_absent_attribute_is_tag_not_found(client: httpx.Client, ct: str, rtplan: str) -> None:
    assert_problem(tag(client, ct, "(0018,9999)"), 404, "tag_not_found")
    assert_problem(tag(client, rtplan, "BeamSequence[999].BeamName"), 404, "tag_not_found")


def test_unknown_file_is_file_not_found_not_tag_not_found(client: httpx.Client) -> None:
    r = tag(client, "AAAAAAAAAAAAAAAAAAAAAA", "PatientName")
    assert_problem(r, 404, "file_not_found")


def test_metadata_is_dicom_json_with_bulk_data_uris(client: httpx.Client, ct: str) -> None:
    r = client.get(f"/dicom-image/{ct}/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/dicom+json")
    (dataset,) = r.json()
    assert dataset["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "CompressedSamples^CT1"}]}
    assert dataset["00280010"] == {"vr": "US", "Value": [128]}
    assert "BulkDataURI" in dataset["7FE00010"] and "InlineBinary" not in dataset["7FE00010"]
    roundtrip = pydicom.Dataset.from_json(dataset, bulk_data_uri_handler=lambda *_: b"")
    assert roundtrip.PatientName == "CompressedSamples^CT1"
    assert_problem(
        client.get("/dicom-image/AAAAAAAAAAAAAAAAAAAAAA/metadata"), 404, "file_not_found"
    )


def test_bulk_data_uris_resolve_to_the_element_bytes(client: httpx.Client, ct: str) -> None:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    pixel = tag(client, ct, "PixelData").json()["value"]
    r = client.get(pixel["bulk_data_uri"])
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == ds.PixelData
    assert len(r.content) == pixel["length"]
    private = tag(client, ct, "(0043,1029)").json()["value"]
    assert client.get(private["bulk_data_uri"]).content == ds[0x00431029].value
    assert_problem(client.get(f"/dicom-image/{ct}/bulkdata/00100010"), 404, "tag_not_found")
    assert_problem(
        client.get(f"/dicom-image/{ct}/bulkdata/7FE00010/0/7FE00010"), 404, "tag_not_found"
    )


def test_a_look_alike_parameter_is_not_a_tag_lookup(client: httpx.Client, ct: str) -> None:
    """``?xdicom_tag=1`` was taken for a lookup of nothing (``[]``); it is a download."""
    whole = client.get(f"/dicom-image/{ct}")
    r = client.get(f"/dicom-image/{ct}", params={"xdicom_tag": "1"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/dicom"
    assert r.content == whole.content


def test_a_file_id_with_a_trailing_newline_is_not_found(client: httpx.Client, ct: str) -> None:
    for path in (f"/dicom-image/{ct}%0A", f"/dicom-image/{ct}%0A/png"):
        assert_problem(client.get(path), 404, "file_not_found")
    r = client.get(f"/dicom-image/{ct}%0A", params={"dicom_tag": "(0010,0010)"})
    assert_problem(r, 404, "file_not_found")


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR2_J2KR.dcm",
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",
        "emri_small_RLE.dcm",
    ],
)
def test_bulk_data_is_streamed_as_the_elements_value(client: httpx.Client, name: str) -> None:
    """Native, encapsulated, big endian and deflated files: the value, byte for byte, read by
    its span in the stored file (never the whole element in memory)."""
    data = copy_with_new_uid(data_file(name))
    file_id = post_raw(client, data).json()["file_id"]
    r = client.get(f"/dicom-image/{file_id}/bulkdata/7FE00010")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.content == pydicom.dcmread(io.BytesIO(data)).PixelData


def test_large_text_and_number_values_are_bulk_data_not_header(client: httpx.Client) -> None:
    """A 2 MB report (UT) and 150,000 contour coordinates (DS in a sequence) are stored as
    bulk data: the header stays small, a tag lookup answers with a reference, and /bulkdata
    gives the value's bytes as the file holds them."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ImplicitVRLittleEndian

    ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("CT_small.dcm"))))
    report = "All findings are within normal limits. " * 52_000
    ds.TextValue = report  # (0040,A160) UT
    contour = Dataset()
    contour.ContourData = [f"{i % 500}.25" for i in range(150_000)]  # (3006,0050) DS
    ds.ROIContourSequence = Sequence([Dataset()])
    ds.ROIContourSequence[0].ContourSequence = Sequence([contour])
    # Implicit VR: an explicit VR DS value has a 2-byte length, so long ones live there.
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    file_id = post_raw(client, data).json()["file_id"]

    (metadata,) = client.get(f"/dicom-image/{file_id}/metadata").json()
    assert len(str(metadata)) < 200_000
    text = client.get(f"/dicom-image/{file_id}", params={"dicom_tag": "(0040,A160)"}).json()
    uri = text["value"]["bulk_data_uri"]
    assert text["value"]["length"] == len(report.encode()) + len(report.encode()) % 2
    assert client.get(uri).content.rstrip(b" ") == report.encode().rstrip(b" ")
    path = "(3006,0039)[0].(3006,0040)[0].(3006,0050)"
    points = client.get(f"/dicom-image/{file_id}", params={"dicom_tag": path}).json()
    values = client.get(points["value"]["bulk_data_uri"]).content
    assert values.decode().rstrip(" ").split("\\")[:3] == ["0.25", "1.25", "2.25"]
