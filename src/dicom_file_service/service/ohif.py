"""The OHIF viewer's published build, installed beside the service and served under ``/ohif/``.

The npm package ``@ohif/app`` carries a production build (``dist/``) made to be served at a
site's root: its page and its webpack runtime name every asset from ``/``. Installing it puts
the build in a directory of ours and points those names at ``/ohif/`` instead, so the same
files serve under our prefix; the viewer's configuration (``app-config.js``) is not taken
from the package but made by the service for its own DICOMweb (``ohif_config_js``). Nothing
of the build is committed: one command fetches it with npm.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from dicom_file_service.errors import OhifInstallFailed

OHIF_VERSION = "3.13.2"
"""The version of ``@ohif/app`` installed unless told otherwise: the one the browser tests ran."""

VERSION_FILE = ".ohif-version"
_RUNTIME_PUBLIC_PATH = '__webpack_require__.p = "/";'


def installed_version(directory: Path) -> str | None:
    """The version installed in ``directory``, or None when no complete install is there."""
    try:
        return (directory / VERSION_FILE).read_text().strip() or None
    except OSError:
        return None


def install(directory: Path, mount: str, version: str = OHIF_VERSION, npm: str = "npm") -> Path:
    """Fetch ``@ohif/app@version`` with npm and install its build into ``directory``, to be
    served under the URL path ``mount``.

    The new build is prepared beside the old one and swapped in by renames, so a running
    service serves either the old build or the new one, never half of one.
    """
    directory = directory.resolve()
    directory.parent.mkdir(parents=True, exist_ok=True)
    if shutil.which(npm) is None:
        raise OhifInstallFailed(f"npm ({npm}) is not installed: it fetches the OHIF viewer")
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".ohif-") as work:
        tarball = _pack(npm, version, Path(work))
        staged = Path(work) / "dist"
        _extract_dist(tarball, staged)
        prepare_build(staged, mount)
        (staged / VERSION_FILE).write_text(version + "\n")
        old = Path(work) / "old"
        if directory.exists():
            directory.rename(old)
        staged.rename(directory)
    return directory


def _pack(npm: str, version: str, work: Path) -> Path:
    try:
        done = subprocess.run(
            [npm, "pack", f"@ohif/app@{version}", "--json", "--pack-destination", str(work)],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OhifInstallFailed(f"npm pack @ohif/app@{version} failed: {exc}") from exc
    if done.returncode != 0:
        raise OhifInstallFailed(
            f"npm pack @ohif/app@{version} failed ({done.returncode}): {done.stderr.strip()[-600:]}"
        )
    try:
        name = json.loads(done.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError) as exc:
        raise OhifInstallFailed(f"npm pack answered what it packed unclearly: {exc}") from exc
    return work / str(name).replace("@", "").replace("/", "-")


def _extract_dist(tarball: Path, target: Path) -> None:
    """Only ``package/dist/`` of the tarball, as plain files under ``target``."""
    target.mkdir()
    prefix = "package/dist/"
    try:
        with tarfile.open(tarball) as archive:
            members = []
            for member in archive.getmembers():
                if member.name.startswith(prefix) and (member.isfile() or member.isdir()):
                    member.name = member.name[len(prefix) :]
                    if member.name:
                        members.append(member)
            if not any(m.name == "index.html" for m in members):
                raise OhifInstallFailed(f"{tarball.name} has no {prefix}index.html")
            archive.extractall(target, members=members, filter="data")
    except (OSError, tarfile.TarError) as exc:
        raise OhifInstallFailed(f"{tarball.name} cannot be unpacked: {exc}") from exc


def prepare_build(dist: Path, mount: str) -> None:
    """Point a root-served build at ``mount``: its page's asset references, its runtime's
    public path (from which it loads its chunks, workers and codecs) and its manifest."""
    index = dist / "index.html"
    page = index.read_text(encoding="utf-8")
    if 'window.PUBLIC_URL="/"' not in page:
        raise OhifInstallFailed("the build's index.html does not set window.PUBLIC_URL as expected")
    page = page.replace('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{mount}"')
    page = page.replace('href="/', f'href="{mount}').replace('src="/', f'src="{mount}')
    index.write_text(page, encoding="utf-8")
    rewritten = 0
    for script in dist.glob("*.js"):
        code = script.read_text(encoding="utf-8", errors="surrogateescape")
        if _RUNTIME_PUBLIC_PATH in code:
            script.write_text(
                code.replace(_RUNTIME_PUBLIC_PATH, f'__webpack_require__.p = "{mount}";'),
                encoding="utf-8",
                errors="surrogateescape",
            )
            rewritten += 1
    if not rewritten:
        raise OhifInstallFailed("no script of the build sets webpack's public path as expected")
    for sheet in dist.glob("*.css"):  # fonts and images named from the root
        css = sheet.read_text(encoding="utf-8", errors="surrogateescape")
        sheet.write_text(
            re.sub(r"url\((['\"]?)/(?!/)", rf"url(\1{mount}", css),
            encoding="utf-8",
            errors="surrogateescape",
        )
    manifest = dist / "manifest.json"
    if manifest.exists():
        text = manifest.read_text(encoding="utf-8")
        manifest.write_text(
            text.replace('"/assets/', f'"{mount}assets/').replace(
                '"start_url": "/"', f'"start_url": "{mount}"'
            ),
            encoding="utf-8",
        )
    (dist / "app-config.js").unlink(missing_ok=True)  # the service answers its own


def served_under(file: Path, mount: str, prefix: str) -> bytes | None:
    """A file of an installed build as served under a path prefix (``/pacs``: a reverse
    proxy's), or None where it is served as it is.

    The build names its own files from ``mount`` (``prepare_build``): its page, its
    stylesheets, its manifest and its runtime's public path. Under a prefix each of those
    names gains it, or the browser would ask outside the prefix. Made once per file and prefix
    in each process (one is the 17 MB application bundle)."""
    stat = file.stat()
    return _rewritten(str(file), stat.st_mtime_ns, stat.st_size, mount, prefix)


@functools.lru_cache(maxsize=64)
def _rewritten(path: str, _mtime_ns: int, _size: int, mount: str, prefix: str) -> bytes | None:
    if not prefix or Path(path).suffix not in (".html", ".js", ".css", ".json"):
        return None
    data = Path(path).read_bytes()
    named = re.compile(rb"""(["'(])""" + re.escape(mount.encode()))
    moved = (prefix + mount).encode()
    rewritten = named.sub(lambda m: m.group(1) + moved, data)
    return rewritten if rewritten != data else None


def ohif_config_js(dicomweb_root: str, mount: str) -> str:
    """The viewer's ``app-config.js`` for this service's DICOMweb.

    Roots are paths on the page's own origin, so the one build works behind any host name,
    port or proxy that keeps the paths. Only what our DICOMweb supports is switched on: QIDO
    with ``includefield``, wildcard matching (not fuzzy), WADO-RS frames and metadata,
    rendered thumbnails, STOW-RS uploads, and DELETE.
    """
    roots = json.dumps(dicomweb_root)
    config = {
        "routerBasename": mount.rstrip("/") or "/",
        "showStudyList": True,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "defaultDataSourceName": "dicomweb",
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": "dicomweb",
                "configuration": {
                    "friendlyName": "dicom-file-service",
                    "name": "dicom-file-service",
                    "wadoUriRoot": "@ROOT@",
                    "qidoRoot": "@ROOT@",
                    "wadoRoot": "@ROOT@",
                    "qidoSupportsIncludeField": True,
                    "supportsReject": False,
                    "supportsStow": True,
                    "dicomUploadEnabled": True,
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,
                    "supportsWildcard": True,
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True},
                },
            }
        ],
    }
    body = json.dumps(config, indent=2).replace('"@ROOT@"', "root")
    return (
        "// Made by dicom-file-service for its own DICOMweb; the package's app-config.js is "
        "not used.\n"
        f"(function () {{\n  const root = window.location.origin + {roots};\n"
        f"  window.config = {body};\n}})();\n"
    )
