"""Render a stored file to PNG, through a cache in the blob store.

Renderings are keyed by file and parameters (``renderings/<shard>/<file_id>/<key>.png``) and
deleted with the file. Stored files never change (an overwrite gets a new file id), so a cached
rendering never goes stale.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dicom_file_service.dicom.render import RenderOptions, render_png
from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.files import not_found


@dataclass(frozen=True)
class Rendering:
    etag: str
    path: Path | None  # a cached file on this machine, served without reading it into memory
    data: bytes | None


def rendering_etag(file_id: str, options: RenderOptions) -> str:
    """A file id's content never changes, so id + parameters identify the rendering's bytes."""
    return f'"{file_id}-{options.cache_key()}"'


def cached_rendering(ctx: ServiceContext, file_id: str, options: RenderOptions) -> Path | None:
    """The cached PNG's local path if present (the fast path: no index read at all)."""
    if not ids.is_valid_file_id(file_id):
        return None
    path = ctx.store.local_path(ids.rendering_key(file_id, options.cache_key()))
    return path if path is not None and path.is_file() else None


def render_blocking(ctx: ServiceContext, file_id: str, options: RenderOptions) -> Rendering:
    """Return the cached rendering or make, cache and return it (blocking; run in the pool)."""
    blob_key = ctx.headers.blob_key(file_id) if ids.is_valid_file_id(file_id) else None
    if blob_key is None:
        raise not_found(file_id)
    etag = rendering_etag(file_id, options)
    key = ids.rendering_key(file_id, options.cache_key())
    local = ctx.store.local_path(key)
    if local is not None and local.is_file():
        return Rendering(etag=etag, path=local, data=None)
    png = _render_from_store(ctx, blob_key, options)
    ctx.store.put_bytes(key, png, durable=False)  # a cache: it can be rendered again
    if ctx.headers.blob_key(file_id) is None:
        # Deleted while rendering: its renderings went before this one was written.
        ctx.store.delete(key)
        raise not_found(file_id)
    return Rendering(etag=etag, path=None, data=png)


def _render_from_store(ctx: ServiceContext, blob_key: str, options: RenderOptions) -> bytes:
    max_pixels = ctx.settings.max_decoded_pixels
    source = ctx.store.local_path(blob_key)
    if source is not None:
        return render_png(source, options, max_pixels=max_pixels)
    # A remote store: spool the object to a local temporary file (frames are read by offset).
    fd, tmp = tempfile.mkstemp(dir=ctx.store.staging_dir(), prefix="render-")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in ctx.store.iter_range(blob_key):
                f.write(chunk)
        return render_png(tmp, options, max_pixels=max_pixels)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
