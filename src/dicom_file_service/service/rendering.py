"""Render a stored file to PNG, through the render cache.

Renderings are keyed by file and parameters and deleted with the file. Stored files never
change (an overwrite gets a new file id), so a cached rendering never goes stale. The stored
file is read through the store's ranged reader: on S3 a rendering fetches the header and the
one frame it shows, never the whole object.
"""

from __future__ import annotations

from dataclasses import dataclass

from dicom_file_service.dicom.render import RenderOptions, render_png
from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.files import not_found
from dicom_file_service.storage import BlobNotFound


@dataclass(frozen=True)
class Rendering:
    etag: str
    data: bytes


def rendering_etag(file_id: str, options: RenderOptions) -> str:
    """A file id's content never changes, so id + parameters identify the rendering's bytes."""
    return f'"{file_id}-{options.cache_key()}"'


def cached_rendering(ctx: ServiceContext, file_id: str, options: RenderOptions) -> bytes | None:
    """The cached PNG if there is one (blocking: a file read or an object GET)."""
    if not ids.is_valid_file_id(file_id):
        return None
    return ctx.renders.get(file_id, options.cache_key())


def render_blocking(ctx: ServiceContext, file_id: str, options: RenderOptions) -> Rendering:
    """Return the cached rendering or make, cache and return it (blocking; run in the pool)."""
    found = ctx.index.headers.locate(file_id) if ids.is_valid_file_id(file_id) else None
    if found is None:
        raise not_found(file_id)
    etag = rendering_etag(file_id, options)
    key = options.cache_key()
    cached = ctx.renders.get(file_id, key)
    if cached is not None:
        return Rendering(etag=etag, data=cached)
    try:
        with ctx.store.open_reader(found.blob_key) as source:
            png = render_png(
                source,
                options,
                max_pixels=ctx.settings.max_decoded_pixels,
                frame_table=found.frame_table,
            )
    except BlobNotFound as exc:  # deleted while we looked
        raise not_found(file_id) from exc
    ctx.renders.put(file_id, key, png)  # a cache: it can be rendered again
    if ctx.index.headers.blob_key(file_id) is None:
        # Deleted while rendering: its renderings went before this one was written.
        ctx.renders.delete(file_id, key)
        raise not_found(file_id)
    return Rendering(etag=etag, data=png)
