"""``dicom-file-service dimse``: the DICOM listener, alone or beside ``serve``'s HTTP workers.

``serve`` starts it as a process of its own (a handler then never holds up an HTTP worker's
event loop, and one listener serves however many HTTP workers run) and stops it when it stops;
the listener also stops when the ``serve`` that started it is gone (killed without a chance to
stop it). ``dimse`` alone is a separate tier over the same database and store.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import click

from dicom_file_service.cli import _migrate, _settings_for, main
from dicom_file_service.service.parent_watch import watch_parent
from dicom_file_service.settings import Settings

STARTUP_SECONDS = 60.0


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--port",
    default=None,
    type=click.IntRange(0, 65535),
    help="[default: 11112, or DICOM_FS_DICOM_PORT]",
)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--log-level", default="info", show_default=True)
@click.option("--no-migrate", is_flag=True, help="The schema is up to date (serve migrated it)")
@click.option("--parent-pid", type=int, default=None, hidden=True)
def dimse(
    host: str,
    port: int | None,
    data_dir: Path | None,
    log_level: str,
    no_migrate: bool,
    parent_pid: int | None,
) -> None:
    """Run the DICOM listener (C-ECHO, C-STORE, C-FIND, C-MOVE, C-GET) on its own."""
    from dicom_file_service import heap
    from dicom_file_service.api import logs
    from dicom_file_service.network.listener import DicomListener
    from dicom_file_service.service.context import ServiceContext
    from dicom_file_service.service.modalities import apply_configured

    if port is not None:
        os.environ["DICOM_FS_DICOM_PORT"] = str(port)
    settings = _settings_for(data_dir)
    logs.configure(settings.log_format, "WARNING" if log_level == "warning" else log_level)
    if not no_migrate:
        _migrate(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if parent_pid is not None:
        watch_parent(parent_pid, stop.set)
    ctx = ServiceContext.create(settings, migrate=False)
    try:
        apply_configured(ctx)
        listener = DicomListener(ctx)
        try:
            listener.start(host)
        except OSError as exc:
            raise click.ClickException(f"the DICOM listener cannot start: {exc}") from exc
        heap.settle()  # started: what it holds now lives as long as the process
        try:
            stop.wait()
        finally:
            listener.stop()
    finally:
        ctx.close()


@dataclass
class Listener:
    """``serve``'s DICOM listener process, and why it failed to start (None: it did not)."""

    process: subprocess.Popen[bytes]
    failure: str | None = None


def start_listener_process(settings: Settings, host: str) -> Listener | None:
    """Start ``dimse`` beside ``serve`` (None when no DICOM port is configured), without
    waiting for it: the HTTP workers start meanwhile (both take seconds to import what they
    serve with) and each waits until the listener accepts connections before it answers
    (``DICOM_FS_DICOM_LISTENER_ADDRESS``), so a service that answers has both doors open. A
    listener that cannot start stops ``serve`` with its reason (``Listener.failure``, and a
    SIGTERM to this process)."""
    if not settings.dicom_port:
        return None
    probe = "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host
    bracketed = f"[{probe}]" if ":" in probe else probe
    os.environ["DICOM_FS_DICOM_LISTENER_ADDRESS"] = f"{bracketed}:{settings.dicom_port}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dicom_file_service.cli",
            "dimse",
            "--host",
            host,
            "--no-migrate",
            "--parent-pid",
            str(os.getpid()),
        ],
        env=os.environ.copy(),
    )
    listener = Listener(process)
    threading.Thread(
        target=_watch_start, args=(listener, probe, settings.dicom_port), daemon=True
    ).start()
    return listener


def _watch_start(listener: Listener, probe: str, port: int) -> None:
    process = listener.process
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            listener.failure = (
                f"the DICOM listener exited (code {process.returncode}) before listening on "
                f"port {port}"
            )
            break
        try:
            with socket.create_connection((probe, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    else:
        listener.failure = f"the DICOM listener did not listen on {port}"
    os.kill(os.getpid(), signal.SIGTERM)  # serve stops, and reports the failure


def stop_listener_process(listener: Listener | None) -> None:
    if listener is None or listener.process.poll() is not None:
        return
    process = listener.process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
