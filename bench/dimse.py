"""The DICOM network (DIMSE) beside Orthanc's: C-STORE, C-FIND, C-MOVE and C-GET, in one run.

    uv run --no-sync python bench/dimse.py [--quick] [--rounds 3]

Both servers at their shipped defaults on loopback, each on a fresh temporary store: ours
(``dicom-file-service serve``: the embedded default, SQLite + local disk, its DICOM listener
beside HTTP; and a second time on PostgreSQL, through its Unix socket, + SeaweedFS, held
against the embedded figures, target 0.7x) and Orthanc 1.10 from Debian (DICOM server on,
the benchmark's AEs registered as DicomModalities; otherwise its defaults). The clients are
DCMTK's (storescu, findscu, movescu, getscu, storescp), the same for every peer. Measured in
interleaved rounds (each measure taken of each peer in turn, every round), medians reported:

- C-STORE of 500 distinct CT_small copies (fresh UIDs, written before timing) by one storescu
  on one association, and by 4 storescu at once (4 associations x 125); instances/s.
- C-FIND at STUDY level (Study Root) over 1,000 single-instance studies of 1,000 patients,
  stored once per peer before timing: a PatientName wildcard matching all 1,000 (1,000
  answers) and a unique PatientID (1 answer); findscu ``--repeat`` on one association; ms
  per query.
- C-MOVE of a 500-instance study to a storescp (``--ignore``: received, not written)
  registered at both; instances/s.
- C-GET of the same study by getscu (``--ignore``), proposing the uncompressed syntaxes
  (Explicit VR Little Endian first, CT_small's own); instances/s.

Orthanc binds its DICOM port on every interface, so the whole run (both servers and every
client) is made in a private network namespace: the script starts itself again under
``unshare -n`` (root) with its loopback up, unless ``--no-netns``.

Prints a Markdown table with the ratios (ours / Orthanc, target >= 1.0x) and writes
``bench/results/dimse-latest.{json,md}``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid

sys.path.insert(0, str(Path(__file__).parent))
from bench import (
    ORTHANC,
    ROOT,
    Peer,
    data_file,
    free_port,
    machine,
    postgres_s3,
    publish,
    start_orthanc,
    start_ours,
)

TOOLS = ("storescu", "findscu", "movescu", "getscu", "storescp")
DCMTK = "/usr/bin"  # pynetdicom installs programs of the same names in the venv's bin
SCU_AET, DEST_AET = "BENCHSCU", "BENCHDEST"
NETNS_FLAG = "DIMSE_BENCH_IN_NETNS"
POSTGRES_SOCKET = Path("/var/run/postgresql")
"""PostgreSQL's Unix socket: a filesystem object, so it reaches the host's server from the
private network namespace, where 127.0.0.1:5432 is not the host's."""


# Debian's DCMTK leaves Nagle's algorithm on unless TCP_NODELAY=1 is in the environment: a
# storescu then waits on delayed ACKs, about 90 ms an instance. Every DCMTK client here runs
# with it (the servers' environments are left alone).
TOOL_ENV = {**os.environ, "TCP_NODELAY": "1"}


def tool(name: str) -> str:
    return f"{DCMTK}/{name}"


# ---------------------------------------------------------------------------- test files


def write_study(directory: Path, n: int, patient: str, patient_id: str) -> tuple[str, list[Path]]:
    """``n`` CT_small copies in one new study and series, each with its own SOP Instance UID,
    written as Part 10 files (Explicit VR Little Endian, as the original)."""
    directory.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    study, series = generate_uid(), generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID = patient, patient_id
    paths = []
    for number in range(1, n + 1):
        uid = generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = number
        path = directory / f"{number:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return study, paths


def write_find_studies(directory: Path, n: int) -> list[Path]:
    """``n`` single-instance studies of ``n`` patients, FIND^P0000..., FINDID0000..."""
    directory.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(data_file("CT_small.dcm"))
    paths = []
    for i in range(n):
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.PatientName, ds.PatientID = f"FIND^P{i:04d}", f"FINDID{i:04d}"
        ds.AccessionNumber = f"A{i:07d}"
        path = directory / f"{i:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------- the peers


@dataclass
class DicomPeer:
    """A server under test: its HTTP side (``peer``), its DICOM port and AE title, and the
    storescp its C-MOVEs go to."""

    key: str  # "ours", "postgres+s3" or "orthanc"
    peer: Peer
    dicom_port: int
    aet: str
    dest: subprocess.Popen[bytes]
    dest_log: Path

    def address(self) -> list[str]:
        return ["-aet", SCU_AET, "-aec", self.aet, "127.0.0.1", str(self.dicom_port)]

    def stop(self) -> None:
        self.peer.stop()
        with contextlib.suppress(ProcessLookupError):
            self.dest.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.dest.wait(timeout=10)


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def move_destination(workdir: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    """DCMTK's storescp as a C-MOVE destination: receives every instance and writes none
    (``--ignore``), so the destination costs the same, and little, for both peers."""
    port = free_port()
    log = open(workdir / f"storescp-{name}.log", "wb")  # noqa: SIM115 - lives as the process
    process = subprocess.Popen(
        [tool("storescp"), "-v", "--ignore", "-aet", DEST_AET, str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=TOOL_ENV,
    )
    wait_port(port)
    return process, port


def start_ours_dicom(
    workdir: Path, key: str = "ours", env: dict[str, str] | None = None
) -> DicomPeer:
    """Ours on the embedded default, or on the backends ``env`` names (PostgreSQL + S3)."""
    dest, dest_port = move_destination(workdir, key)
    dicom_port = free_port()
    peer = start_ours(
        workdir, env={**(env or {}), "DICOM_FS_DICOM_PORT": str(dicom_port)}, name=key
    )
    wait_port(dicom_port)
    for name, aet, port in (("bench-scu", SCU_AET, 104), ("bench-dest", DEST_AET, dest_port)):
        body = json.dumps(
            {
                "ae_title": aet,
                "host": "127.0.0.1",
                "port": port,
                "allow": ["echo", "store", "find", "move", "get"],
            }
        )
        conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=30)
        conn.request(
            "PUT", f"/modalities/{name}", body=body, headers={"Content-Type": "application/json"}
        )
        response = conn.getresponse()
        answer = response.read()
        if response.status not in (200, 201):
            raise RuntimeError(f"ours: PUT /modalities/{name}: {response.status} {answer!r}")
    return DicomPeer(key, peer, dicom_port, "DICOMFS", dest, workdir / f"storescp-{key}.log")


ORTHANC_SETTINGS = (
    "DicomServerEnabled",
    "DicomPort",
    "DicomModalities",
    "Plugins",
)


def start_orthanc_dicom(workdir: Path, tcp_nodelay: bool = False) -> DicomPeer:
    """Orthanc with its DICOM server on and the benchmark's two AEs as DicomModalities (the
    short form: every command allowed), otherwise as ``bench.start_orthanc`` runs it: its
    defaults, storage and index in a fresh directory, no plugins (none takes part in DIMSE;
    the GDCM plugin is not needed for Explicit VR Little Endian)."""
    dest, dest_port = move_destination(workdir, "orthanc")
    dicom_port = free_port()
    if tcp_nodelay:  # informative only (--orthanc-tcp-nodelay): not Orthanc as shipped
        os.environ["TCP_NODELAY"] = "1"
    try:
        peer = start_orthanc(
            workdir,
            Plugins=[],
            DicomServerEnabled=True,
            DicomAet="ORTHANC",
            DicomPort=dicom_port,
            DicomModalities={
                "bench-scu": [SCU_AET, "127.0.0.1", 104],
                "bench-dest": [DEST_AET, "127.0.0.1", dest_port],
            },
        )
    finally:
        os.environ.pop("TCP_NODELAY", None)
    wait_port(dicom_port)
    return DicomPeer("orthanc", peer, dicom_port, "ORTHANC", dest, workdir / "storescp-orthanc.log")


# ---------------------------------------------------------------------------- the measures


def run_tool(args: list[str], timeout: float = 600) -> tuple[float, str]:
    """(seconds, output) of one DCMTK tool run to its end; a failure stops the benchmark."""
    started = time.perf_counter()
    done = subprocess.run(
        [tool(args[0]), *args[1:]],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=TOOL_ENV,
    )
    elapsed = time.perf_counter() - started
    output = done.stdout + done.stderr
    if done.returncode != 0 or re.search(r"^[EF]: |Store Failed", output, re.MULTILINE):
        raise RuntimeError(f"{' '.join(args[:3])} ...: exit {done.returncode}\n{output[-2000:]}")
    return elapsed, output


def store(target: DicomPeer, files: list[Path], associations: int) -> float:
    """Instances/s of storescu sending ``files`` on ``associations`` associations at once
    (each its share of the files); timed from the first start to the last exit."""
    batches = [files[i::associations] for i in range(associations)]

    def send(batch: list[Path]) -> float:
        return run_tool(["storescu", *target.address(), *map(str, batch)])[0]

    started = time.perf_counter()
    with ThreadPoolExecutor(associations) as pool:
        list(pool.map(send, batches))
    return len(files) / (time.perf_counter() - started)


FIND_KEYS = [
    "-k", "QueryRetrieveLevel=STUDY",
    "-k", "StudyInstanceUID",
    "-k", "StudyDate",
    "-k", "StudyTime",
    "-k", "AccessionNumber",
    "-k", "StudyDescription",
    "-k", "PatientBirthDate",
    "-k", "PatientSex",
]  # fmt: skip


def find_query(matching: str, studies: int) -> list[str]:
    """Study Root STUDY-level keys: a wildcard PatientName matching every one of the
    ``studies``, or the unique PatientID of the middle one."""
    if matching == "wildcard":
        return [*FIND_KEYS, "-k", "PatientName=FIND^*", "-k", "PatientID"]
    return [*FIND_KEYS, "-k", "PatientName", "-k", f"PatientID=FINDID{studies // 2:04d}"]


def find_answers(target: DicomPeer, matching: str, studies: int) -> int:
    """How many answers the query gets (checked once per peer, outside the timing)."""
    query = find_query(matching, studies)
    _, output = run_tool(["findscu", "-v", "-S", *target.address(), *query])
    return len(re.findall(r"Find Response: \d+ \(Pending\)", output))


def find_ms(target: DicomPeer, matching: str, studies: int, queries: int) -> float:
    """Milliseconds per query: ``queries`` queries on one association (findscu --repeat),
    the association's set-up shared among them."""
    elapsed, _ = run_tool(
        ["findscu", "-S", "--repeat", str(queries), *target.address(),
         *find_query(matching, studies)]
    )  # fmt: skip
    return elapsed * 1000 / queries


def completed(output: str) -> int:
    """Completed sub-operations of getscu's final C-GET response (its -v output)."""
    found = re.findall(r"Number of Completed Suboperations\s*:\s*(\d+)", output)
    return int(found[-1]) if found else -1


def received(target: DicomPeer) -> int:
    """C-STORE requests the peer's C-MOVE destination has received so far (its -v log)."""
    return target.dest_log.read_text(errors="replace").count("Received Store Request")


def move(target: DicomPeer, study: str, expected: int) -> float:
    before = received(target)
    elapsed, output = run_tool(
        ["movescu", "-v", "-S", "-aem", DEST_AET, *target.address(),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    )  # fmt: skip
    time.sleep(0.2)  # the destination's last log line
    got = received(target) - before
    if got != expected or "Final Move Response (Success)" not in output:
        raise RuntimeError(f"{target.key}: C-MOVE delivered {got} of {expected}\n{output[:3000]}")
    return expected / elapsed


def get(target: DicomPeer, study: str, expected: int) -> float:
    elapsed, output = run_tool(
        ["getscu", "-v", "-S", "--ignore", *target.address(),
         "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]
    )  # fmt: skip
    got = completed(output)
    if got != expected or output.count("Received C-STORE Request") != expected:
        raise RuntimeError(f"{target.key}: C-GET completed {got} of {expected}\n{output[:3000]}")
    return expected / elapsed


def client_floor(workdir: Path, files: list[Path]) -> float:
    """storescu to a storescp that writes nothing: what the client and loopback can do."""
    process, port = move_destination(workdir, "floor")
    try:
        started = time.perf_counter()
        run_tool(["storescu", "-aet", SCU_AET, "-aec", DEST_AET, "127.0.0.1", str(port),
                  *map(str, files)])  # fmt: skip
        return len(files) / (time.perf_counter() - started)
    finally:
        process.terminate()
        process.wait(timeout=10)


# ---------------------------------------------------------------------------- the run


MEASURES: tuple[tuple[str, str, str, bool], ...] = (
    # key, label, unit, higher is better
    ("store_1", "C-STORE, 1 association", "instances/s", True),
    ("store_4", "C-STORE, 4 associations", "instances/s", True),
    ("find_all_ms", "C-FIND STUDY, PatientName wildcard", "ms/query", False),
    ("find_one_ms", "C-FIND STUDY, unique PatientID", "ms/query", False),
    ("move", "C-MOVE of a study to storescp", "instances/s", True),
    ("get", "C-GET of a study", "instances/s", True),
)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    n, find_n = args.instances, args.studies
    print("making the test files ...", flush=True)
    find_files = write_find_studies(workdir / "find", find_n)
    round_files = []
    for rnd in range(args.rounds):
        one = write_study(workdir / f"r{rnd}-one", n, f"STORE^ONE{rnd}", f"STORE1-{rnd}")
        four = write_study(workdir / f"r{rnd}-four", n, f"STORE^FOUR{rnd}", f"STORE4-{rnd}")
        round_files.append((one, four))
    floor = client_floor(workdir, round_files[0][0][1])
    print(f"client floor (storescu to storescp --ignore): {floor:,.0f} instances/s", flush=True)

    peers: list[DicomPeer] = []
    keys = ["ours", "orthanc"] + (["postgres+s3"] if args.remote else [])
    samples: dict[str, dict[str, list[float]]] = {key: {} for key in keys}
    checks: dict[str, dict[str, int]] = {key: {} for key in keys}
    cleanup: Callable[[], None] | None = None
    try:
        peers = [
            start_ours_dicom(workdir),
            start_orthanc_dicom(workdir, tcp_nodelay=args.orthanc_tcp_nodelay),
        ]
        if args.remote:
            postgres = f"postgresql://postgres@/test?host={POSTGRES_SOCKET}"
            env, cleanup = postgres_s3(workdir, postgres)
            peers.append(start_ours_dicom(workdir, "postgres+s3", env))

        def each(key: str, measure: Callable[..., float], *args: Any) -> None:
            for target in peers:
                samples[target.key].setdefault(key, []).append(measure(target, *args))

        print(f"storing {find_n} studies for C-FIND (not timed) ...", flush=True)
        for target in peers:
            store(target, find_files, 4)
            checks[target.key]["find_all"] = find_answers(target, "wildcard", find_n)
            checks[target.key]["find_one"] = find_answers(target, "unique", find_n)
            if checks[target.key] != {"find_all": find_n, "find_one": 1}:
                raise RuntimeError(f"{target.key}: C-FIND answers {checks[target.key]}")
        moved = round_files[0][0][0]  # the first round's one-association study
        for rnd in range(args.rounds):
            print(f"round {rnd + 1} of {args.rounds} ...", flush=True)
            (_, one), (_, four) = round_files[rnd]
            each("store_1", store, one, 1)
            each("store_4", store, four, 4)
            each("find_all_ms", find_ms, "wildcard", find_n, args.find_all)
            each("find_one_ms", find_ms, "unique", find_n, args.find_one)
            each("move", move, moved, n)
            each("get", get, moved, n)
        for target in peers:
            checks[target.key]["rss_mb"] = int(max(target.peer.peak_rss_mb().values(), default=0))
    finally:
        for target in peers:
            target.stop()
        if cleanup is not None:
            cleanup()
    return {
        "instances": n,
        "studies": find_n,
        "rounds": args.rounds,
        "find_all_queries": args.find_all,
        "find_one_queries": args.find_one,
        "client_floor_store_1": floor,
        "orthanc_tcp_nodelay": args.orthanc_tcp_nodelay,
        "checks": checks,
        "samples": samples,
        "machine": machine(),
    }


def report(results: dict[str, Any]) -> str:
    m = {
        peer: {k: statistics.median(v) for k, v in got.items()}
        for peer, got in results["samples"].items()
    }
    remote = m.get("postgres+s3")
    n, studies = results["instances"], results["studies"]
    rows = [
        "| measure | ours | ours, PostgreSQL + S3 | Orthanc | ratio | target | |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {
        "store_1": f"C-STORE {n} instances, 1 association",
        "store_4": f"C-STORE {n} instances, 4 associations × {n // 4}",
        "find_all_ms": f"C-FIND STUDY, PatientName wildcard ({studies} answers)",
        "find_one_ms": f"C-FIND STUDY, unique PatientID (1 of {studies})",
        "move": f"C-MOVE {n}-instance study to storescp",
        "get": f"C-GET {n}-instance study",
    }

    def speed(a: float, b: float, higher: bool) -> float:
        """a's speed over b's: a rate's ratio, or a time's inverse ratio."""
        return a / b if higher else b / a

    def cell(value: float | None, unit: str, higher: bool) -> str:
        if value is None:
            return "—"
        return f"{value:,.0f} {unit}" if higher else f"{value:,.2f} {unit} ({1000 / value:,.1f}/s)"

    for key, _, unit, higher in MEASURES:
        ours, theirs = m["ours"][key], m["orthanc"][key]
        ratio = speed(ours, theirs, higher)
        on_remote = remote[key] if remote is not None else None
        cells = " | ".join(cell(v, unit, higher) for v in (ours, on_remote, theirs))
        verdict = "MET" if ratio >= 1.0 else "MISS"
        rows.append(f"| {labels[key]} | {cells} | {ratio:.2f}× | ≥ 1.0× Orthanc | {verdict} |")
    if remote is not None:
        rows += ["", "| PostgreSQL + S3 against embedded | ratio | target | |", "|---|---|---|---|"]
        for key, _, _, higher in MEASURES:
            ratio = speed(remote[key], m["ours"][key], higher)
            verdict = "MET" if ratio >= 0.7 else "MISS"
            rows.append(f"| {labels[key]} | {ratio:.2f}× | ≥ 0.7× | {verdict} |")
    mc = results["machine"]
    rss = {k: v.get("rss_mb") for k, v in results["checks"].items()}
    rows += [
        "",
        f"{mc['date']}, {mc['cpus']} CPUs ({mc['cpu']}), Python {mc['python']}, "
        f"pydicom {mc['pydicom']}, {mc['orthanc']}, commit {mc['commit']}; medians of "
        f"{results['rounds']} interleaved rounds; C-FIND: {results['find_all_queries']} "
        f"wildcard and {results['find_one_queries']} unique queries per round; ratio: "
        f"ours/Orthanc in speed. Client floor (storescu to storescp --ignore, 1 association): "
        f"{results['client_floor_store_1']:,.0f} instances/s. Peak RSS of the largest "
        f"process: ours {rss['ours']} MB"
        + (f", on PostgreSQL + S3 {rss['postgres+s3']} MB" if "postgres+s3" in rss else "")
        + f", Orthanc {rss['orthanc']} MB."
        + (
            " Orthanc ran with TCP_NODELAY=1 in its environment (not as shipped)."
            if results["orthanc_tcp_nodelay"]
            else ""
        ),
    ]
    return "\n".join(rows)


def in_netns() -> None:
    """Start this script again in a network namespace of its own with loopback up."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        sys.exit("needs root and unshare for a private network namespace (or --no-netns)")
    script = " ".join(map(shlex_quote, [sys.executable, *sys.argv]))
    env = {**os.environ, NETNS_FLAG: "1"}
    done = subprocess.run(
        ["unshare", "-n", "sh", "-c", f"ip link set lo up && exec {script}"], env=env, check=False
    )
    sys.exit(done.returncode)


def shlex_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instances", type=int, default=500, help="per C-STORE and study")
    parser.add_argument("--studies", type=int, default=1000, help="for C-FIND")
    parser.add_argument("--find-all", type=int, default=10, help="wildcard queries per round")
    parser.add_argument("--find-one", type=int, default=200, help="unique queries per round")
    parser.add_argument("--no-netns", action="store_true", help="run in this namespace")
    parser.add_argument(
        "--no-remote",
        dest="remote",
        action="store_false",
        help="without the third peer: ours on PostgreSQL (its Unix socket) + SeaweedFS",
    )
    parser.add_argument(
        "--orthanc-tcp-nodelay",
        action="store_true",
        help="informative: Orthanc with TCP_NODELAY=1 in its environment (DCMTK's switch); "
        "written to dimse-orthanc-nodelay.{json,md}",
    )
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.instances, args.studies, args.find_all, args.find_one = 1, 100, 200, 3, 30
    missing = [t for t in (ORTHANC, *map(tool, TOOLS)) if not Path(t).exists()]
    if args.remote and not (POSTGRES_SOCKET / ".s.PGSQL.5432").exists():
        sys.exit(f"no PostgreSQL socket in {POSTGRES_SOCKET}: start it, or --no-remote")
    if missing:
        sys.exit(f"missing {', '.join(missing)}: apt-get install orthanc dcmtk")
    if not args.no_netns and os.environ.get(NETNS_FLAG) != "1":
        in_netns()
    with tempfile.TemporaryDirectory(prefix="dimse-bench-", dir=ROOT / "bench") as tmp:
        results = run(args, Path(tmp))
    name = "dimse-orthanc-nodelay" if args.orthanc_tcp_nodelay else "dimse-latest"
    publish(name, results, report(results))


if __name__ == "__main__":
    main()
