"""Benchmark dicom-file-service against Orthanc and the Python ceiling, in one run.

    uv run python bench/bench.py [--quick] [--rounds 3] [--uploads 2400] [--seconds 8] [--dimse]

Every server runs at its shipped defaults on loopback, each on a fresh temporary store: ours
(``serve``, no flags: one worker per core) on the embedded default and again on PostgreSQL +
S3 (a fresh schema of the local server, SeaweedFS on loopback); Orthanc from Debian's
``orthanc`` + ``orthanc-gdcm``; and the ceiling, a constant-response ASGI app
(``constant_app.py``) under uvicorn with our worker count. Measured in interleaved rounds
(each measure taken of every peer in turn, every round), medians reported:

- uploads/s: distinct CT_small copies, 8 concurrent clients on kept-alive connections, and
  one client alone (ours: the original contract's multipart form; Orthanc:
  ``POST /instances``);
- tag lookups/s and p99 with wrk (2 threads, 8 connections, random stored ids), the ceiling
  under the same load;
- cold PNG (each file's first request) for CT_small, MR2_J2KR, US1_UNCR and RG1_UNCR
  (Orthanc: ``/preview``), and warm: the same URL asked again;
- cold PNG of frames near 1, 500 and 1000 of a 1,000-frame 256x256 file (a frame not asked
  for before, each round);
- a 1 GB upload streamed from disk, against the disk's own sequential write bandwidth
  (8 MiB writes and an fsync, before and after);
- peak RSS (VmHWM) of every server process.

Prints a Markdown table with the ratios and the targets (bench/README.md), and writes
``bench/results/latest.json`` and ``latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

from dicom_file_service.settings import available_cores

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ORTHANC = "/usr/sbin/Orthanc"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
# Freshly uploaded copies of each PNG test file per peer and round, each asked for once: a
# cold rendering is a few milliseconds, as noisy as anything on a shared machine, and two a
# round left a run's median to chance.
COLD_COPIES = 8
GDCM_PLUGIN = "/usr/share/orthanc/plugins/libOrthancGdcm.so"
PNG_FILES = ("CT_small.dcm", "MR2_J2KR.dcm", "US1_UNCR.dcm", "RG1_UNCR.dcm")


def data_file(name: str) -> Path:
    """pydicom's bundled files and the pydicom-data package, found on disk (no download)."""
    import data_store

    for root in (
        Path(pydicom.__file__).parent / "data" / "test_files",
        Path(data_store.__file__).parent / "data",
    ):
        hit = next((p for p in root.rglob(name) if p.is_file()), None)
        if hit is not None:
            return hit
    raise FileNotFoundError(name)


def copies(name: str, n: int) -> list[bytes]:
    """``n`` copies of a test file, each with a fresh SOP Instance UID (valid DICOM)."""
    ds = pydicom.dcmread(data_file(name))
    out = []
    for _ in range(n):
        uid = generate_uid()
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port}{path}")


@dataclass
class Peer:
    """A server under test: how to upload to it, read a tag and ask for a PNG."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    upload: Callable[[http.client.HTTPConnection, bytes], str]
    tag_path: Callable[[str], str]
    png_path: Callable[[str], str]
    frame_path: Callable[[str, int], str]
    ids: list[str] = field(default_factory=list)
    services: tuple[str, ...] = ()
    """Names of the processes of the services it stores into (PostgreSQL, SeaweedFS)."""

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU seconds so far (user + system) of the server with its processes, and of the
        services it runs on: on these cores they share, what its work costs in all."""
        own = _cpu_seconds([self.process.pid, *_descendants(self.process.pid)])
        services = [
            int(entry.name)
            for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _comm(entry) in self.services
        ]
        return own, _cpu_seconds(services)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def peak_rss_mb(self) -> dict[str, float]:
        """VmHWM of the server process and its children, in MB."""
        pids = [self.process.pid, *_children(self.process.pid)]
        out = {}
        for pid in pids:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                status = Path(f"/proc/{pid}/status").read_text()
                m = re.search(r"VmHWM:\s+(\d+) kB", status)
                if m:
                    out[str(pid)] = int(m.group(1)) / 1024
        return out


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
    return kids


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        kids = _children(todo.pop())
        found += kids
        todo += kids
    return found


def _comm(entry: Path) -> str:
    with contextlib.suppress(OSError):
        return (entry / "comm").read_text().strip()
    return ""


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of live processes (``/proc/<pid>/stat``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _read(conn: http.client.HTTPConnection) -> tuple[int, bytes]:
    response = conn.getresponse()
    return response.status, response.read()


def post_form(conn: http.client.HTTPConnection, boundary: str, data: bytes) -> None:
    """``POST /dicom-image`` with the multipart form of the original README (``curl -F``)."""
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="IM"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    conn.request(
        "POST",
        "/dicom-image",
        body=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )


def start_ours(
    workdir: Path, workers: int | None = None, env: dict[str, str] | None = None, name: str = ""
) -> Peer:
    """Our server; ``workers=None``: as shipped (no flag: one worker per core); ``env``: its
    backends (default: the embedded default in ``workdir``)."""
    port = free_port()
    exe = Path(sys.executable).parent / "dicom-file-service"
    label = name or "dicom-file-service"
    log = open(workdir / f"{label.replace(' ', '-')}.log", "wb")  # noqa: SIM115 - server's life
    flags = ["--workers", str(workers)] if workers is not None else []
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_FS_", "AWS_"))}
    process = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *flags,
            "--data-dir",
            str(workdir / label.replace(" ", "-")),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**base, **(env or {})},
    )
    wait_http(port, "/readyz")
    boundary = "bench" + uuid.uuid4().hex

    def upload(conn: http.client.HTTPConnection, data: bytes) -> str:
        post_form(conn, boundary, data)
        status, answer = _read(conn)
        if status not in (200, 201):
            raise RuntimeError(f"ours: upload answered {status}: {answer[:200]!r}")
        return str(json.loads(answer)["file_id"])

    return Peer(
        label,
        port,
        process,
        upload,
        lambda i: f"/dicom-image/{i}?dicom_tag=(0010,0010)",
        lambda i: f"/dicom-image/{i}/png",
        lambda i, n: f"/dicom-image/{i}/png?frame={n}",
    )


def start_orthanc(workdir: Path, plugins: tuple[str, ...] = (), **config: Any) -> Peer:
    """Orthanc with its GDCM plugin (and ``plugins``), otherwise at its defaults."""
    port = free_port()
    storage = workdir / "orthanc"
    storage.mkdir()
    config = {
        "Name": "bench",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [GDCM_PLUGIN, *plugins],
        "StorageCompression": False,
        "KeepAlive": True,
        **config,
    }
    (workdir / "orthanc.json").write_text(json.dumps(config))
    log = open(workdir / "orthanc.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [ORTHANC, str(workdir / "orthanc.json")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(port, "/system")

    def upload(conn: http.client.HTTPConnection, data: bytes) -> str:
        conn.request("POST", "/instances", body=data, headers={"Content-Type": "application/dicom"})
        status, answer = _read(conn)
        if status != 200:
            raise RuntimeError(f"orthanc: upload answered {status}: {answer[:200]!r}")
        return str(json.loads(answer)["ID"])

    return Peer(
        "Orthanc",
        port,
        process,
        upload,
        lambda i: f"/instances/{i}/content/0010-0010",
        lambda i: f"/instances/{i}/preview",
        lambda i, n: f"/instances/{i}/frames/{n - 1}/preview",  # Orthanc counts from 0
    )


def uploads_per_second(peer: Peer, bodies: list[bytes], clients: int = 8) -> float:
    """Every body once, ``clients`` threads each on one kept-alive connection."""
    lock = threading.Lock()
    it: Iterator[bytes] = iter(bodies)
    ids: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=60)
        while True:
            with lock:
                body = next(it, None)
            if body is None:
                return
            try:
                file_id = peer.upload(conn, body)
            except BaseException as exc:  # reported below, the run goes on
                errors.append(exc)
                conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=60)
                continue
            with lock:
                ids.append(file_id)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{peer.name}: {len(errors)} uploads failed, first: {errors[0]}")
    peer.ids.extend(ids)
    return len(bodies) / elapsed


def wrk_tags(peer: Peer, seconds: int, workdir: Path) -> tuple[float, float]:
    """(requests/s, p99 ms) of tag lookups on random stored ids."""
    script = workdir / f"{peer.name}.lua"
    paths = ",".join(json.dumps(peer.tag_path(i)) for i in peer.ids)
    script.write_text(
        f"local paths = {{{paths}}}\n"
        "request = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\n"
        "end\n"
    )
    url = f"http://127.0.0.1:{peer.port}"
    subprocess.run(
        ["wrk", "-t2", "-c8", "-d2s", "-s", str(script), url],
        capture_output=True,
        check=True,
        timeout=60,
    )  # warm-up
    out = subprocess.run(
        ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"{peer.name}: wrk saw errors:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None
    scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def timed_get(conn: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    conn.request("GET", path)
    status, body = _read(conn)
    elapsed = (time.perf_counter() - started) * 1e3
    if status != 200 or not body:
        raise RuntimeError(f"GET {path} answered {status}")
    return elapsed


def png_times(peer: Peer, name: str, runs: int) -> tuple[float, float]:
    """(median cold ms, median warm ms: the first file's URL asked 30 times more, or at least
    10 within 2 s: a warm answer is a few tenths of a millisecond, where ten asks left the
    median to chance, and Orthanc's renders again each time, up to half a second)."""
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=120)
    ids = [peer.upload(conn, body) for body in copies(name, runs)]
    cold = [timed_get(conn, peer.png_path(i)) for i in ids]
    warm: list[float] = []
    until = time.perf_counter() + 2
    while len(warm) < 30 and (len(warm) < 10 or time.perf_counter() < until):
        warm.append(timed_get(conn, peer.png_path(ids[0])))
    # Orthanc's /preview renders every time: its warm figure is the same request again.
    return statistics.median(cold), statistics.median(warm)


def machine() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError):
        cpu = next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            "",
        )
    orthanc = ""
    if Path(ORTHANC).exists():
        orthanc = subprocess.run([ORTHANC, "--version"], capture_output=True, text=True).stdout
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "orthanc": orthanc.splitlines()[0] if orthanc else "?",
        "commit": commit,
    }


def constant_app(workdir: Path, workers: int) -> Peer:
    """The Python ceiling: ``constant_app.py`` under uvicorn as ``serve`` runs ours (same
    worker count, httptools and uvloop, proxy headers on, no access log)."""
    port = free_port()
    log = open(workdir / "ceiling.log", "wb")  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "uvicorn"),
            "constant_app:app",
            "--app-dir",
            str(ROOT / "bench"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_http(port, "/")

    def no_upload(conn: http.client.HTTPConnection, data: bytes) -> str:
        raise NotImplementedError

    return Peer("ceiling", port, process, no_upload, lambda i: "/", lambda i: "/", lambda i, n: "/")


def multiframe_file(path: Path, frames: int, rows: int, columns: int) -> Path:
    """A native 16-bit MR of ``frames`` frames, each a gradient with a frame-numbered offset
    (every frame renders to a different image), written to ``path``."""
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"  # Enhanced MR
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.Modality = "Bench^Frames", "BENCH", "MR"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    base = (np.arange(rows * columns, dtype=np.uint32) % 4000).astype(np.uint16)
    pixels = np.empty((frames, rows * columns), dtype=np.uint16)
    for n in range(frames):
        pixels[n] = (base + n) % 4096
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def upload_file(peer: Peer, path: Path) -> tuple[str, float]:
    """(file id, MB/s) of one raw ``application/dicom`` upload streamed from disk."""
    size = path.stat().st_size
    # 64 KiB writes, as curl sends a body: http.client's default of 8 KiB spends most of a
    # core on sending alone, which the server then lacks (both share this machine's cores).
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=3600, blocksize=65536)
    url = "/dicom-image" if peer.name != "Orthanc" else "/instances"
    started = time.perf_counter()
    with open(path, "rb") as body:
        conn.request(
            "POST",
            url,
            body=body,
            headers={"Content-Type": "application/dicom", "Content-Length": str(size)},
        )
        status, answer = _read(conn)
    elapsed = time.perf_counter() - started
    if status not in (200, 201):
        raise RuntimeError(f"{peer.name}: large upload answered {status}: {answer[:200]!r}")
    data = json.loads(answer)
    return str(data.get("file_id") or data.get("ID")), size / elapsed / 1e6


def disk_write_mb_per_s(directory: Path, size: int) -> float:
    """Sequential write bandwidth of the disk under ``directory``: ``size`` bytes in 8 MiB
    writes, then fsync, as ``dd conv=fsync`` measures it."""
    path = directory / "disk-bandwidth"
    chunk = os.urandom(8 * 1024 * 1024)
    started = time.perf_counter()
    with open(path, "wb", buffering=0) as f:
        for _ in range(size // len(chunk)):
            f.write(chunk)
        os.fsync(f.fileno())
    elapsed = time.perf_counter() - started
    path.unlink()
    return size / elapsed / 1e6


def frame_times(peer: Peer, file_id: str, frames: list[int]) -> list[float]:
    """Cold PNG ms of each frame (each frame's first request)."""
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=120)
    return [timed_get(conn, peer.frame_path(file_id, n)) for n in frames]


def postgres_s3(
    workdir: Path, postgres: str = POSTGRES
) -> tuple[dict[str, str], Callable[[], None]]:
    """PostgreSQL (a fresh schema of the local server at ``postgres``) and S3 (SeaweedFS on
    loopback, a fresh bucket) for a second instance of ours; returns its environment and
    how to clean up."""
    sys.path.insert(0, str(ROOT))
    from sqlalchemy import create_engine, text
    from tests.s3server import make_s3_server

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(postgres.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    s3 = make_s3_server(workdir / "seaweedfs")
    s3.start()

    def cleanup() -> None:
        s3.stop()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    env = {
        "DICOM_FS_DATABASE_URL": f"{postgres}{'&' if '?' in postgres else '?'}"
        f"options=-csearch_path%3D{schema}",
        **s3.env("bench", "dicom"),
    }
    return env, cleanup


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(results: dict[str, Any]) -> str:
    """The table of medians, ratios and targets (the README quotes it as it is)."""
    m = {peer: {k: _median(v) for k, v in got.items()} for peer, got in results["samples"].items()}
    ours, remote, theirs, ceiling = (
        m["ours"],
        m.get("postgres+s3", {}),
        m["orthanc"],
        m["ceiling"],
    )
    rows = [
        "| measure | ours, embedded | ours, PostgreSQL + S3 | Orthanc | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(value: float | None, unit: str) -> str:
        if value is None or value != value:
            return "—"
        return f"{value:,.1f} {unit}" if value < 10000 else f"{value:,.0f} {unit}"

    def row(label: str, key: str, unit: str, ratio: float, target: str, ok: bool) -> None:
        rows.append(
            f"| {label} | {fmt(ours.get(key), unit)} | {fmt(remote.get(key), unit)} | "
            f"{fmt(theirs.get(key), unit)} | {ratio:.2f}× | {target} | "
            f"{'PASS' if ok else 'MISS'} |"
        )

    r = ours["uploads_per_s"] / theirs["uploads_per_s"]
    row("uploads/s (8 clients, multipart)", "uploads_per_s", "/s", r, "≥ 1.0× Orthanc", r >= 1)
    if "uploads_1_per_s" in ours:
        r = ours["uploads_1_per_s"] / theirs["uploads_1_per_s"]
        row("uploads/s (1 client)", "uploads_1_per_s", "/s", r, "≥ 1.0× Orthanc", r >= 1)
    if "upload_cpu_ms" in ours:
        r = theirs["upload_cpu_ms"] / ours["upload_cpu_ms"]  # a cost: lower is better
        services = remote.get("upload_service_cpu_ms")
        with_services = (
            f"{fmt(remote.get('upload_cpu_ms'), 'ms')} + {fmt(services, 'ms')} PostgreSQL "
            "and SeaweedFS"
            if services is not None
            else "—"
        )
        rows.append(
            f"| server CPU per upload (8 clients) | {fmt(ours['upload_cpu_ms'], 'ms')} | "
            f"{with_services} | {fmt(theirs['upload_cpu_ms'], 'ms')} | {r:.2f}× | "
            "(informative) | |"
        )
    r = ours["tags_per_s"] / theirs["tags_per_s"]
    row("tag lookups/s (wrk 2t/8c)", "tags_per_s", "/s", r, "≥ 1.0× Orthanc", r >= 1)
    r = ours["tags_per_s"] / ceiling["tags_per_s"]
    row(
        f"tag lookups/s against the ceiling ({ceiling['tags_per_s']:,.0f}/s)",
        "tags_per_s",
        "/s",
        r,
        "(informative)",
        True,
    )
    r = theirs["tags_p99_ms"] / ours["tags_p99_ms"]
    row("tag lookup p99", "tags_p99_ms", "ms", r, "≤ Orthanc's", r >= 1)
    for name in PNG_FILES:
        key = f"png_cold_{name}"
        r = theirs[key] / ours[key]
        row(f"cold PNG {name} (Orthanc /preview)", key, "ms", r, "≤ Orthanc", r >= 1)
    for name in PNG_FILES:
        key = f"png_warm_{name}"
        if key not in theirs:
            continue
        r = ours[key] / theirs[key]  # a time ratio: lower is better
        row(f"warm PNG {name} (the same URL again)", key, "ms", r, "≤ 0.2× Orthanc", r <= 0.2)
    frames = results["frames"]
    first = f"frame_{frames[0]}_ms"
    for n in frames:
        key = f"frame_{n}_ms"
        r = ours[key] / ours[first]
        row(
            f"cold PNG, frame {n} of {results['frame_count']}",
            key,
            "ms",
            r,
            "≤ 1.5× frame 1",
            r <= 1.5,
        )
    disk = ours.get("disk_mb_s")
    if disk:
        r = ours["large_mb_s"] / disk
        rows.append(
            f"| {results['large_mb']:,} MB upload, streamed and fsynced | "
            f"{fmt(ours['large_mb_s'], 'MB/s')} | {fmt(remote.get('large_mb_s'), 'MB/s')} | "
            f"{fmt(theirs.get('large_mb_s'), 'MB/s')} | {r:.2f}× of the disk's "
            f"{disk:,.0f} MB/s | ≥ 0.8× disk | {'PASS' if r >= 0.8 else 'MISS'} |"
        )
    peak = max(results["peak_rss_mb"]["ours"].values())
    theirs_peak = max(results["peak_rss_mb"]["orthanc"].values())
    rows.append(
        f"| peak RSS, largest server process | {peak:,.0f} MB | "
        f"{max(results['peak_rss_mb'].get('postgres+s3', {'-': 0}).values()):,.0f} MB | "
        f"{theirs_peak:,.0f} MB | | < 400 MB | {'PASS' if peak < 400 else 'MISS'} |"
    )
    if remote:
        rows += ["", "| PostgreSQL + S3 against embedded | ratio | target | |", "|---|---|---|---|"]
        compared = [
            ("uploads/s (8 clients)", "uploads_per_s", True),
            ("uploads/s (1 client)", "uploads_1_per_s", True),
            ("tag lookups/s", "tags_per_s", True),
            ("tag lookup p99", "tags_p99_ms", False),
            *((f"cold PNG {n}", f"png_cold_{n}", False) for n in PNG_FILES),
            *((f"warm PNG {n}", f"png_warm_{n}", False) for n in PNG_FILES),
            ("large upload MB/s", "large_mb_s", True),
        ]
        for label, key, higher in compared:
            if key not in remote or key not in ours:
                continue
            r = remote[key] / ours[key] if higher else ours[key] / remote[key]
            rows.append(f"| {label} | {r:.2f}× | ≥ 0.7× | {'PASS' if r >= 0.7 else 'MISS'} |")
        if "upload_service_cpu_ms" in remote:
            # Where the services share the cores, what an upload costs on them in all bounds
            # the uploads' ratio from 8 clients, whatever the service itself does.
            spent = remote["upload_cpu_ms"] + remote["upload_service_cpu_ms"]
            r = ours["upload_cpu_ms"] / spent
            rows.append(
                f"| CPU per upload, with PostgreSQL's and SeaweedFS's ({spent:.1f} against "
                f"{ours['upload_cpu_ms']:.1f} ms) | {r:.2f}× | (informative) | |"
            )
    mach = results["machine"]
    rows += [
        "",
        f"{mach['date']}, {mach['cpus']} CPUs ({mach['cpu']}), Python {mach['python']}, "
        f"pydicom {mach['pydicom']}, {mach['orthanc']}, commit {mach['commit']}; medians of "
        f"{results['rounds']} interleaved rounds ({results['uploads']} uploads per peer in "
        f"all, wrk {results['seconds']} s per round); every server at its shipped defaults "
        f"(ours: `serve`, {results['workers']} workers on {mach['cpus']} cores).",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--uploads", type=int, default=2400, help="per peer, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8, help="wrk per peer and round")
    parser.add_argument("--large-mb", type=int, default=1024, help="0: no large upload")
    parser.add_argument("--no-remote", action="store_true", help="skip PostgreSQL + S3")
    parser.add_argument(
        "--dimse",
        action="store_true",
        help="then the DICOM network's figures too (bench/dimse.py, needs root): every speed "
        "goal of the archive from one command",
    )
    args = parser.parse_args()
    if args.quick:
        args.uploads, args.rounds, args.seconds, args.large_mb = 300, 2, 2, 64
    for tool in (ORTHANC, "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install orthanc orthanc-gdcm wrk")

    frame_count = 1000
    frames = [1, 500, 1000]
    workers = available_cores()  # what ``serve`` starts by default
    results: dict[str, Any] = {
        "uploads": args.uploads,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "workers": workers,
        "frame_count": frame_count,
        "frames": frames,
        "large_mb": args.large_mb,
        "machine": machine(),
        "samples": {},
        "peak_rss_mb": {},
    }
    per_round = args.uploads // args.rounds
    cleanups: list[Callable[[], None]] = []
    with tempfile.TemporaryDirectory(prefix="dicom-bench-", dir=ROOT / "bench") as tmp:
        workdir = Path(tmp)
        peers: list[Peer] = []
        try:
            print("making the test files ...", flush=True)
            multi = multiframe_file(workdir / "frames.dcm", frame_count, 256, 256)
            peers = [start_ours(workdir, name="ours")]
            if not args.no_remote:
                env, cleanup = postgres_s3(workdir)
                cleanups.append(cleanup)
                peers.append(start_ours(workdir, env=env, name="postgres+s3"))
                peers[-1].services = ("weed", "postgres")
            peers.append(start_orthanc(workdir))
            ceiling = constant_app(workdir, workers)
            storing = list(peers)
            key = {p.name: ("orthanc" if p.name == "Orthanc" else p.name) for p in peers}
            key[ceiling.name] = "ceiling"
            samples: dict[str, dict[str, list[float]]] = {
                key[p.name]: {} for p in [*peers, ceiling]
            }
            multi_ids = {p.name: upload_file(p, multi)[0] for p in storing}

            def add(peer: Peer, name: str, value: float) -> None:
                samples[key[peer.name]].setdefault(name, []).append(value)

            for rnd in range(args.rounds):
                print(f"round {rnd + 1} of {args.rounds} ...", flush=True)
                bodies = copies("CT_small.dcm", per_round)
                for peer in storing:
                    own, services = peer.cpu_seconds()
                    add(peer, "uploads_per_s", uploads_per_second(peer, bodies))
                    own_after, services_after = peer.cpu_seconds()
                    add(peer, "upload_cpu_ms", (own_after - own) / len(bodies) * 1e3)
                    if peer.services:
                        spent = (services_after - services) / len(bodies) * 1e3
                        add(peer, "upload_service_cpu_ms", spent)
                lone = copies("CT_small.dcm", max(50, per_round // 4))
                for peer in storing:
                    add(peer, "uploads_1_per_s", uploads_per_second(peer, lone, clients=1))
                ceiling.ids = storing[0].ids
                for peer in [*storing, ceiling]:
                    rps, p99 = wrk_tags(peer, args.seconds, workdir)
                    add(peer, "tags_per_s", rps)
                    add(peer, "tags_p99_ms", p99)
                for name in PNG_FILES:
                    for peer in storing:
                        cold, warm = png_times(peer, name, COLD_COPIES)
                        add(peer, f"png_cold_{name}", cold)
                        add(peer, f"png_warm_{name}", warm)
                # Frames of the 1,000-frame file, each asked for the first time: a different
                # frame near each of 1, 500 and 1000 every round.
                asked = [1 + rnd, 500 + rnd, 1000 - rnd]
                for peer in storing:
                    times = frame_times(peer, multi_ids[peer.name], asked)
                    for n, ms in zip(frames, times, strict=True):
                        add(peer, f"frame_{n}_ms", ms)
            if args.large_mb:
                print(f"large upload ({args.large_mb} MB) ...", flush=True)
                big = multiframe_file(
                    workdir / "large.dcm", args.large_mb * 1024 * 1024 // (512 * 512 * 2), 512, 512
                )
                add(peers[0], "disk_mb_s", disk_write_mb_per_s(workdir, big.stat().st_size))
                for peer in storing:
                    add(peer, "large_mb_s", upload_file(peer, big)[1])
                add(peers[0], "disk_mb_s", disk_write_mb_per_s(workdir, big.stat().st_size))
                big.unlink()
            for peer in peers:
                results["peak_rss_mb"][key[peer.name]] = peer.peak_rss_mb()
            results["samples"] = samples
        finally:
            for peer in peers:
                peer.stop()
            if "ceiling" in locals():
                ceiling.stop()
            for cleanup in cleanups:
                cleanup()
    publish("latest", results, report(results))
    if args.dimse:
        print("\nthe DICOM network ...", flush=True)
        dimse = [sys.executable, str(ROOT / "bench" / "dimse.py")]
        subprocess.run([*dimse, *(["--quick"] if args.quick else [])], check=True)


def publish(name: str, results: dict[str, Any], table: str) -> None:
    """Print the table; keep it and the raw figures in ``bench/results/<name>.{md,json}``."""
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{name}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
