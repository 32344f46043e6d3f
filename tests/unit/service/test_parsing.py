"""Uploads parsed in worker processes: the same result as in-thread, and a dead worker costs
the uploads in it a 503, not the service its parser."""

from __future__ import annotations

import os
import signal
import time

import pytest

from dicom_file_service.service.parsing import Parsers, ParserUnavailable, parse_upload
from tests.datafiles import data_file


def test_a_process_parses_exactly_as_the_calling_thread_does() -> None:
    path = data_file("MR2_J2KR.dcm")
    parsers = Parsers(1)
    try:
        assert parsers.parse(path) == Parsers(0).parse(path) == parse_upload(str(path))
    finally:
        parsers.close()


def test_a_killed_parser_process_is_replaced() -> None:
    path = data_file("CT_small.dcm")
    parsers = Parsers(1)
    try:
        parsers.start()
        pool = parsers._current()
        (pid,) = list(pool._processes)  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        with pytest.raises(ParserUnavailable, match="send it again"):
            while time.monotonic() < deadline:  # the pool notices the death on its own time
                parsers.parse(path)
                time.sleep(0.05)
        assert parsers.parse(path).parsed.sop_instance_uid  # a new pool, working
    finally:
        parsers.close()
