"""Transcoding on retrieval over real HTTP: WADO-RS instances and frames, and WADO-URI, in
the syntax asked, by default in Explicit VR Little Endian, ``*`` as stored, and a 406 when no
syntax asked for can be met. The full matrix of syntaxes is tests/unit/dicom/test_transcode.py;
here a few pairs, decoded by a library other than the encoder's."""

from __future__ import annotations

import io
from typing import Any

import httpx
import libjpeg
import numpy as np
import pydicom
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.api.test_upload import assert_problem
from tests.datafiles import data_file

EXPLICIT = "1.2.840.10008.1.2.1"
JPEG = "1.2.840.10008.1.2.4.50"
JLS = "1.2.840.10008.1.2.4.80"
J2K = "1.2.840.10008.1.2.4.90"


def _accept(syntax: str) -> dict[str, str]:
    return {"accept": f'multipart/related; type="application/dicom"; transfer-syntax={syntax}'}


def _store(client: httpx.Client, name: str, **changes: str) -> tuple[bytes, str]:
    data = copy_with_new_uid(data_file(name), **changes)
    r = client.post("/dicom-image", content=data, headers={"content-type": "application/dicom"})
    assert r.status_code in (200, 201), r.text
    body = r.json()
    url = (
        f"/dicomweb/studies/{body['study_instance_uid']}/series/{body['series_instance_uid']}"
        f"/instances/{body['sop_instance_uid']}"
    )
    return data, url


def _parts(response: httpx.Response) -> list[tuple[dict[str, str], bytes]]:
    """Each part's headers and body, split by hand."""
    assert response.status_code == 200, response.text
    boundary = response.headers["content-type"].split("boundary=", 1)[1].strip('"')
    out = []
    for chunk in response.content.split(f"--{boundary}".encode())[1:-1]:
        head, body = chunk.split(b"\r\n\r\n", 1)
        lines = head.decode().strip().split("\r\n")
        headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        out.append((headers, body[: -len(b"\r\n")]))
    return out


def _pixels(data: bytes, plugin: str = "") -> np.ndarray[Any, Any]:
    ds = pydicom.dcmread(io.BytesIO(data))
    arr, _ = get_decoder(ds.file_meta.TransferSyntaxUID).as_array(ds, decoding_plugin=plugin)
    return arr


def _psnr(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> float:
    error = np.mean((got.astype(np.float64) - want.astype(np.float64)) ** 2)
    return float("inf") if error == 0 else 10 * np.log10(float(np.ptp(want)) ** 2 / error)


def test_without_accept_an_instance_is_explicit_little_endian_and_star_is_as_stored(
    client: httpx.Client,
) -> None:
    data, url = _store(client, "SC_rgb_jpeg_dcmtk.dcm")  # stored JPEG Baseline
    ((headers, body),) = _parts(client.get(url))  # no Accept at all
    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == EXPLICIT
    assert np.array_equal(got.pixel_array, pydicom.dcmread(io.BytesIO(data)).pixel_array)
    ((headers, body),) = _parts(client.get(url, headers=_accept("*")))
    assert body == data and headers["content-type"].endswith(JPEG)
    ((_, body),) = _parts(client.get(url, headers=_accept(JPEG)))
    assert body == data  # the syntax stored, asked by name


def test_instances_go_in_the_syntax_asked(client: httpx.Client) -> None:
    data, url = _store(client, "CT_small.dcm")
    ((headers, body),) = _parts(client.get(url, headers=_accept(JLS)))
    assert headers["content-type"] == f"application/dicom; transfer-syntax={JLS}"
    want = pydicom.dcmread(io.BytesIO(data)).pixel_array
    assert np.array_equal(_pixels(body, "pylibjpeg"), want)  # CharLS wrote it, libjpeg reads
    rgb, rgb_url = _store(client, "SC_rgb.dcm", SeriesInstanceUID=generate_uid())
    series = rgb_url.rsplit("/instances/", 1)[0]
    ((headers, body),) = _parts(client.get(series, headers=_accept(JPEG)))
    assert headers["content-type"] == f"application/dicom; transfer-syntax={JPEG}"
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.LossyImageCompression == "01" and got.PhotometricInterpretation == "YBR_FULL"
    assert _psnr(_pixels(body, "pylibjpeg"), pydicom.dcmread(io.BytesIO(rgb)).pixel_array) >= 40


def test_the_first_syntax_that_can_be_met_is_used_and_none_is_a_406(
    client: httpx.Client,
) -> None:
    study = generate_uid()
    _, eight_bit = _store(client, "SC_rgb.dcm", StudyInstanceUID=study)
    _, sixteen_bit = _store(client, "CT_small.dcm", StudyInstanceUID=study)
    jpeg_only = _accept(JPEG)
    assert_problem(client.get(sixteen_bit, headers=jpeg_only), 406, "not_acceptable")
    # A whole study is refused before it begins: one instance has no JPEG encoder.
    assert_problem(
        client.get(f"/dicomweb/studies/{study}", headers=jpeg_only), 406, "not_acceptable"
    )
    either = {
        "accept": f'multipart/related; type="application/dicom"; transfer-syntax={J2K};q=0.5, '
        f'multipart/related; type="application/dicom"; transfer-syntax={JPEG}'
    }
    syntaxes = {
        h["content-location"].rsplit("/", 1)[1]: h["content-type"].rsplit("=", 1)[1]
        for h, _ in _parts(client.get(f"/dicomweb/studies/{study}", headers=either))
    }
    assert syntaxes == {eight_bit.rsplit("/", 1)[1]: JPEG, sixteen_bit.rsplit("/", 1)[1]: J2K}
    mpeg2 = _accept("1.2.840.10008.1.2.4.100")
    assert_problem(client.get(eight_bit, headers=mpeg2), 406, "not_acceptable")


def test_frames_as_stored_decoded_or_transcoded_each_with_its_syntax(
    client: httpx.Client,
) -> None:
    data, url = _store(client, "SC_rgb_jpeg_dcmtk.dcm")
    stored = next(generate_frames(pydicom.dcmread(io.BytesIO(data)).PixelData, number_of_frames=1))
    as_jpeg = f'multipart/related; type="image/jpeg"; transfer-syntax={JPEG}'
    ((headers, body),) = _parts(client.get(f"{url}/frames/1", headers={"accept": as_jpeg}))
    assert body == stored and headers["content-type"] == f"image/jpeg; transfer-syntax={JPEG}"
    ((headers, body),) = _parts(client.get(f"{url}/frames/1"))  # no Accept: native pixels
    assert headers["content-type"] == f"application/octet-stream; transfer-syntax={EXPLICIT}"
    want = pydicom.dcmread(io.BytesIO(data)).pixel_array
    assert np.array_equal(np.frombuffer(body, np.uint8).reshape(want.shape), want)

    ct, ct_url = _store(client, "CT_small.dcm")
    as_jls = {"accept": 'multipart/related; type="image/jls"'}
    ((headers, body),) = _parts(client.get(f"{ct_url}/frames/1", headers=as_jls))
    assert headers["content-type"] == f"image/jls; transfer-syntax={JLS}"
    decoded = libjpeg.decode(body).view(np.int16)  # libjpeg reads what CharLS wrote
    assert np.array_equal(decoded, pydicom.dcmread(io.BytesIO(ct)).pixel_array)
    assert_problem(
        client.get(f"{ct_url}/frames/1", headers={"accept": as_jpeg}), 406, "not_acceptable"
    )


def test_wado_uri_finds_an_instance_by_its_uid_and_honours_transfer_syntax(
    client: httpx.Client,
) -> None:
    data, url = _store(client, "CT_small.dcm")
    study, series, sop = url.split("/")[3], url.split("/")[5], url.split("/")[7]
    plain = {"requestType": "WADO", "objectUID": sop, "contentType": "application/dicom"}
    r = client.get("/wado", params=plain)  # stored in the default syntax: the file itself
    assert r.status_code == 200 and r.content == data and r.headers["etag"]
    for given in ({"studyUID": study}, {"studyUID": study, "seriesUID": series}):
        assert client.get("/wado", params={**plain, **given}).content == data
    for wrong in ({"studyUID": "1.2.3"}, {"studyUID": study, "seriesUID": "1.2.3"}):
        assert_problem(client.get("/wado", params={**plain, **wrong}), 404, "file_not_found")
    j2k = client.get("/wado", params={**plain, "transferSyntax": J2K})
    assert j2k.status_code == 200 and j2k.headers["content-type"] == "application/dicom"
    got = pydicom.dcmread(io.BytesIO(j2k.content))
    assert got.file_meta.TransferSyntaxUID == J2K
    assert np.array_equal(
        _pixels(j2k.content, "pillow"), pydicom.dcmread(io.BytesIO(data)).pixel_array
    )
    r = client.get("/wado", params={**plain, "transferSyntax": JPEG})
    assert_problem(r, 406, "not_acceptable")  # 16-bit: no JPEG encoder takes it
    assert_problem(
        client.get("/wado", params={**plain, "transferSyntax": "not-a-uid"}),
        400,
        "invalid_parameter",
    )
    rendered = client.get("/wado", params={"requestType": "WADO", "objectUID": sop})
    assert rendered.status_code == 200 and rendered.headers["content-type"] == "image/jpeg"

    jpeg, jpeg_url = _store(client, "SC_rgb_jpeg_dcmtk.dcm")
    jpeg_sop = jpeg_url.rsplit("/", 1)[1]
    default = client.get("/wado", params={**plain, "objectUID": jpeg_sop})
    assert pydicom.dcmread(io.BytesIO(default.content)).file_meta.TransferSyntaxUID == EXPLICIT
    as_stored = client.get("/wado", params={**plain, "objectUID": jpeg_sop, "transferSyntax": "*"})
    assert as_stored.content == jpeg
