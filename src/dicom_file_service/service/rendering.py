"""Render a stored file to PNG, through the render cache.

Renderings are keyed by file and parameters and deleted with the file. Stored files never
change (an overwrite gets a new file id), so a cached rendering never goes stale. The stored
file is read through the store's ranged reader: on S3 a rendering fetches the header and the
one frame it shows, never the whole object.

Every instance and worker shares the render cache (the store's ``renderings/``), and each of
its writes costs more than it looks: a round trip on S3, a file and its directory on local disk,
made by the cache writer beside the next request, which waits for the cores meanwhile (a cold
CT_small PNG 0.6-0.8 ms slower on local disk, on two cores). Two rules keep lookups and writes
to where they pay:

- A rendering that took less than ``SHARE_AFTER_SECONDS`` to make is kept in the process's
  memory, not written to the shared cache: another worker or instance makes it again for about
  what writing and fetching it would cost. Background renderings (``prerender``) are always
  shared: that is their purpose.
- On a remote store, a file whose bytes are at hand on this instance (a copy of a file it
  stored lately) is rendered without asking the shared cache first, unless background
  rendering is on: then a shared rendering is likely, otherwise only another instance asked
  for this file in the same minutes could have made one, and rendering it again costs less
  than the lookups. (On local disk a lookup is a file read, cheaper than any rendering.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from dicom_file_service import metrics
from dicom_file_service.dicom.render import RenderOptions, render_png
from dicom_file_service.errors import FileNotFound, StorageUnavailable
from dicom_file_service.index.hot_reads import StoredLocation
from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.files import not_found
from dicom_file_service.storage.ranged_reader import BLOCK

log = logging.getLogger(__name__)
T = TypeVar("T")

# A remote store's round trip, about, and more than a cache write beside the next request costs
# on local disk: a rendering made faster is not worth sharing.
SHARE_AFTER_SECONDS = 0.005


@dataclass(frozen=True)
class Rendering:
    etag: str
    data: bytes
    seconds: float = 0.0  # what making it took


def _asks_shared_cache(ctx: ServiceContext, file_id: str) -> bool:
    """Whether a miss in memory is worth a lookup in the shared cache (module docstring):
    always on a local store (a file read), on a remote one unless the file is at hand."""
    if not ctx.store.remote or ctx.settings.prerender:
        return True
    return not ctx.store.at_hand(ids.instance_key(file_id))


def _shared(rendering: Rendering) -> bool:
    """Whether a rendering made on demand goes to the shared cache, or stays in memory."""
    return rendering.seconds >= SHARE_AFTER_SECONDS


def rendering_etag(file_id: str, options: RenderOptions) -> str:
    """A file id's content never changes, so id + parameters identify the rendering's bytes."""
    return f'"{file_id}-{options.cache_key()}"'


async def rendering_async(ctx: ServiceContext, file_id: str, options: RenderOptions) -> bytes:
    """The PNG, for the event loop (the fast path): from the render cache for a file the index
    still has (a rendering never outlives its file, whichever instance or cache holds it),
    else rendered in the pool.

    A rendering in this process's memory costs one existence check. Otherwise the index
    says where the file's bytes are and the cache answers (on a remote store a GET, a 404
    when the file was never rendered, asked at the same time as the index; locally a file
    read, after it), and the render starts from that location without asking the index
    again. On a remote store the file's first block (its header, and the whole of a small
    file) is fetched while the cache's answer is still awaited: a miss then costs the longer
    of the two GETs, not their sum, and a hit one ranged GET unused.
    """
    if not ids.is_valid_file_id(file_id):
        raise not_found(file_id)
    key = options.cache_key()
    at_hand = ctx.renders.recall(file_id, key)
    if at_hand is not None:
        if not await ctx.index.headers.exists_async(file_id):
            raise not_found(file_id)
        metrics.RENDER_CACHE.labels("hit").inc()
        return at_hand
    # A local store's answer is a file read, inline: not worth a task and a turn of the loop.
    shared = _asks_shared_cache(ctx, file_id)
    asked = _soon(ctx.renders.get_async(file_id, key)) if ctx.store.remote and shared else None
    reading: asyncio.Task[bytes] | None = None
    try:
        found = await ctx.index.headers.location_async(file_id)
        if found is None:
            raise not_found(file_id)
        if asked is not None and not asked.done():
            first = min(found.size, BLOCK)
            reading = _soon(ctx.store.read_range_async(found.blob_key, 0, first))
        if asked is not None:
            cached = await asked
        elif shared:
            cached = await ctx.renders.get_async(file_id, key)
        else:
            cached = None
        metrics.RENDER_CACHE.labels("hit" if cached is not None else "miss").inc()
        if cached is not None:
            return cached
        head = b""
        if reading is not None:
            with contextlib.suppress(Exception):  # the render reads it again, names a failure
                head = await reading
    finally:  # whatever ended this, nothing is left running for nobody
        for task in (asked, reading):
            if task is not None and not task.done():
                task.cancel()
    located = found
    rendering = await ctx.run_cpu(lambda: _render_at(ctx, file_id, located, options, head=head))
    if not _shared(rendering):
        ctx.renders.remember(file_id, key, rendering.data)
        return rendering.data
    # Cached once the answer is on its way (the caller sends it in this same step of the
    # event loop): the cache writer's thread, woken at once, took the GIL from the loop the
    # answer waited for (the hand-back from the render thread 0.14 -> 0.05 ms).
    asyncio.get_running_loop().call_soon(_cache_later, ctx, file_id, key, rendering.data)
    return rendering.data


def _soon(work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """``work`` as a task whose failure is never left unread (it may be awaited by no one)."""
    task = asyncio.ensure_future(work)
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return task


def render_blocking(
    ctx: ServiceContext,
    file_id: str,
    options: RenderOptions,
    *,
    cache_later: bool = True,
) -> Rendering:
    """Return the cached rendering or make, cache and return it (blocking; run in the pool).

    With ``cache_later`` (a rendering asked for) the new rendering is written to the cache
    after the answer, by the cache writer (an object PUT need not delay the response), or
    only kept in memory where it is not worth sharing (module docstring); otherwise
    (background rendering) it is written before returning.
    """
    found = ctx.index.headers.blob_location(file_id) if ids.is_valid_file_id(file_id) else None
    if found is None:
        raise not_found(file_id)
    key = options.cache_key()
    if not cache_later or _asks_shared_cache(ctx, file_id):
        cached = ctx.renders.get(file_id, key)
    else:
        cached = ctx.renders.recall(file_id, key)
    metrics.RENDER_CACHE.labels("hit" if cached is not None else "miss").inc()
    if cached is not None:
        return Rendering(etag=rendering_etag(file_id, options), data=cached)
    rendering = _render_at(ctx, file_id, found, options)
    if not cache_later:
        _cache(ctx, file_id, key, rendering.data)
    elif _shared(rendering):
        _cache_later(ctx, file_id, key, rendering.data)
    else:
        ctx.renders.remember(file_id, key, rendering.data)
    return rendering


def _render_at(
    ctx: ServiceContext,
    file_id: str,
    found: StoredLocation,
    options: RenderOptions,
    *,
    head: bytes = b"",
) -> Rendering:
    """Render the file whose bytes are at ``found`` (``head``: its first bytes, if read
    already); the caller caches it."""
    started = time.perf_counter()
    try:
        with (
            ctx.store.open_reader(found.blob_key, found.size, head=head) as source,
            metrics.RENDER_SECONDS.time(),
        ):
            png = render_png(
                source,
                options,
                max_pixels=ctx.settings.max_decoded_pixels,
                max_bytes=ctx.settings.max_render_bytes,
                frame_table=found.frame_table,
            )
    except FileNotFound as exc:  # deleted while we looked
        raise not_found(file_id) from exc
    if ctx.index.headers.blob_key(file_id) is None:  # deleted while rendering
        raise not_found(file_id)
    seconds = time.perf_counter() - started
    return Rendering(etag=rendering_etag(file_id, options), data=png, seconds=seconds)


def _cache_later(ctx: ServiceContext, file_id: str, key: str, png: bytes) -> None:
    """Keep a rendering, by the cache writer (an object PUT need not delay an answer)."""
    with contextlib.suppress(RuntimeError):  # shutting down: the cache can wait
        ctx.cache_writer.submit(_cache, ctx, file_id, key, png)


def _cache(ctx: ServiceContext, file_id: str, key: str, png: bytes) -> None:
    """Keep a rendering, unless its file was deleted meanwhile (whose renderings went)."""
    try:
        ctx.renders.put(file_id, key, png)  # a cache: it can be rendered again
        if ctx.index.headers.blob_key(file_id) is None:
            ctx.renders.delete(file_id, key)
    except Exception as exc:  # a cache: a failure costs a later render, never an answer
        with contextlib.suppress(Exception):
            if ctx.index.headers.blob_key(file_id) is None:
                return  # deleted meanwhile, its renderings with it: nothing went wrong
        if isinstance(exc, StorageUnavailable):  # an outage, said once per rendering
            log.warning(
                "could not cache a rendering: the store is unavailable",
                extra={"file_id": file_id, "error": type(exc.__cause__ or exc).__name__},
            )
            return
        log.warning("could not cache a rendering", exc_info=True, extra={"file_id": file_id})
