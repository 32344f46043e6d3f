"""The service's dependencies, built once from the settings and passed to every use case."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy import Engine

from dicom_file_service.errors import ServiceError
from dicom_file_service.index.db import create_index_engine, upgrade
from dicom_file_service.index.hot_reads import HeaderReader
from dicom_file_service.service import ids
from dicom_file_service.settings import Settings
from dicom_file_service.storage import BlobStore, open_blob_store

T = TypeVar("T")


class RenderTimeout(ServiceError):
    code = "render_timeout"
    title = "Rendering took too long"


@dataclass
class ServiceContext:
    """Settings, index engine, blob store and the bounded pool for CPU-heavy work."""

    settings: Settings
    engine: Engine
    store: BlobStore
    cpu_pool: ThreadPoolExecutor = field(repr=False)
    headers: HeaderReader = field(repr=False)

    @property
    def index_is_local(self) -> bool:
        """True for SQLite: point reads are cheap enough to run on the event loop."""
        return self.engine.dialect.name == "sqlite"

    @classmethod
    def create(cls, settings: Settings, *, migrate: bool = True) -> ServiceContext:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_index_engine(settings.resolved_database_url())
        if migrate:
            upgrade(engine)
        store = open_blob_store(settings.resolved_storage_url())
        store.prepare_prefixes(ids.instance_shards())
        # Uploads abandoned by a crash or a dropped connection are swept at start-up.
        store.sweep_staging(older_than_seconds=settings.pending_upload_ttl_seconds)
        pool = ThreadPoolExecutor(
            max_workers=settings.render_workers, thread_name_prefix="dicom-cpu"
        )
        return cls(
            settings=settings,
            engine=engine,
            store=store,
            cpu_pool=pool,
            headers=HeaderReader(engine),
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

    def close(self) -> None:
        self.cpu_pool.shutdown(wait=False, cancel_futures=True)
        self.headers.close()
        self.engine.dispose()
