"""The guard against deflate bombs, run before pydicom is given a file at ingest.

pydicom inflates a Deflated Explicit VR Little Endian data set whole (at ingest, and again at
every render), and a few megabytes can inflate to gigabytes. So the inflated size is measured
first, in constant memory, and a file that would inflate past the limit is refused before
anything holds it.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

from pydicom.filereader import _read_file_meta_info

from dicom_file_service.dicom.elements import DEFLATED
from dicom_file_service.errors import InvalidDicom

DEFAULT_MAX_INFLATED = 64 * 1024 * 1024


def refuse_deflate_bombs(f: BinaryIO, size: int, limit: int) -> None:
    """Raise InvalidDicom when the deflated data set of ``f`` (``size`` bytes) inflates past
    ``limit`` bytes; a file that is not deflated passes. ``f`` is left at its start."""
    f.seek(128)
    if size < 132 or f.read(4) != b"DICM":
        f.seek(0)
        return
    try:
        meta = _read_file_meta_info(f)
    except Exception:  # a broken meta group: the header read reports it precisely
        f.seek(0)
        return
    if str(meta.get("TransferSyntaxUID", "")) != DEFLATED:
        f.seek(0)
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    try:
        while (chunk := f.read(1024 * 1024)) and not inflater.eof:
            while chunk and not inflater.eof:
                out = inflater.decompress(chunk, 1024 * 1024)
                inflated += len(out)
                if inflated > limit:
                    raise InvalidDicom(
                        f"the deflated data set inflates to more than {limit} bytes, the "
                        "limit (setting DICOM_FS_MAX_INFLATED_BYTES): not stored"
                    )
                if not out and inflater.unconsumed_tail == chunk:
                    break  # no progress: the stream wants what does not follow
                chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InvalidDicom(f"the deflated data set cannot be inflated: {exc}") from exc
    f.seek(0)
