"""Where the test DICOM files live: pydicom's bundled files and the pydicom-data package.

Paths are found on disk directly: pydicom's own ``get_testdata_file`` would try to download
files that are not local, and tests run without a network.
"""

from __future__ import annotations

from pathlib import Path

import data_store  # the pydicom-data package
import pydicom


def pydicom_test_dir() -> Path:
    return Path(pydicom.__file__).parent / "data" / "test_files"


def pydicom_data_dir() -> Path:
    return Path(data_store.__file__).parent / "data"


def data_file(name: str) -> Path:
    """The path of a named test file from either source."""
    for root in (pydicom_test_dir(), pydicom_data_dir()):
        for candidate in root.rglob(name):
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(name)


def all_candidate_files() -> list[Path]:
    """Every regular file in both sources (DICOM or not; callers filter)."""
    files: list[Path] = []
    for root in (pydicom_test_dir(), pydicom_data_dir()):
        files.extend(p for p in sorted(root.rglob("*")) if p.is_file())
    return files
