"""Benchmark dicom-file-service against Orthanc, in one run on one machine.

    uv run python bench/bench.py [--quick] [--uploads 2000] [--seconds 10]

Starts both servers on loopback (Orthanc from Debian's ``orthanc`` + ``orthanc-gdcm``; ours with
``serve --workers 2``), each with a fresh temporary store, and measures:

- uploads/s: distinct CT_small copies, 8 concurrent clients on kept-alive connections
  (ours: the original contract's multipart form; Orthanc: ``POST /instances``);
- tag lookups/s and p99 with wrk (2 threads, 8 connections, random file ids);
- cold and warm PNG time for CT_small, MR2_J2KR, US1_UNCR and RG1_UNCR (Orthanc: ``/preview``,
  which it does not cache);
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
ORTHANC = "/usr/sbin/Orthanc"
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
    ids: list[str] = field(default_factory=list)

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


def start_ours(workdir: Path, workers: int | None = 2) -> Peer:
    """Our server on the embedded default; ``workers=None``: as shipped (no flag)."""
    port = free_port()
    exe = Path(sys.executable).parent / "dicom-file-service"
    log = open(workdir / "ours.log", "wb")  # noqa: SIM115 - lives as long as the server
    flags = ["--workers", str(workers)] if workers is not None else []
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
            str(workdir / "ours"),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
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
        "dicom-file-service",
        port,
        process,
        upload,
        lambda i: f"/dicom-image/{i}?dicom_tag=(0010,0010)",
        lambda i: f"/dicom-image/{i}/png",
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


def png_times(peer: Peer, name: str, runs: int) -> tuple[float, float | None]:
    """(median cold ms, median warm ms or None for a peer that does not cache)."""
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=120)
    ids = [peer.upload(conn, body) for body in copies(name, runs)]
    cold = [timed_get(conn, peer.png_path(i)) for i in ids]
    warm = [timed_get(conn, peer.png_path(ids[0])) for _ in range(20)]
    if peer.name == "Orthanc":  # /preview renders every time: it has no warm figure
        return statistics.median(cold), None  # cold: each file's first request, as ours
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


def report(results: dict[str, Any]) -> str:
    o, t = results["ours"], results["orthanc"]
    rows = [
        "| measure | dicom-file-service | Orthanc | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]

    def row(
        measure: str,
        ours: float,
        theirs: float | None,
        ratio: float,
        target: str,
        ok: bool,
        unit: str,
    ) -> None:
        theirs_text = f"{theirs:,.1f} {unit}" if theirs is not None else "—"
        rows.append(
            f"| {measure} | {ours:,.1f} {unit} | {theirs_text} | {ratio:.2f}× | "
            f"{target} | {'PASS' if ok else 'MISS'} |"
        )

    r = o["uploads_per_s"] / t["uploads_per_s"]
    row(
        "uploads/s (8 clients, multipart)",
        o["uploads_per_s"],
        t["uploads_per_s"],
        r,
        "≥ 1.0×",
        r >= 1.0,
        "/s",
    )
    r = o["tags_per_s"] / t["tags_per_s"]
    row("tag lookups/s (wrk 2t/8c)", o["tags_per_s"], t["tags_per_s"], r, "≥ 1.0×", r >= 1.0, "/s")
    r = t["tags_p99_ms"] / o["tags_p99_ms"]
    row("tag lookup p99", o["tags_p99_ms"], t["tags_p99_ms"], r, "(informative)", True, "ms")
    for name in PNG_FILES:
        ours_cold, ours_warm = o["png"][name]
        theirs = t["png"][name][0]
        r = theirs / ours_cold
        row(
            f"cold PNG {name} (Orthanc /preview)", ours_cold, theirs, r, "≤ Orthanc", r >= 1.0, "ms"
        )
        r = ours_cold / ours_warm
        row(
            f"warm PNG {name} (cached)", ours_warm, None, r, "≥ 10× faster than cold", r >= 10, "ms"
        )
    peak = max(o["peak_rss_mb"].values())
    rows.append(
        f"| peak RSS, largest server process | {peak:,.0f} MB | "
        f"{max(t['peak_rss_mb'].values()):,.0f} MB | | < 400 MB | "
        f"{'PASS' if peak < 400 else 'MISS'} |"
    )
    m = results["machine"]
    rows.append("")
    rows.append(
        f"{m['date']}, {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"pydicom {m['pydicom']}, {m['orthanc']}, commit {m['commit']}; "
        f"{results['uploads']} uploads, wrk {results['seconds']} s."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--png-runs", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        args.uploads, args.seconds, args.png_runs = 200, 3, 2
    for tool in (ORTHANC, "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed: apt-get install orthanc orthanc-gdcm wrk")

    print(f"preparing {args.uploads} distinct CT_small copies ...", flush=True)
    bodies = copies("CT_small.dcm", args.uploads)
    results: dict[str, Any] = {
        "uploads": args.uploads,
        "seconds": args.seconds,
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="dicom-bench-") as tmp:
        workdir = Path(tmp)
        peers: list[Peer] = []
        try:
            peers = [start_ours(workdir), start_orthanc(workdir)]
            for peer in peers:
                key = "ours" if peer.name != "Orthanc" else "orthanc"
                print(f"{peer.name}: uploads ...", flush=True)
                ups = uploads_per_second(peer, bodies)
                print(f"{peer.name}: tag lookups ...", flush=True)
                rps, p99 = wrk_tags(peer, args.seconds, workdir)
                print(f"{peer.name}: PNG ...", flush=True)
                png = {name: png_times(peer, name, args.png_runs) for name in PNG_FILES}
                results[key] = {
                    "uploads_per_s": ups,
                    "tags_per_s": rps,
                    "tags_p99_ms": p99,
                    "png": png,
                    "peak_rss_mb": peer.peak_rss_mb(),
                }
        finally:
            for peer in peers:
                peer.stop()
    publish("latest", results, report(results))


def publish(name: str, results: dict[str, Any], table: str) -> None:
    """Print the table; keep it and the raw figures in ``bench/results/<name>.{md,json}``."""
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2))
    (RESULTS / f"{name}.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
