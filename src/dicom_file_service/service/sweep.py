"""Remove what a crash can leave behind: staged uploads and unreferenced instance blobs.

Ingest writes the blob before the index row (docs/architecture.md, "Writes"), so a crash between
the two leaves a blob no row points to. It is never served, but it takes space. A blob is
removed only when no index row names it and it is older than the grace period, so an upload
in flight (blob written, row about to commit) is never touched. The grace period never goes
below ``sweep_min_age_seconds``, whatever the caller asks: sweep is safe against live
instances on every backend.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from dicom_file_service.index import repository as repo
from dicom_file_service.service.context import ServiceContext

_BATCH = 500


@dataclass(frozen=True)
class SweepReport:
    staged_removed: int
    orphans_removed: int
    blobs_checked: int
    grace_seconds: float  # what was applied: the floor where less was asked


def sweep(ctx: ServiceContext, *, older_than_seconds: float | None = None) -> SweepReport:
    asked = (
        older_than_seconds
        if older_than_seconds is not None
        else ctx.settings.pending_upload_ttl_seconds
    )
    grace = max(asked, ctx.settings.sweep_min_age_seconds)
    staged = ctx.scratch.sweep(older_than_seconds=grace)
    cutoff = time.time() - grace
    checked = removed = 0
    batch: list[str] = []

    def flush() -> int:
        with ctx.index.read() as conn:
            known = repo.referenced_blob_keys(conn, batch)
        gone = 0
        for key in batch:
            if key not in known:
                ctx.store.delete(key)
                gone += 1
        batch.clear()
        return gone

    for key, mtime in ctx.store.list_keys("instances"):
        checked += 1
        if mtime < cutoff:
            batch.append(key)
            if len(batch) >= _BATCH:
                removed += flush()
    if batch:
        removed += flush()
    # Direct uploads never completed: no row ever refers to these.
    for key, mtime in ctx.store.list_keys("uploads"):
        if mtime < cutoff:
            ctx.store.delete(key)
            staged += 1
    return SweepReport(
        staged_removed=staged, orphans_removed=removed, blobs_checked=checked, grace_seconds=grace
    )
