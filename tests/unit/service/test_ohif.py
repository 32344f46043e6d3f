"""Installing OHIF's build: fetched with npm (here a stand-in npm on PATH that packs a small
build shaped like the real one), only its dist/ kept, re-pointed at /ohif/, swapped in whole."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from pathlib import Path

import pytest

from dicom_file_service.errors import OhifInstallFailed
from dicom_file_service.service import ohif

INDEX = (
    '<!doctype html><html><head><script>window.PUBLIC_URL="/"</script>'
    '<link rel="manifest" href="/manifest.json"><script src="/app-config.js"></script>'
    '<script defer src="/app.bundle.abc.js"></script><link href="/app.bundle.css" rel="stylesheet">'
    "</head><body></body></html>"
)
BUNDLE = '(() => {\n__webpack_require__.p = "/";\n})();\nconsole.log("app");\n'
CSS = "@font-face{src:url(/a1.woff2)}.x{background:url('/assets/x.png')}.y{background:url(//cdn/y)}"
MANIFEST = '{"start_url": "/", "icons": [{"src": "/assets/icon.png"}]}'


def tarball(path: Path, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def fake_npm(tmp_path: Path, files: dict[str, str] | None, exit_code: int = 0) -> str:
    """An npm whose ``pack`` writes a tarball of ``files`` where it is told to."""
    source = tmp_path / "ohif-app-1.2.3.tgz"
    if files is not None:
        tarball(source, files)
    npm = tmp_path / "npm"
    npm.write_text(
        "#!/bin/sh\n"
        f"if [ {exit_code} -ne 0 ]; then echo 'npm error 404 not found' >&2; exit {exit_code}; fi\n"
        'while [ "$#" -gt 0 ]; do [ "$1" = --pack-destination ] && dest="$2"; shift; done\n'
        f'cp "{source}" "$dest/"\n'
        f"echo '{json.dumps([{'filename': 'ohif-app-1.2.3.tgz'}])}'\n"
    )
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    return str(npm)


BUILD = {
    "package/package.json": "{}",
    "package/dist/index.html": INDEX,
    "package/dist/app.bundle.abc.js": BUNDLE,
    "package/dist/app.bundle.css": CSS,
    "package/dist/manifest.json": MANIFEST,
    "package/dist/app-config.js": "window.config = {dataSources: ['theirs']};",
    "package/dist/sub/worker.js": "self.x = 1;",
}


def test_install_keeps_dist_and_points_it_at_ohif(tmp_path: Path) -> None:
    target = tmp_path / "data" / "ohif"
    ohif.install(target, "/ohif/", "1.2.3", npm=fake_npm(tmp_path, BUILD))
    assert ohif.installed_version(target) == "1.2.3"
    assert not (target / "package.json").exists()
    assert (target / "sub" / "worker.js").read_text() == "self.x = 1;"
    page = (target / "index.html").read_text()
    assert 'window.PUBLIC_URL="/ohif/"' in page
    assert 'src="/ohif/app.bundle.abc.js"' in page and 'href="/ohif/manifest.json"' in page
    assert '="/' not in page.replace('="/ohif/', "")
    assert '__webpack_require__.p = "/ohif/";' in (target / "app.bundle.abc.js").read_text()
    css = (target / "app.bundle.css").read_text()
    assert "url(/ohif/a1.woff2)" in css and "url('/ohif/assets/x.png')" in css
    assert "url(//cdn/y)" in css  # another host's address is left alone
    manifest = json.loads((target / "manifest.json").read_text())
    assert manifest == {"start_url": "/ohif/", "icons": [{"src": "/ohif/assets/icon.png"}]}
    assert not (target / "app-config.js").exists()  # the service answers its own


def test_a_new_install_replaces_the_old_one_whole(tmp_path: Path) -> None:
    target = tmp_path / "ohif"
    target.mkdir()
    (target / "stale.js").write_text("old")
    ohif.install(target, "/ohif/", "1.2.3", npm=fake_npm(tmp_path, BUILD))
    assert not (target / "stale.js").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ohif-")] == []


@pytest.mark.parametrize(
    ("files", "exit_code", "message"),
    [
        (None, 1, "npm error 404 not found"),
        ({"package/README.md": "no build"}, 0, "has no package/dist/index.html"),
        (
            {**BUILD, "package/dist/index.html": "<html>no public url</html>"},
            0,
            "does not set window.PUBLIC_URL",
        ),
        (
            {**BUILD, "package/dist/app.bundle.abc.js": "no runtime here"},
            0,
            "webpack's public path",
        ),
    ],
)
def test_a_failed_install_says_why_and_leaves_the_old_build(
    tmp_path: Path, files: dict[str, str] | None, exit_code: int, message: str
) -> None:
    target = tmp_path / "ohif"
    target.mkdir()
    (target / ohif.VERSION_FILE).write_text("0.9\n")
    with pytest.raises(OhifInstallFailed, match=message):
        ohif.install(target, "/ohif/", "1.2.3", npm=fake_npm(tmp_path, files, exit_code))
    assert ohif.installed_version(target) == "0.9"


def test_no_npm_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(OhifInstallFailed, match=r"npm .* is not installed"):
        ohif.install(tmp_path / "ohif", "/ohif/", npm=os.fspath(tmp_path / "no-such-npm"))


def test_the_config_points_the_viewer_at_our_dicomweb() -> None:
    js = ohif.ohif_config_js("/dicomweb", "/ohif/")
    assert 'const root = window.location.origin + "/dicomweb";' in js
    body = js.split("window.config = ", 1)[1].rsplit(";\n})();", 1)[0]
    config = json.loads(body.replace("root", '"ROOT"'))
    assert config["routerBasename"] == "/ohif"
    source = config["dataSources"][0]
    assert source["sourceName"] == config["defaultDataSourceName"]
    assert {source["configuration"][k] for k in ("qidoRoot", "wadoRoot", "wadoUriRoot")} == {"ROOT"}
    assert source["configuration"]["qidoSupportsIncludeField"] is True
