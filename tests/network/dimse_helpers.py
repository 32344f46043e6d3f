"""What the DICOM network tests share: a study of files in mixed transfer syntaxes, their
data sets' bytes, WADO-RS's stored bytes, registering an AE, and DCMTK's tools."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filereader import _read_file_meta_info
from pydicom.uid import generate_uid

from tests.datafiles import data_file

# One file per transfer syntax DCMTK's storescu sends as it is (-R: the file's own syntax).
MIXED = (
    "CT_small.dcm",  # Explicit VR Little Endian
    "MR_small_implicit.dcm",  # Implicit VR Little Endian
    "MR_small_bigendian.dcm",  # Explicit VR Big Endian
    "image_dfl.dcm",  # Deflated Explicit VR Little Endian
    "JPEG2000.dcm",  # JPEG 2000
    "emri_small_jpeg_2k_lossless.dcm",  # JPEG 2000 Lossless, Enhanced MR
    "SC_rgb_rle.dcm",  # RLE Lossless
    "JPEG-LL.dcm",  # JPEG Lossless SV1
    "SC_rgb_jpeg_dcmtk.dcm",  # JPEG Baseline
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS Lossless
)
DEFLATED = "1.2.840.10008.1.2.1.99"


def dcmtk(tool: str) -> str | None:
    """DCMTK's ``tool``: pynetdicom installs programs of the same names (echoscu, storescu,
    findscu, ...) in the environment's bin, which comes first on the tests' PATH."""
    own = Path(sys.prefix) / "bin"
    path = os.pathsep.join(
        p for p in os.environ.get("PATH", "").split(os.pathsep) if p and Path(p) != own
    )
    return shutil.which(tool, path=path)


def need_dcmtk() -> None:
    if dcmtk("storescu") is None:
        pytest.skip("DCMTK's network tools are not installed (scripts/test installs dcmtk)")


def mixed_study(directory: Path, copies: int = 1) -> list[Path]:
    """The MIXED files ``copies`` times each, all in one new study (a series per source file
    and copy), with new UIDs, written in their own transfer syntax."""
    directory.mkdir(parents=True, exist_ok=True)
    study = generate_uid()
    out = []
    for n in range(copies):
        for name in MIXED:
            ds = pydicom.dcmread(data_file(name))
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.PatientID = "DIMSE-MIXED"
            path = directory / f"{n:03d}_{name}"
            ds.save_as(path, enforce_file_format=True)
            out.append(path)
    return out


def storescu_config(files: list[Path], directory: Path) -> list[str]:
    """storescu's options to propose each file's own transfer syntax (a configuration file of
    one context per SOP class and syntax, PS3.8 9.3.2.2): by default it proposes only the
    uncompressed ones and converts, which DCMTK cannot do for JPEG 2000 or JPEG-LS."""
    pairs: dict[tuple[str, str], None] = {}
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        pairs[(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))] = None
    syntaxes = sorted({ts for _, ts in pairs})
    lines = ["[[TransferSyntaxes]]"]
    for n, ts in enumerate(syntaxes):
        lines += [f"[TS{n}]", f"TransferSyntax1 = {ts}"]
    lines += ["[[PresentationContexts]]", "[Mixed]"]
    for n, (sop_class, ts) in enumerate(pairs, start=1):
        lines.append(f"PresentationContext{n} = {sop_class}\\TS{syntaxes.index(ts)}")
    lines += ["[[Profiles]]", "[Mixed]", "PresentationContexts = Mixed"]
    config = directory / "storescu.cfg"
    config.write_text("\n".join(lines) + "\n")
    return ["-xf", str(config), "Mixed"]


def data_set_of(part10: bytes) -> bytes:
    """The data set's bytes of a Part 10 file (after its file meta), a deflated one inflated."""
    f = io.BytesIO(part10)
    meta = _meta(f)
    rest = part10[f.tell() :]
    if str(meta.TransferSyntaxUID) == DEFLATED:
        return zlib.decompress(rest, -zlib.MAX_WBITS)
    return rest


def meta_of(part10: bytes) -> FileMetaDataset:
    return _meta(io.BytesIO(part10))


def _meta(f: io.BytesIO) -> FileMetaDataset:
    f.seek(128)
    assert f.read(4) == b"DICM", "not a Part 10 file"
    return _read_file_meta_info(f)


def wado_stored(client: httpx.Client, study: str, series: str, sop: str) -> bytes:
    """One instance over WADO-RS as stored (``transfer-syntax=*``), out of its multipart."""
    response = client.get(
        f"/dicomweb/studies/{study}/series/{series}/instances/{sop}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert response.status_code == 200, response.text
    boundary = re.search(r'boundary="?([^";]+)', response.headers["content-type"]).group(1)
    parts = response.content.split(b"--" + boundary.encode())
    body = parts[1].split(b"\r\n\r\n", 1)[1]
    return body[:-2] if body.endswith(b"\r\n") else body


def register(
    client: httpx.Client, name: str, ae_title: str, port: int = 104, allow: list[str] | None = None
) -> None:
    body = {"ae_title": ae_title, "host": "127.0.0.1", "port": port}
    if allow is not None:
        body["allow"] = allow
    response = client.put(f"/modalities/{name}", json=body)
    assert response.status_code in (200, 201), response.text


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A DCMTK tool, its output kept for the assertion message."""
    program = dcmtk(args[0]) or args[0]
    return subprocess.run(
        [program, *args[1:]], capture_output=True, text=True, timeout=timeout, check=False
    )
