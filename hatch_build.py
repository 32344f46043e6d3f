"""Compiles the header scanner (``src/dicom_file_service/dicom/_header_scan.c``) when the
package is built or installed (``uv sync`` included).

The scanner is CPython extension code with no dependency but Python's own headers, built in
place beside its source so that an editable install and a wheel find it alike. Without a C
compiler the package still installs, and every upload is read through pydicom (correct,
slower); ``tests/unit/dicom/test_header_scan.py`` fails when the scanner is missing, so a
machine that runs the tests always has it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

SOURCE = Path("src/dicom_file_service/dicom/_header_scan.c")


class HeaderScanBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        source = root / SOURCE
        target = source.with_name("_header_scan" + sysconfig.get_config_var("EXT_SUFFIX"))
        compiler = shlex.split(sysconfig.get_config_var("CC") or "cc")
        if shutil.which(compiler[0]) is None:
            print(
                f"warning: no C compiler ({compiler[0]}): the header scanner is not built; "
                "uploads are read through pydicom alone",
                file=sys.stderr,
            )
            return
        include = sysconfig.get_paths()["include"]
        subprocess.run(
            [*compiler, "-O2", "-shared", "-fPIC", f"-I{include}", str(source), "-o", str(target)],
            check=True,
        )
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        build_data["artifacts"].append(str(target.relative_to(root)))
