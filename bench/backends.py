"""Benchmark the deployment modes against each other, in one run on one machine.

    uv run python bench/backends.py [--quick] [--uploads 1200] [--rounds 3] [--seconds 5]

Three configurations of dicom-file-service, each as shipped (``serve`` with no tuning flags):

- ``embedded``: SQLite + local disk (the default);
- ``postgres+s3``: PostgreSQL (127.0.0.1:5432, a fresh schema) + S3 (SeaweedFS on loopback,
  a fresh bucket), one instance;
- ``2 instances``: two ``serve`` processes on that same database and bucket, the clients and
  the load spread over both.

Measured in interleaved rounds (A, B, C, A, B, C, ...) so the machine's drift hits every
configuration alike; the table gives medians over rounds and the ratios to the embedded
default: uploads/s (8 clients, multipart), tag lookups/s (wrk, 8 connections in all), cold
PNG (first request for a freshly stored CT_small) and warm PNG (the same URL again).
Writes ``bench/results/backends.json`` and ``backends.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sqlalchemy import create_engine, text  # noqa: E402
from tests.s3server import S3Server, make_s3_server  # noqa: E402

from bench import copies, free_port, machine, post_form, publish, wait_http  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@dataclass
class Deployment:
    name: str
    ports: list[int]
    processes: list[subprocess.Popen[bytes]]
    ids: list[str] = field(default_factory=list)
    boundary: str = field(default_factory=lambda: "bench" + uuid.uuid4().hex)

    def upload(self, conn: http.client.HTTPConnection, data: bytes) -> str:
        post_form(conn, self.boundary, data)
        response = conn.getresponse()
        answer = response.read()
        if response.status not in (200, 201):
            raise RuntimeError(f"{self.name}: upload answered {response.status}: {answer[:200]!r}")
        return str(json.loads(answer)["file_id"])

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start(name: str, workdir: Path, env: dict[str, str], instances: int) -> Deployment:
    exe = Path(sys.executable).parent / "dicom-file-service"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DICOM_FS_", "AWS_"))}
    ports, processes = [], []
    for i in range(instances):
        port = free_port()
        log = open(workdir / f"{name.replace(' ', '-')}-{i}.log", "wb")  # noqa: SIM115
        data_dir = workdir / f"{name.replace(' ', '-').replace('+', '-')}-{i}"
        processes.append(
            subprocess.Popen(
                [str(exe), "serve", "--port", str(port), "--data-dir", str(data_dir)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**base, **env},
            )
        )
        wait_http(port, "/readyz")
        ports.append(port)
    return Deployment(name, ports, processes)


def uploads_per_second(dep: Deployment, bodies: list[bytes], clients: int = 8) -> float:
    lock = threading.Lock()
    it: Iterator[bytes] = iter(bodies)
    errors: list[BaseException] = []

    def worker(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                body = next(it, None)
            if body is None:
                return
            try:
                file_id = dep.upload(conn, body)
            except BaseException as exc:  # reported after the round
                errors.append(exc)
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                continue
            with lock:
                dep.ids.append(file_id)

    threads = [
        threading.Thread(target=worker, args=(dep.ports[i % len(dep.ports)],))
        for i in range(clients)
    ]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{dep.name}: {len(errors)} uploads failed, first: {errors[0]}")
    return len(bodies) / elapsed


def tag_lookups_per_second(dep: Deployment, seconds: int, workdir: Path) -> float:
    """wrk on every instance at once (8 connections in all), random stored ids."""
    script = workdir / "tags.lua"
    paths = ",".join(json.dumps(f"/dicom-image/{i}?dicom_tag=(0010,0010)") for i in dep.ids)
    script.write_text(
        f"local paths = {{{paths}}}\nrequest = function()\n"
        "  return wrk.format('GET', paths[math.random(#paths)])\nend\n"
    )
    per = max(1, 8 // len(dep.ports))
    runs = [
        subprocess.Popen(
            ["wrk", "-t1", f"-c{per}", f"-d{seconds}s", "-s", str(script), f"http://127.0.0.1:{p}"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in dep.ports
    ]
    total = 0.0
    for run in runs:
        out, _ = run.communicate(timeout=seconds + 60)
        if "Non-2xx" in out:
            raise RuntimeError(f"{dep.name}: wrk saw errors:\n{out}")
        total += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return total


def png_times(dep: Deployment, bodies: list[bytes]) -> tuple[float, float]:
    """(median cold ms, median warm ms) of CT_small PNGs."""
    conn = http.client.HTTPConnection("127.0.0.1", dep.ports[-1], timeout=120)
    ids = [dep.upload(conn, body) for body in bodies]

    def get(file_id: str) -> float:
        started = time.perf_counter()
        conn.request("GET", f"/dicom-image/{file_id}/png")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or not body:
            raise RuntimeError(f"{dep.name}: PNG answered {response.status}")
        return (time.perf_counter() - started) * 1e3

    cold = [get(i) for i in ids]
    warm = [get(ids[0]) for _ in range(20)]
    return statistics.median(cold), statistics.median(warm)


def report(results: dict[str, Any]) -> str:
    names = list(results["configs"])
    base = results["configs"][names[0]]
    rows = [
        "| measure | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]

    def line(label: str, key: str, unit: str, higher_is_better: bool) -> None:
        cells = []
        for name in names:
            value = results["configs"][name][key]
            ratio = value / base[key] if higher_is_better else base[key] / value
            suffix = "" if name == names[0] else f" ({ratio:.2f}×)"
            cells.append(f"{value:,.1f} {unit}{suffix}")
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    line("uploads/s (8 clients, multipart)", "uploads_per_s", "/s", True)
    line("tag lookups/s (wrk, 8 connections)", "tags_per_s", "/s", True)
    line("cold PNG CT_small (median)", "png_cold_ms", "ms", False)
    line("warm PNG CT_small (median)", "png_warm_ms", "ms", False)
    m = results["machine"]
    rows += [
        "",
        "Medians of "
        f"{results['rounds']} interleaved rounds; ratios to {names[0]} (above 1 is faster). "
        f"{m['date']}, {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, commit {m['commit']}.",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--uploads", type=int, default=1200, help="per configuration, in all")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        args.uploads, args.rounds, args.seconds = 120, 2, 2
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    per_round = args.uploads // args.rounds
    print("preparing copies of CT_small ...", flush=True)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES.replace("postgresql://", "postgresql+psycopg://"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    results: dict[str, Any] = {"rounds": args.rounds, "machine": machine(), "configs": {}}
    deployments: list[Deployment] = []
    s3: S3Server | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="dicom-bench-backends-") as tmp:
            workdir = Path(tmp)
            s3 = make_s3_server(workdir / "seaweedfs")
            s3.start()
            remote = {
                "DICOM_FS_DATABASE_URL": f"{POSTGRES}?options=-csearch_path%3D{schema}",
                **s3.env("bench", "dicom"),
            }
            deployments = [
                start("embedded", workdir, {}, 1),
                start("postgres+s3", workdir, remote, 1),
                start("2 instances", workdir, remote, 2),
            ]
            samples: dict[str, dict[str, list[float]]] = {d.name: {} for d in deployments}
            for rnd in range(args.rounds):
                for dep in deployments:
                    print(f"round {rnd + 1}: {dep.name} ...", flush=True)
                    got = samples[dep.name]
                    ups = uploads_per_second(dep, copies("CT_small.dcm", per_round))
                    tags = tag_lookups_per_second(dep, args.seconds, workdir)
                    cold, warm = png_times(dep, copies("CT_small.dcm", 5))
                    for key, value in (
                        ("uploads_per_s", ups),
                        ("tags_per_s", tags),
                        ("png_cold_ms", cold),
                        ("png_warm_ms", warm),
                    ):
                        got.setdefault(key, []).append(value)
            for name, got in samples.items():
                results["configs"][name] = {k: statistics.median(v) for k, v in got.items()}
                results["configs"][name]["samples"] = got
    finally:
        for dep in deployments:
            dep.stop()
        if s3 is not None:
            s3.stop()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    publish("backends", results, report(results))


if __name__ == "__main__":
    main()
