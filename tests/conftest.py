"""Fixtures that start real things: a served instance of the service, index databases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote

import httpx
import pytest
import uvicorn
from sqlalchemy import create_engine, text

from dicom_file_service.settings import Settings
from dicom_file_service.storage import open_blob_store
from tests.s3server import S3Server, make_s3_server

POSTGRES_ADMIN_URL = os.environ.get(
    "DICOM_FS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (a server's workers and parser processes)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@contextmanager
def uvicorn_in_thread(config: uvicorn.Config, timeout: float = 60) -> Iterator[uvicorn.Server]:
    """uvicorn serving ``config`` in a thread of this process, started; stopped after."""
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    base_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: BinaryIO
    env: dict[str, str]
    dicom_port: int = 0  # the DICOM listener's (0: none)

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=60, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def settings(self) -> Settings:
        """The settings the server runs with (to look at its store as it sees it)."""
        with pytest.MonkeyPatch.context() as mp:
            for k in list(os.environ):
                if k.startswith(("DICOM_FS_", "AWS_")):
                    mp.delenv(k)
            for k, v in self.env.items():
                mp.setenv(k, v)
            return Settings(data_dir=self.data_dir)

    def on_s3(self) -> bool:
        """Whether the server keeps its files in an object store (and copies beside it)."""
        return self.settings().resolved_storage_url().startswith("s3://")

    def stored_keys(self, prefix: str) -> list[str]:
        """Every object key under ``prefix`` in the server's blob store, whatever it is."""
        return [key for key, _ in open_blob_store(self.settings()).list_keys(prefix)]

    def scratch_files(self) -> list[str]:
        """Files in the scratch area, the DICOM listener's receiving directory's included;
        not the copies of stored files kept beside a remote store (``local_copies``)."""
        scratch = self.settings().resolved_scratch_dir()
        if not scratch.is_dir():
            return []
        copies = scratch / "copies"
        return sorted(p.name for p in scratch.rglob("*") if p.is_file() and copies not in p.parents)

    def local_copies(self) -> list[str]:
        """The keys of the stored files this instance keeps copies of (S3 only)."""
        copies = self.settings().resolved_scratch_dir() / "copies"
        if not copies.is_dir():
            return []
        return sorted(unquote(p.name) for p in copies.iterdir() if not p.name.startswith("."))


def _clean_environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_FS_", "AWS_"))}


def start_worker(data_dir: Path, env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    """``dicom-file-service worker`` in a subprocess (output in ``<data_dir>/../worker.log``)."""
    env = _clean_environment()
    env.update(env_extra)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir.parent / "worker.log", "ab")  # noqa: SIM115 - lives with the process
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "dicom_file_service.cli", "worker", "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    finally:
        log.close()


def start_server(
    data_dir: Path, env_extra: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Server:
    """``dicom-file-service serve`` in a subprocess on a free loopback port."""
    port = free_port()
    env = _clean_environment()
    # As a deployment sets it: dicomweb-client sends Host without the port, so URLs made from
    # the request (RetrieveURL, BulkDataURI) would miss it.
    env["DICOM_FS_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    env.update(env_extra or {})
    # Every server listens for DICOM too, on a port of its own (never the default 11112).
    env.setdefault("DICOM_FS_DICOM_PORT", str(free_port()))
    dicom_port = int(env["DICOM_FS_DICOM_PORT"])
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    log_file = open(log_path, "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dicom_file_service.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--log-level",
            "warning",
            *args,
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90  # a loaded, shared machine starts slowly
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log_file.close()
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return Server(
                    base_url, data_dir, process, log_path, log_file, env_extra or {}, dicom_port
                )
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    log_file.close()
    raise RuntimeError(f"server did not become ready: {log_path.read_text()}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()
    server.log_file.close()


@dataclass(frozen=True)
class Backend:
    """Where a test server keeps its index and bytes: its environment beyond the data dir."""

    name: str
    env: dict[str, str]


@pytest.fixture(scope="session", params=["embedded", "postgres+s3"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every HTTP test runs on the embedded default and on PostgreSQL + S3 (SeaweedFS)."""
    if request.param == "embedded":
        yield Backend("embedded", {})
        return
    require_postgres()
    s3: S3Server = request.getfixturevalue("s3_server")
    with postgres_schema() as database_url:
        yield Backend(
            "postgres+s3",
            {"DICOM_FS_DATABASE_URL": database_url, **s3.env(new_bucket_name(), "dicom")},
        )


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory, backend: Backend) -> Iterator[Server]:
    """One real server per backend for the HTTP contract tests."""
    srv = start_server(tmp_path_factory.mktemp("srv") / "data", backend.env)
    yield srv
    stop_server(srv)
    log = srv.log()
    assert "Traceback" not in log, f"the server logged an unexpected error:\n{log}"


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


def require_postgres() -> None:
    """Skip where PostgreSQL is not running, except in CI, where it must be."""
    if os.environ.get("CI") != "true" and not postgres_available():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A database URL whose search_path is a fresh schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty index database of each kind (PostgreSQL: a schema of its own)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'index.sqlite3'}"
        return
    require_postgres()
    with postgres_schema() as url:
        yield url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS S3 server for the session (each test uses buckets of its own)."""
    srv = make_s3_server(tmp_path_factory.mktemp("seaweedfs"))
    srv.start()
    yield srv
    srv.stop()


def new_bucket_name() -> str:
    return f"b{uuid.uuid4().hex[:16]}"
