"""A real nginx (Debian's package) in front of a served instance, under a path prefix, as
docs/operations.md configures it: the tests reach the service only through it.

nginx runs in the foreground with everything it writes (pid, logs, temporary bodies) in the
test's directory, one process (``master_process off``: no worker to switch to another user,
who could not read that directory), on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

NGINX = os.environ.get("DICOM_FS_TEST_NGINX", "nginx")

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {root}/access.log;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location {prefix}/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header X-Forwarded-Prefix {prefix};
            # dicomweb-client leaves the port out of Host: name it here (see operations.md)
            proxy_set_header X-Forwarded-Host $host:$server_port;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header Forwarded "";
            client_max_body_size 0;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    port: int
    prefix: str
    root: Path

    @property
    def base_url(self) -> str:
        """The service's root through nginx (``http://127.0.0.1:<port>/pacs``)."""
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def require_nginx() -> str:
    """nginx's path; skip where it is missing, except in CI, where scripts/test installs it."""
    found = shutil.which(NGINX) or shutil.which(NGINX, path="/usr/sbin:/sbin")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("nginx is not installed (scripts/test installs it)")
        pytest.skip("nginx is not installed: apt-get install nginx")
    return found


def start_nginx(root: Path, upstream_port: int, prefix: str = "/pacs") -> Nginx:
    binary = require_nginx()
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(CONFIG.format(root=root, port=port, upstream=upstream_port, prefix=prefix))
    with open(root / "stderr.log", "wb") as stderr:  # the process keeps its own copy
        process = subprocess.Popen(
            [binary, "-p", str(root), "-c", str(conf), "-e", str(root / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    proxy = Nginx(process, port, prefix, root)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"nginx exited: {(root / 'stderr.log').read_text()}")
        try:
            if httpx.get(f"{proxy.base_url}/readyz", timeout=1).status_code == 200:
                return proxy
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proxy.stop()
    raise RuntimeError(f"nginx did not answer: {(root / 'error.log').read_text()}")
