"""De-identification beside Orthanc's: one study copied without identity, instances per second.

    uv run --no-sync python bench/deidentify.py [--instances 200] [--rounds 3]

Both servers at their shipped defaults on loopback, each on a fresh temporary store, hold the
same study: ``--instances`` copies of CT_small (one series, fresh SOP Instance UIDs, a patient
name and ID planted). Each round asks each server, in turn, for a de-identified copy of the
whole study and waits until it is stored:

- ours: ``POST /dicomweb/studies/{study}/deidentify`` (the Basic Application Level
  Confidentiality Profile, keyed pseudonyms), then ``GET /jobs/{id}`` every 20 ms until the
  job has finished; each round gives another Patient's Name (``replace``), so each round makes
  a new copy (the same request again would find its copy stored and store nothing);
- Orthanc 1.10: ``POST /studies/{id}/anonymize`` with ``{"Synchronous": true}`` (its defaults
  otherwise: PS3.15's basic profile, private tags removed), which answers once the copy is
  stored.

Each copy is checked: it holds as many instances as the source and no planted value. The
table gives the median instances/s over the rounds and the ratio (ours / Orthanc); it is
written to ``bench/results/deidentify-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent))
from bench import ROOT, Peer, data_file, machine, publish, start_orthanc, start_ours

PATIENT, PATIENT_ID = "BENCHMARK^PLANTED", "PLANTED-ID-1"


def study_files(n: int) -> tuple[str, list[bytes]]:
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    study = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, generate_uid()
    ds.PatientName, ds.PatientID = PATIENT, PATIENT_ID
    out = []
    for _ in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return study, out


def request(
    peer: Peer, method: str, path: str, body: Any = None, timeout: float = 600
) -> tuple[int, Any, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=timeout)
    data = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    raw = response.read()
    conn.close()
    answer = json.loads(raw) if raw else None
    return response.status, answer, dict(response.getheaders())


def store_all(peer: Peer, files: list[bytes]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=60)
    for data in files:
        peer.upload(conn, data)


def ours_copy(peer: Peer, study: str, round_no: int) -> tuple[float, str]:
    """Seconds to a stored copy, and the copy's study UID."""
    body = {"replace": {"PatientName": f"SUBJECT^ROUND{round_no}"}}
    started = time.perf_counter()
    status, job, headers = request(peer, "POST", f"/dicomweb/studies/{study}/deidentify", body)
    if status != 202:
        raise RuntimeError(f"ours: {status} {job}")
    location = headers.get("location") or headers["Location"]
    while job["state"] not in ("succeeded", "failed"):
        time.sleep(0.02)
        _, job, _ = request(peer, "GET", location)
    elapsed = time.perf_counter() - started
    if job["state"] != "succeeded":
        raise RuntimeError(f"ours: the job failed: {job}")
    return elapsed, str(job["result"]["study"])


def orthanc_copy(peer: Peer, orthanc_study: str) -> tuple[float, str]:
    started = time.perf_counter()
    status, answer, _ = request(
        peer, "POST", f"/studies/{orthanc_study}/anonymize", {"Synchronous": True}
    )
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"orthanc: {status} {answer}")
    return elapsed, str(answer["ID"])


def check_ours(peer: Peer, study: str, n: int) -> None:
    status, found, _ = request(peer, "GET", f"/dicomweb/studies/{study}/instances?limit=5000")
    if status != 200 or len(found) != n:
        raise RuntimeError(f"ours: the copy holds {len(found or [])} instances, not {n}")
    _, meta, _ = request(peer, "GET", f"/dicomweb/studies/{study}/metadata")
    if PATIENT_ID in json.dumps(meta) or "PLANTED" in json.dumps(meta):
        raise RuntimeError("ours: a planted value is in the copy")


def check_orthanc(peer: Peer, copy: str, n: int) -> None:
    _, instances, _ = request(peer, "GET", f"/studies/{copy}/instances")
    if len(instances) != n:
        raise RuntimeError(f"orthanc: the copy holds {len(instances)} instances, not {n}")
    _, tags, _ = request(peer, "GET", f"/instances/{instances[0]['ID']}/simplified-tags")
    if "PLANTED" in json.dumps(tags):
        raise RuntimeError("orthanc: a planted value is in the copy")


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n = args.instances
    study, files = study_files(n)
    ours = start_ours(workdir, name="ours")
    orthanc = start_orthanc(workdir)
    samples: dict[str, list[float]] = {"ours": [], "orthanc": []}
    try:
        store_all(ours, files)
        store_all(orthanc, files)
        conn = http.client.HTTPConnection("127.0.0.1", orthanc.port, timeout=60)
        conn.request("POST", "/tools/lookup", body=study)
        found = json.loads(conn.getresponse().read())
        orthanc_study = next(f["ID"] for f in found if f["Type"] == "Study")
        for round_no in range(args.rounds):
            print(f"round {round_no + 1} of {args.rounds} ...", flush=True)
            seconds, copy = ours_copy(ours, study, round_no)
            check_ours(ours, copy, n)
            samples["ours"].append(n / seconds)
            seconds, copy = orthanc_copy(orthanc, orthanc_study)
            check_orthanc(orthanc, copy, n)
            samples["orthanc"].append(n / seconds)
    finally:
        ours.stop()
        orthanc.stop()
    return {"instances": n, "rounds": args.rounds, "samples": samples, "machine": machine()}


def report(results: dict[str, Any]) -> str:
    ours = statistics.median(results["samples"]["ours"])
    orthanc = statistics.median(results["samples"]["orthanc"])
    m = results["machine"]
    ratio = ours / orthanc
    return "\n".join(
        [
            "| measure | ours | Orthanc | ratio |",
            "|---|---|---|---|",
            f"| de-identified copy of a {results['instances']}-instance study "
            f"| {ours:.1f} instances/s | {orthanc:.1f} instances/s | {ratio:.2f}× |",
            "",
            f"{m['date']}, {m['cpus']} CPUs ({m['cpu']}), Python {m['python']}, pydicom "
            f"{m['pydicom']}, {m['orthanc']}, commit {m['commit']}; medians of "
            f"{results['rounds']} interleaved rounds. Rounds, ours: "
            + " / ".join(f"{x:.1f}" for x in results["samples"]["ours"])
            + "; Orthanc: "
            + " / ".join(f"{x:.1f}" for x in results["samples"]["orthanc"])
            + ".",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="deid-bench-", dir=ROOT / "bench") as tmp:
        results = run(args, Path(tmp))
    publish("deidentify-latest", results, report(results))


if __name__ == "__main__":
    main()
