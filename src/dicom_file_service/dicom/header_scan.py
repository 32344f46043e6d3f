"""The compiled header scanner: a common file's header as DICOM JSON without pydicom.

Reading a header through pydicom builds a Python object per element, and converting it to
DICOM JSON visits each again: most of an upload's CPU time. ``_header_scan`` (C, built at
install by ``hatch_build.py``) reads a Part 10 file encoded as Explicit VR Little Endian, in
ASCII, ISO_IR 100 or ISO_IR 192, in one pass, and gives the same DICOM JSON, bulk data lengths
and pixel data position as ``parse``'s pydicom path. Whatever it does not read exactly as that
path would (another encoding or character set, UN, elements out of order or past the end, a
value pydicom defers) it declines, and the file is read through pydicom, whose checks name
what is wrong. The two are compared on every test file and on damaged copies of them.

python-gdcm was measured first: it reads a CT header in about half of pydicom's time, but
walking every element through its Python bindings (what DICOM JSON needs) costs more than
that saves; this scanner reads and converts CT_small's header in about a tenth of the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.uid import AllTransferSyntaxes

from dicom_file_service.dicom.dicom_json import bulk_data_uri

try:
    from dicom_file_service.dicom import _header_scan
except ImportError:  # built without a C compiler: every file takes pydicom's path
    _header_scan = None  # type: ignore[assignment]

AVAILABLE = _header_scan is not None

#: The transfer syntaxes whose data set is encoded as Explicit VR Little Endian: the native
#: one and the encapsulated (compressed) ones, whose header is encoded the same. Deflated,
#: implicit VR and big endian data sets are pydicom's to read.
EXPLICIT_LITTLE_SYNTAXES = frozenset(
    str(uid)
    for uid in AllTransferSyntaxes
    if uid.is_little_endian and not uid.is_implicit_VR and not uid.is_deflated
)


@dataclass(frozen=True)
class ScannedHeader:
    """What the scanner read: the header as DICOM JSON (file meta and data set, bulk values
    named by location), the length of each bulk value, and where its reading stopped: at the
    pixel data element's header (``at_pixels``), or after the last element."""

    header: dict[str, Any]
    bulk_lengths: dict[str, int]
    end: int
    at_pixels: bool


def element_spans(header_json: bytes) -> bytes | None:
    """The span index of a stored header (``header_index.encode_header``) read off its JSON
    bytes in one pass; None without the compiled module."""
    return _header_scan.element_spans(header_json) if _header_scan is not None else None


def scan_header(data: bytes, bulk_data_uri_prefix: str) -> ScannedHeader | None:
    """The header of the Part 10 file ``data``, or None where pydicom must read it. Bulk
    values are named as ``dicom_json.bulk_data_uri`` names them under the prefix."""
    if _header_scan is None:
        return None
    prefix = bulk_data_uri(bulk_data_uri_prefix, "")
    scanned = _header_scan.scan(data, EXPLICIT_LITTLE_SYNTAXES, prefix)
    return ScannedHeader(*scanned) if scanned is not None else None
