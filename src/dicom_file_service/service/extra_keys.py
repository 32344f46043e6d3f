"""The extra query keys (``DICOM_FS_EXTRA_QUERY_KEYS``): their rows at ingest, and reindexing.

Ingest writes each new instance's rows with it (``rows_of``). ``reindex`` indexes what was
stored before a key was configured: in batches of instances, each batch's rows and the
cursor (the last instance seq done) in one transaction, so a run that stops, however it
stops, is continued by the next one. A key is matched on its index only once a run reached
the end; until then searches answer it from stored headers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson

from dicom_file_service.dicom.qido import extra_query_keys
from dicom_file_service.dicom.query_keys import extra_key_values
from dicom_file_service.index import extra_keys as index_extra
from dicom_file_service.service.context import ServiceContext


def configured_tags(ctx: ServiceContext) -> tuple[str, ...]:
    """The tag paths of the configured extra keys."""
    return tuple(key.tag for key in extra_query_keys(ctx.settings.extra_query_keys))


def rows_of(ctx: ServiceContext, header_json: bytes) -> list[tuple[str, str, str]]:
    """The extra-key rows of an instance's stored header (none when no key is configured:
    the header is then not even parsed)."""
    keys = extra_query_keys(ctx.settings.extra_query_keys)
    if not keys:
        return []
    return extra_key_values(orjson.loads(header_json), tuple(k.path for k in keys))


@dataclass(frozen=True)
class ReindexReport:
    tags: tuple[str, ...]  # the keys indexed
    instances: int  # instances indexed by this run
    resumed_after: int  # the seq this run began after (0: from the start)
    complete: bool  # every stored instance is indexed for every key


def reindex(
    ctx: ServiceContext,
    *,
    batch_size: int = 500,
    max_batches: int | None = None,
    on_total: Callable[[int], object] = lambda n: None,
    on_batch: Callable[[int], object] = lambda n: None,
) -> ReindexReport:
    """Index the stored instances for the configured extra keys, from where the last run
    stopped; ``max_batches`` stops early (the next run continues)."""
    tags = configured_tags(ctx)
    paths = tuple(k.path for k in extra_query_keys(ctx.settings.extra_query_keys))
    with ctx.index.transaction() as conn:
        pending = index_extra.start(conn, tags)
    if not pending:
        on_total(0)
        return ReindexReport(tags, 0, 0, True)
    todo = tuple(t for t in tags if t in pending)
    todo_paths = tuple(p for t, p in zip(tags, paths, strict=True) if t in pending)
    cursor = min(pending.values())
    with ctx.index.read() as conn:
        on_total(index_extra.remaining(conn, cursor))
    done, batches, start = 0, 0, cursor
    while max_batches is None or batches < max_batches:
        with ctx.index.transaction() as conn:
            headers = index_extra.next_headers(conn, cursor, batch_size)
            if not headers:
                index_extra.advance(conn, todo, cursor, complete=True)
                return ReindexReport(todo, done, start, True)
            seqs = [seq for seq, _ in headers]
            index_extra.delete_rows(conn, seqs, todo)
            for seq, header in headers:
                rows = extra_key_values(orjson.loads(header), todo_paths)
                index_extra.insert_rows(conn, seq, rows)
            cursor = seqs[-1]
            index_extra.advance(conn, todo, cursor, complete=False)
        done += len(headers)
        batches += 1
        on_batch(len(headers))
    return ReindexReport(todo, done, start, False)
