"""The service's dependencies, built once from the settings and passed to every use case."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from dicom_file_service.errors import RenderTimeout
from dicom_file_service.index.database import IndexDatabase
from dicom_file_service.jobs import PrerenderQueue, open_prerender_queue
from dicom_file_service.service import ids
from dicom_file_service.service.parsing import Parsers
from dicom_file_service.service.staging import StagedUpload
from dicom_file_service.settings import Settings
from dicom_file_service.storage import (
    BlobRenderCache,
    BlobStore,
    MemoryRenderCache,
    RenderCache,
    ScratchArea,
    open_blob_store,
)

T = TypeVar("T")


@dataclass
class ServiceContext:
    """Settings, index, blob store, scratch area, render cache, background-rendering queue
    and the bounded CPU pool."""

    settings: Settings
    index: IndexDatabase
    store: BlobStore
    scratch: ScratchArea
    renders: RenderCache
    jobs: PrerenderQueue
    cpu_pool: ThreadPoolExecutor = field(repr=False)
    cache_writer: ThreadPoolExecutor = field(repr=False)
    ingest_pool: ThreadPoolExecutor = field(repr=False)
    # Puts to a remote store, each beside the parse of the same upload (service.ingest).
    store_pool: ThreadPoolExecutor = field(repr=False)
    parsers: Parsers = field(repr=False)

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> ServiceContext:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        index = IndexDatabase(
            settings.resolved_database_url(),
            pool_size=settings.db_pool_size,
            pool_timeout=settings.db_pool_timeout_seconds,
            header_cache_bytes=settings.header_cache_bytes,
            lease_seconds=settings.header_cache_lease_seconds,
        )
        jobs = open_prerender_queue(settings.resolved_database_url(), index)
        if migrate:
            index.upgrade()
            jobs.prepare()
        store = open_blob_store(settings, local_prefixes=ids.instance_shards())
        scratch = ScratchArea(settings.resolved_scratch_dir())
        # Uploads abandoned by a crash or a dropped connection are swept at start-up.
        scratch.sweep(older_than_seconds=settings.pending_upload_ttl_seconds)
        pool = ThreadPoolExecutor(
            max_workers=settings.render_workers, thread_name_prefix="dicom-cpu"
        )
        return cls(
            settings=settings,
            index=index,
            store=store,
            scratch=scratch,
            renders=MemoryRenderCache(BlobRenderCache(store), settings.render_memory_cache_bytes),
            jobs=jobs,
            cpu_pool=pool,
            cache_writer=ThreadPoolExecutor(max_workers=2, thread_name_prefix="cache-writer"),
            ingest_pool=ThreadPoolExecutor(
                max_workers=settings.ingest_workers, thread_name_prefix="ingest"
            ),
            store_pool=ThreadPoolExecutor(
                max_workers=settings.ingest_workers, thread_name_prefix="store-put"
            ),
            parsers=Parsers(
                settings.parse_processes,
                settings.max_inflated_bytes,
                settings.parse_timeout_seconds,
                single_in_thread=settings.parse_single_uploads_in_thread,
            ),
        )

    async def run_cpu(self, fn: Callable[[], T], *, time_limit: float | None = None) -> T:
        """Run CPU-heavy work (parse, decode, render) off the event loop, in the bounded pool."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.cpu_pool, fn)
        limit = time_limit if time_limit is not None else self.settings.render_timeout_seconds
        started = time.monotonic()
        try:
            return await asyncio.wait_for(future, limit)
        except TimeoutError as exc:
            raise RenderTimeout(
                f"the work did not finish within {limit:.0f} s "
                f"(gave up after {time.monotonic() - started:.1f} s); "
                "try a smaller width/height or another frame"
            ) from exc

    async def run_ingest(self, fn: Callable[[], T]) -> T:
        """Run an ingest (parse, store, index) off the event loop, in its own pool.

        Not under the render timeout: storing a large file in a remote store takes as long
        as it takes, and a client must never be told "failed" for an upload that then
        completes; the upload's own deadline bounds how long the body may take to arrive.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.ingest_pool, fn)

    def new_upload(self) -> StagedUpload:
        """A scratch file for an upload on its way in, limited to the largest accepted."""
        return StagedUpload(self.scratch, self.settings.max_upload_bytes)

    async def aclose(self) -> None:
        """Close everything, the index's event-loop connections first (from the loop)."""
        await self.index.headers.aclose()
        self.close()

    def close(self) -> None:
        self.jobs.close()
        self.cpu_pool.shutdown(wait=False, cancel_futures=True)
        self.cache_writer.shutdown(wait=True)  # a few small writes: let them land
        self.ingest_pool.shutdown(wait=True)  # an acknowledged-to-be upload finishes
        self.store_pool.shutdown(wait=True)  # its put with it
        self.parsers.close()
        self.store.close()
        self.index.close()
