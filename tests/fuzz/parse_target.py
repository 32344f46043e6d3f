"""The parser under atheris (coverage-guided fuzzing): any input is parsed or refused with
one of the service's errors; anything else is a bug of ours and stops the run.

    python -m tests.fuzz.parse_target CORPUS_DIR -runs=3000 -seed=1

Each input goes through a file, as uploads do (the parser reads from a path).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile

import atheris
import pydicom  # noqa: F401 - imported first: only our code is instrumented (speed)

with atheris.instrument_imports():
    from dicom_file_service.dicom.parse import parse_file
    from dicom_file_service.errors import ServiceError

_fd, _PATH = tempfile.mkstemp(prefix="fuzz-", suffix=".dcm", dir="/dev/shm")
os.close(_fd)


def test_one_input(data: bytes) -> None:
    with open(_PATH, "wb") as f:
        f.write(data)
    with contextlib.suppress(ServiceError):  # refused precisely: what must happen
        parse_file(_PATH, bulk_data_uri_prefix="", max_inflated_bytes=16 * 1024 * 1024)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
