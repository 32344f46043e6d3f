"""``serve`` starts its DICOM listener beside the HTTP workers: a service that answers has both
doors open, and a listener that cannot listen stops ``serve`` with its reason."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pynetdicom import AE

from tests.conftest import _clean_environment, free_port, start_server, stop_server


def test_a_service_that_answers_has_its_dicom_door_open(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")  # returns at the first ready answer
    try:
        ae = AE(ae_title="EARLY")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="DICOMFS")
        assert assoc.is_established
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    finally:
        stop_server(server)


def test_a_listener_that_cannot_listen_stops_serve_naming_the_port(tmp_path: Path) -> None:
    taken = socket.socket()  # bound and never listening: the listener's bind fails
    taken.bind(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    http_port = free_port()
    started = time.monotonic()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "dicom_file_service.cli",
                "serve",
                "--port",
                str(http_port),
                "--data-dir",
                str(tmp_path / "data"),
                "--dicom-port",
                str(port),
            ],
            env=_clean_environment(),
            capture_output=True,
            timeout=120,
        )
    finally:
        taken.close()
    told = result.stderr.decode()
    assert result.returncode != 0, told[-3000:]
    assert f"before listening on port {port}" in told, told[-3000:]
    assert time.monotonic() - started < 45  # not the workers' whole minute of waiting
    try:
        httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1)
        raise AssertionError("the HTTP side outlived serve")
    except httpx.ConnectError:
        pass
