"""A production topology on this machine: PostgreSQL (a schema of its own), a bucket of its
own on SeaweedFS, and as many ``serve`` and ``worker`` processes as a test starts."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import (
    Server,
    new_bucket_name,
    postgres_schema,
    require_postgres,
    start_server,
    start_worker,
    stop_server,
)
from tests.s3server import S3Server


@dataclass
class Topology:
    env: dict[str, str]
    root: Path
    database_url: str
    servers: list[Server] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def serve(self, **extra: str) -> Server:
        data_dir = self.root / f"instance{len(self.servers)}" / "data"
        srv = start_server(data_dir, {**self.env, **extra})
        self.servers.append(srv)
        return srv

    def worker(self) -> subprocess.Popen[bytes]:
        proc = start_worker(self.root / "worker" / "data", self.env)
        self.workers.append(proc)
        return proc

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        engine = create_engine(self.database_url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(statement))]
        finally:
            engine.dispose()

    def close(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        for srv in self.servers:
            stop_server(srv)


@pytest.fixture
def topology(s3_server: S3Server, tmp_path: Path) -> Iterator[Topology]:
    require_postgres()
    with postgres_schema() as database_url:
        env = {
            "DICOM_FS_DATABASE_URL": database_url,
            "DICOM_FS_PRERENDER": "true",
            "DICOM_FS_SIGNING_SECRET": "a-secret-all-instances-share",
            # Every process may hold three times its pool (pool, overflow, point reads):
            # at the default 8, two instances of two workers with their DICOM listeners
            # and the job worker reach PostgreSQL's default max_connections (100) under
            # the racing uploads, while the rest of the suite holds connections too.
            "DICOM_FS_DB_POOL_SIZE": "4",
            **s3_server.env(new_bucket_name(), "dicom"),
        }
        topo = Topology(env=env, root=tmp_path, database_url=database_url)
        try:
            yield topo
        finally:
            topo.close()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
