"""Uploads parsed in worker processes: the same result as in-thread, and a dead worker costs
the uploads in it a 503, not the service its parser."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from dicom_file_service.errors import ParserUnavailable, ParseTimeout
from dicom_file_service.service.parsing import Parsers, parse_upload
from tests.datafiles import data_file


def test_a_process_parses_exactly_as_the_calling_thread_does() -> None:
    path = data_file("MR2_J2KR.dcm")
    parsers = Parsers(1)
    try:
        assert parsers.parse(path) == Parsers(0).parse(path) == parse_upload(str(path))
    finally:
        parsers.close()


def _parse_until_refused(parsers: Parsers, path: Path) -> ParserUnavailable | None:
    """The pool notices a dead process on its own time: parse until it does."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            parsers.parse(path)
        except ParserUnavailable as exc:
            return exc
        time.sleep(0.05)
    return None


def test_a_killed_parser_process_is_replaced() -> None:
    path = data_file("CT_small.dcm")
    parsers = Parsers(1)
    try:
        parsers.start()
        pool = parsers._current()
        (pid,) = list(pool._processes)  # type: ignore[union-attr]
        os.kill(pid, signal.SIGKILL)
        refused = _parse_until_refused(parsers, path)
        assert refused is not None
        assert "send it again" in refused.detail
        assert parsers.parse(path).parsed.sop_instance_uid  # a new pool, working
    finally:
        parsers.close()


def test_a_parse_past_its_time_is_refused_and_its_process_stopped() -> None:
    """Ingest's own bound: the upload is refused before anything is stored, the busy parser
    process is stopped, and the next upload gets a fresh one."""
    path = data_file("CT_small.dcm")
    # 0: the answer is looked at once, never waited for; another process cannot have
    # parsed the file by then (a 0.1 ms wait overslept a loaded machine's whole parse).
    parsers = Parsers(1, timeout_seconds=0)
    try:
        parsers.start()
        (pid,) = list(parsers._current()._processes)  # type: ignore[union-attr]
        with pytest.raises(ParseTimeout, match="DICOM_FS_PARSE_TIMEOUT_SECONDS"):
            parsers.parse(path)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                break  # reaped between the two looks: stopped
            if "Z" in stat.rsplit(")", 1)[1].split()[0]:
                break  # a zombie: stopped, not yet reaped
            time.sleep(0.05)
        else:
            assert not Path(f"/proc/{pid}").exists()
        parsers.timeout_seconds = 30
        assert parsers.parse(path).parsed.sop_instance_uid
    finally:
        parsers.close()


def test_parser_processes_end_when_their_parent_is_killed() -> None:
    """A worker killed outright (``kill -9``) leaves no parser process behind."""
    import subprocess
    import sys

    script = (
        "import sys, time\n"
        "from dicom_file_service.service.parsing import Parsers\n"
        "parsers = Parsers(2)\n"
        "parsers.start()\n"
        "print(*parsers._current()._processes, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        children = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(children) == 2 and all(_running(pid) for pid in children)
    finally:
        parent.kill()
        parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
    deadline = time.monotonic() + 10
    while any(_running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_running(pid) for pid in children)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
