"""Coverage-guided fuzzing of the parser (atheris), bounded: a fixed number of runs from a
fixed seed, its corpus seeded from the test files. A run that ends on anything but the
service's own errors fails here, with the input that did it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.datafiles import data_file

SEEDS = (
    "CT_small.dcm",
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "JPEG2000.dcm",
    "rtplan.dcm",
    "image_dfl.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
)


def test_the_parser_survives_coverage_guided_fuzzing(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for name in SEEDS:
        shutil.copy(data_file(name), corpus / name)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.parse_target",
            str(corpus),
            "-runs=10000",
            "-seed=1",
            "-max_len=65536",
            "-rss_limit_mb=2048",
            "-timeout=20",  # an input that takes this long is a finding (a request that hangs)
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=Path(__file__).parents[3],
    )
    crashes = [p.name for p in tmp_path.glob("crash-*")]
    assert done.returncode == 0 and not crashes, (crashes, done.stderr[-3000:])
