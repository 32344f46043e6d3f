"""DICOMweb beside Orthanc's DICOMweb plugin: STOW-RS, WADO-RS retrieve, metadata, QIDO-RS.

Both servers at their shipped defaults on loopback, fresh stores, measured in interleaved
rounds (ours, Orthanc, ours, Orthanc, ...) so that the machine's drift hits both; medians.

- STOW-RS of a 200-instance study (CT_small copies, one series), one request per round, each
  round a new study. Figure: instances stored per second.
- WADO-RS retrieve of a 200-instance study (``transfer-syntax=*``, as stored, so neither
  transcodes), the whole multipart body read.
- Series metadata of the same study (``/studies/{s}/series/{s}/metadata``).
- QIDO-RS over 1,000 single-instance studies of 1,000 patients: all studies (``limit=1000``)
  and a wildcard patient name search that finds ten of them.
"""

from __future__ import annotations

import argparse
import http.client
import io
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent))
from bench import (
    ORTHANC,
    Peer,
    data_file,
    machine,
    publish,
    start_orthanc,
    start_ours,
    uploads_per_second,
)

DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
JSON = "application/dicom+json"


def study_copies(n: int, patient: str = "BENCH^STOW") -> tuple[str, str, list[bytes]]:
    """``n`` CT_small copies in one new study and series, each with its own SOP UID."""
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientName = study, series, patient
    out = []
    for number in range(1, n + 1):
        uid = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = number
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return study, series, out


def related_body(parts: list[bytes]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + p + b"\r\n"
        for p in parts
    )
    return body + f"--{boundary}--\r\n".encode(), boundary


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[float, int, bytes]:
    """(seconds, status, body) of one request on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    start = time.perf_counter()
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - start
    conn.close()
    if response.status not in (200, 202):
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
    return elapsed, response.status, data


class Server:
    """One peer's DICOMweb root and the studies stored on it during the run."""

    def __init__(self, peer: Peer, root: str) -> None:
        self.peer, self.root = peer, root

    def stow(self, parts: list[bytes]) -> float:
        body, boundary = related_body(parts)
        content_type = f'multipart/related; type="application/dicom"; boundary={boundary}'
        elapsed, _, _ = request(
            self.peer.port,
            "POST",
            f"{self.root}/studies",
            body,
            {"Content-Type": content_type, "Accept": JSON},
        )
        return elapsed

    def get(self, path: str, accept: str) -> tuple[float, bytes]:
        elapsed, _, data = request(
            self.peer.port, "GET", self.root + path, None, {"Accept": accept}
        )
        return elapsed, data


def interleaved(
    servers: dict[str, Server], rounds: int, measure: Callable[[Server], float]
) -> dict[str, float]:
    """Median of ``measure`` per server over ``rounds`` interleaved rounds."""
    times: dict[str, list[float]] = {name: [] for name in servers}
    for _ in range(rounds):
        for name, server in servers.items():
            times[name].append(measure(server))
    return {name: statistics.median(values) for name, values in times.items()}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    ours = start_ours(workdir, workers=None)
    orthanc = start_orthanc(workdir, plugins=(DICOMWEB_PLUGIN,))
    servers = {"ours": Server(ours, "/dicomweb"), "orthanc": Server(orthanc, "/dicom-web")}
    results: dict[str, Any] = {}
    try:
        n = args.instances
        print(f"STOW-RS of {n}-instance studies, {args.rounds} rounds ...", flush=True)
        studies = {name: [] for name in servers}  # type: dict[str, list[tuple[str, str]]]

        def stow(server: Server) -> float:
            study, series, parts = study_copies(n)
            name = "ours" if server is servers["ours"] else "orthanc"
            studies[name].append((study, series))
            return server.stow(parts)

        stow_s = interleaved(servers, args.rounds, stow)
        results["stow_instances_per_s"] = {k: n / v for k, v in stow_s.items()}

        def retrieve(server: Server) -> float:
            name = "ours" if server is servers["ours"] else "orthanc"
            study, _ = studies[name][0]
            elapsed, data = server.get(f"/studies/{study}", AS_STORED)
            assert data.count(b"DICM") >= n, f"{name}: retrieve returned too little"
            return elapsed

        print("WADO-RS retrieve ...", flush=True)
        results["retrieve_ms"] = {
            k: v * 1000 for k, v in interleaved(servers, args.repeats, retrieve).items()
        }

        def metadata(server: Server) -> float:
            name = "ours" if server is servers["ours"] else "orthanc"
            study, series = studies[name][0]
            elapsed, data = server.get(f"/studies/{study}/series/{series}/metadata", JSON)
            assert data.count(b'"00080018"') == n, f"{name}: metadata is incomplete"
            return elapsed

        print("series metadata ...", flush=True)
        results["metadata_ms"] = {
            k: v * 1000 for k, v in interleaved(servers, args.repeats, metadata).items()
        }

        print(f"storing {args.studies} single-instance studies for QIDO ...", flush=True)
        bodies = []
        for i in range(args.studies):
            _, _, (body,) = study_copies(1, patient=f"QIDO^PATIENT{i:04d}")
            bodies.append(body)
        for peer in (ours, orthanc):
            uploads_per_second(peer, bodies)

        def all_studies(server: Server) -> float:
            elapsed, data = server.get(f"/studies?limit={args.studies}", JSON)
            assert data.count(b'"0020000D"') >= args.studies, "QIDO found too few studies"
            return elapsed

        def by_name(server: Server) -> float:
            # "^" unencoded: Orthanc 1.10 does not decode %5E in query values.
            elapsed, data = server.get("/studies?PatientName=QIDO^PATIENT001*", JSON)
            found = data.count(b'"0020000D"')
            assert found == 10, f"{server.root}: QIDO found {found} studies, not 10"
            return elapsed

        print("QIDO-RS ...", flush=True)
        results["qido_all_ms"] = {
            k: v * 1000 for k, v in interleaved(servers, args.repeats, all_studies).items()
        }
        results["qido_name_ms"] = {
            k: v * 1000 for k, v in interleaved(servers, args.repeats, by_name).items()
        }
    finally:
        ours.stop()
        orthanc.stop()
    return results


def report(results: dict[str, Any], args: argparse.Namespace) -> str:
    rows = [
        "| measure | dicom-file-service | Orthanc + DICOMweb plugin | ratio | target | |",
        "|---|---|---|---|---|---|",
    ]
    stow = results["stow_instances_per_s"]
    ratio = stow["ours"] / stow["orthanc"]
    rows.append(
        f"| STOW-RS, {args.instances}-instance study | {stow['ours']:,.0f} instances/s | "
        f"{stow['orthanc']:,.0f} instances/s | {ratio:.2f}× | ≥ 1.0× | "
        f"{'PASS' if ratio >= 1 else 'MISS'} |"
    )
    for key, label in (
        ("retrieve_ms", f"WADO-RS retrieve, {args.instances}-instance study"),
        ("metadata_ms", f"series metadata, {args.instances} instances"),
        ("qido_all_ms", f"QIDO-RS all of {args.studies} studies"),
        ("qido_name_ms", f"QIDO-RS PatientName wildcard over {args.studies} studies"),
    ):
        ours, theirs = results[key]["ours"], results[key]["orthanc"]
        ratio = theirs / ours
        rows.append(
            f"| {label} | {ours:,.1f} ms | {theirs:,.1f} ms | {ratio:.2f}× | ≥ 1.0× (speed) | "
            f"{'PASS' if ratio >= 1 else 'MISS'} |"
        )
    m = results["machine"]
    rows += [
        "",
        f"{m['date']}, {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, "
        f"{m['orthanc']}, commit {m['commit']}; medians of {args.rounds} STOW rounds and "
        f"{args.repeats} interleaved repeats of the rest; both servers as shipped.",
    ]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--studies", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    if args.quick:
        args.instances, args.studies, args.rounds, args.repeats = 20, 50, 2, 3
    if not Path(ORTHANC).exists() or not Path(DICOMWEB_PLUGIN).exists():
        sys.exit("Orthanc is not installed: apt-get install orthanc orthanc-dicomweb orthanc-gdcm")
    with tempfile.TemporaryDirectory(prefix="dicomweb-bench-") as tmp:
        results = run(args, Path(tmp))
    results["machine"] = machine()
    publish("dicomweb", results, report(results, args))


if __name__ == "__main__":
    main()
