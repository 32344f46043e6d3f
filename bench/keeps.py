"""What each archive keeps and renders of the same files, side by side with Orthanc.

    uv run python bench/keeps.py [DIR ...]

Uploads every file under the given directories (default: pydicom's and pydicom-data's test
files) to ours (``serve`` at its defaults, embedded) and to Orthanc (with its GDCM plugin),
each on a fresh store, the same bytes the same way (ours: ``POST /dicom-image`` raw; Orthanc:
``POST /instances``). For every file kept it downloads it back (byte-identical?) and asks for
a rendering (ours: ``/dicom-image/{id}/png``; Orthanc: ``/instances/{id}/preview``). Each file
is deleted from both after its checks, so that twins with one SOP Instance UID are each
judged alone. Prints counts and the files on which the two disagree, as Markdown.

This is a conformance comparison, not a timing: it needs no rounds.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import tempfile
from pathlib import Path

import pydicom

import bench as b  # bench/bench.py: the peers, as the benchmark starts them


def _files(dirs: list[Path]) -> list[Path]:
    found = [p for d in dirs for p in sorted(d.rglob("*")) if p.is_file()]
    return [p for p in found if p.stat().st_size < 200_000_000]


def _request(
    conn: http.client.HTTPConnection, method: str, path: str, body: bytes | None = None
) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/dicom"} if body is not None else {}
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    return response.status, response.read()


NO_ANSWER = 599  # the connection closed without an answer (the server crashed)


def judge(peer: b.Peer, kind: str, data: bytes) -> dict[str, object]:
    """Upload, download, render, delete on one peer: what happened, as plain values; a
    request left unanswered counts as ``NO_ANSWER``."""
    try:
        return _judge(peer, kind, data)
    except (OSError, http.client.HTTPException) as exc:
        return {"upload": NO_ANSWER, "kept": False, "why": f"no answer: {exc}"}


def _judge(peer: b.Peer, kind: str, data: bytes) -> dict[str, object]:
    conn = http.client.HTTPConnection("127.0.0.1", peer.port, timeout=120)
    upload = "/dicom-image" if kind == "ours" else "/instances"
    status, answer = _request(conn, "POST", upload, data)
    out: dict[str, object] = {"upload": status, "kept": status in (200, 201)}
    if not out["kept"]:
        out["why"] = answer[:200].decode("utf-8", "replace")
        return out
    found = json.loads(answer)
    ident = str(found["file_id"] if kind == "ours" else found["ID"])
    download = f"/dicom-image/{ident}" if kind == "ours" else f"/instances/{ident}/file"
    status, stored = _request(conn, "GET", download)
    out["identical"] = status == 200 and stored == data
    status, _ = _request(conn, "GET", peer.png_path(ident))
    out["render"] = status
    delete = f"/dicom-image/{ident}" if kind == "ours" else f"/instances/{ident}"
    _request(conn, "DELETE", delete)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dirs", nargs="*", type=Path)
    args = parser.parse_args()
    if not args.dirs:
        import data_store

        args.dirs = [
            Path(pydicom.__file__).parent / "data" / "test_files",
            Path(data_store.__file__).parent / "data",
        ]
    files = _files(args.dirs)
    with tempfile.TemporaryDirectory(prefix="keeps-") as tmp:
        workdir = Path(tmp)
        peers = {"ours": _ours(workdir, 0), "orthanc": _orthanc(workdir, 0)}
        rows = []
        try:
            for path in files:
                data = path.read_bytes()
                outcome = []
                for kind in ("ours", "orthanc"):
                    outcome.append(judge(peers[kind], kind, data))
                    if peers[kind].process.poll() is not None:  # it crashed: start it again
                        print(f"{kind} exited on {path.name}", file=sys.stderr)
                        outcome[-1]["crashed"] = NO_ANSWER
                        start = _ours if kind == "ours" else _orthanc
                        peers[kind] = start(workdir, len(rows) + 1)
                rows.append((path, outcome[0], outcome[1]))
        finally:
            for peer in peers.values():
                peer.stop()
    _report(rows)


def _ours(workdir: Path, n: int) -> b.Peer:
    where = workdir / f"ours-{n}"
    where.mkdir(parents=True)
    return b.start_ours(where)


def _orthanc(workdir: Path, n: int) -> b.Peer:
    where = workdir / f"orthanc-{n}"
    where.mkdir(parents=True)
    return b.start_orthanc(where)


def _report(rows: list[tuple[Path, dict[str, object], dict[str, object]]]) -> None:
    def count(side: int, test: str) -> int:
        return sum(1 for row in rows if _passes(row[side], test))

    print(f"{len(rows)} files\n")
    print("| | ours | Orthanc |\n|---|---|---|")
    print(f"| kept | {count(1, 'kept')} | {count(2, 'kept')} |")
    print(f"| kept byte-identical | {count(1, 'identical')} | {count(2, 'identical')} |")
    print(f"| rendered | {count(1, 'render')} | {count(2, 'render')} |")
    print(f"| 5xx answers | {count(1, '5xx')} | {count(2, '5xx')} |")
    print("\nWhere they differ:\n")
    for path, mine, theirs in rows:
        for test in ("kept", "render"):
            if _passes(mine, test) != _passes(theirs, test):
                who = "ours only" if _passes(mine, test) else "Orthanc only"
                why = mine.get("why") or mine.get("render") if who == "Orthanc only" else ""
                print(f"- {path.name}: {test} by {who} {why or ''}".rstrip())


def _passes(outcome: dict[str, object], test: str) -> bool:
    if test == "5xx":
        return any(isinstance(v, int) and v >= 500 for v in outcome.values())
    if test == "render":
        return outcome.get("render") == 200
    return bool(outcome.get(test))


if __name__ == "__main__":
    sys.exit(main())
