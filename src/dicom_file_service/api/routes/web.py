"""The browser's ways in: the built-in page at ``/`` and the OHIF viewer under ``/ohif/``.

The built-in page is three static files shipped in the package (``api/web/``), no build step;
everything it shows comes from the public routes (the file API, QIDO-RS, the renderings,
WADO-RS's ZIP of a study or series), plus the data dictionary it names attributes with. Its
URLs are all relative to the page at ``/``, so it works under a reverse proxy's path prefix
unchanged. OHIF's build is installed by a command
(``dicom-file-service ohif install``) into a directory of the service's; until it is there,
``/ohif/`` says how to install it.
"""

from __future__ import annotations

import functools
import html
import mimetypes
from pathlib import Path

import orjson
import pydicom
from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydicom.datadict import dictionary_description, keyword_dict

from dicom_file_service.api import urls
from dicom_file_service.api.conditional import not_modified
from dicom_file_service.api.deps import service_context
from dicom_file_service.api.negotiation import PNG
from dicom_file_service.api.responses import IMMUTABLE, REVALIDATE
from dicom_file_service.errors import BadRequest
from dicom_file_service.service import ohif, renditions

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
_PAGE_FILES = {"app.js": "text/javascript", "app.css": "text/css"}
_REVALIDATE = {"cache-control": REVALIDATE}
_IMMUTABLE = {"cache-control": IMMUTABLE}

router = APIRouter(include_in_schema=False)


@router.get("/")
async def page() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html", headers=_REVALIDATE)


@router.get("/ui/dictionary.json")
async def dictionary(request: Request) -> Response:
    """Keyword and name of every attribute of the standard's data dictionary, by tag: the
    header tree names attributes with it (DICOM JSON carries tags only)."""
    etag = f'"pydicom-{pydicom.__version__}"'
    if not_modified(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers={"etag": etag, **_REVALIDATE})
    return Response(
        _dictionary_json(),
        media_type="application/json",
        headers={"etag": etag, **_REVALIDATE},
    )


@functools.cache
@router.get("/ui/network.json")
async def network(request: Request) -> Response:
    """The DICOM door's AE title and ports, for the page to tell how a modality is pointed
    at the archive (its host is the one the page was loaded from)."""
    settings = service_context(request).settings
    tls = settings.dicom_tls_cert is not None and settings.dicom_tls_key is not None
    body = {
        "ae_title": settings.ae_title,
        "port": settings.dicom_port or None,
        "tls_port": (settings.dicom_tls_port or None) if tls else None,
    }
    return Response(orjson.dumps(body), media_type="application/json", headers=_REVALIDATE)


def _dictionary_json() -> bytes:
    by_tag = {tag: keyword for keyword, tag in keyword_dict.items()}
    return orjson.dumps(
        {f"{tag:08X}": [by_tag[tag], dictionary_description(tag)] for tag in sorted(by_tag)}
    )


_NO_IMAGE = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 128 128">'
    b'<rect width="128" height="128" fill="#222"/><path d="M36 44h56v40H36zM36 84l56-40" '
    b'fill="none" stroke="#888" stroke-width="4"/></svg>'
)


@router.get("/ui/thumbnails/study/{study}")
async def study_thumbnail(request: Request, study: str) -> Response:
    """The page's thumbnail of a study: its representative image (as WADO-RS's), or a
    placeholder where the study has no image that renders, so that a list of studies never
    shows a broken image (nor logs a failed request in the browser's console)."""
    ctx = service_context(request)
    options = renditions.thumbnail_options(ctx.settings)
    try:
        rendition = await ctx.run_cpu(
            lambda: renditions.representative(ctx, study, None, options, PNG, 90)
        )
    except BadRequest:
        return _placeholder(request)
    return Response(rendition.data, media_type=PNG, headers=_REVALIDATE)


@router.get("/ui/thumbnails/file/{file_id}")
async def file_thumbnail(request: Request, file_id: str) -> Response:
    """The page's thumbnail of a file: its thumbnail (the size is a setting), or a placeholder
    where it has no image that renders (no pixel data, an undecodable one)."""
    ctx = service_context(request)
    options = renditions.thumbnail_options(ctx.settings)
    try:
        rendition = await ctx.run_cpu(
            lambda: renditions.render_file(ctx, file_id, options, PNG, 90)
        )
    except BadRequest:
        return _placeholder(request)
    return Response(rendition.data, media_type=PNG, headers=_IMMUTABLE)


def _placeholder(request: Request) -> Response:
    size = service_context(request).settings.thumbnail_size  # the thumbnails' size
    return Response(_NO_IMAGE % (size, size), media_type="image/svg+xml", headers=_REVALIDATE)


@router.get("/ui/{name}")
async def page_file(name: str) -> Response:
    media_type = _PAGE_FILES.get(name)
    if media_type is None:
        raise HTTPException(status_code=404)  # the problem document of any unknown route
    return FileResponse(WEB_DIR / name, media_type=media_type, headers=_REVALIDATE)


@router.get("/ohif")
async def ohif_root() -> RedirectResponse:
    return RedirectResponse(urls.rooted(urls.OHIF_MOUNT), status_code=308)


@router.get("/ohif/app-config.js")
async def ohif_config() -> Response:
    config = ohif.ohif_config_js(urls.rooted(urls.DICOMWEB), urls.rooted(urls.OHIF_MOUNT))
    return Response(config, media_type="text/javascript", headers=_REVALIDATE)


@router.get("/ohif/{path:path}")
async def ohif_file(request: Request, path: str) -> Response:
    """A file of the build, or its page for any other path (the viewer routes in the
    browser: ``/ohif/viewer?StudyInstanceUIDs=...`` is the page too)."""
    root = service_context(request).settings.resolved_ohif_dir().resolve()
    if ohif.installed_version(root) is None:
        return HTMLResponse(_not_installed_page(root), status_code=404, headers=_REVALIDATE)
    if path:
        candidate = (root / path).resolve()
        if candidate.is_relative_to(root) and candidate.is_file():
            # FileResponse guesses every type but WebAssembly's, which browsers insist on.
            media_type = "application/wasm" if candidate.suffix == ".wasm" else None
            hashed = ".bundle." in candidate.name or candidate.suffix in (".wasm", ".woff2")
            return await _build_file(candidate, media_type, _IMMUTABLE if hashed else _REVALIDATE)
    return await _build_file(root / "index.html", "text/html", _REVALIDATE)


async def _build_file(path: Path, media_type: str | None, headers: dict[str, str]) -> Response:
    """A file of OHIF's build; under a reverse proxy's path prefix, with its own names
    moved under it (``ohif.served_under``)."""
    prefix = urls.rooted("")
    moved = await run_in_threadpool(ohif.served_under, path, urls.OHIF_MOUNT, prefix)
    if moved is None:
        return FileResponse(path, media_type=media_type, headers=headers)
    guessed = media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(moved, media_type=guessed, headers=headers)


def _not_installed_page(root: Path) -> str:
    """Served at any depth under ``/ohif/``, so its links are rooted (under a proxy's prefix
    too) rather than relative, as the built-in page's are."""
    where = html.escape(str(root))
    home = html.escape(urls.rooted("/"))
    css = html.escape(urls.rooted("/ui/app.css"))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>OHIF viewer not installed</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><link rel="stylesheet" href="{css}"></head>
<body><main>
<h1>The OHIF viewer is not installed</h1>
<p>This service serves the OHIF viewer under <code>/ohif/</code> once its build is installed.
On the machine running the service (Node.js and npm needed), run:</p>
<pre><code>dicom-file-service ohif install</code></pre>
<p>It fetches <code>@ohif/app@{ohif.OHIF_VERSION}</code> with npm into <code>{where}</code>;
reload this page when it is done, no restart needed.</p>
<p><a href="{home}">Back to the studies</a></p>
</main></body></html>
"""
