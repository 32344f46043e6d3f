"""Fetch, query, list and delete stored files."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from dicom_file_service.dicom.bulk import locate_bulk_value
from dicom_file_service.dicom.header_index import select_elements, with_bulk_data_base
from dicom_file_service.dicom.tags import TagPath, lookup, parse_selector, required_keys
from dicom_file_service.errors import FileNotFound, InvalidParameter, TagNotFound
from dicom_file_service.index import repository as repo
from dicom_file_service.index.hot_reads import StoredHeader
from dicom_file_service.service import ids
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.records import file_summary
from dicom_file_service.service.removal import remove_instance_bytes


def not_found(file_id: str) -> FileNotFound:
    return FileNotFound(f"no stored file has id {file_id!r}")


def get_record(ctx: ServiceContext, file_id: str) -> repo.InstanceRecord:
    if not ids.is_valid_file_id(file_id):
        raise not_found(file_id)
    with ctx.index.read() as conn:
        record = repo.get_by_file_id(conn, file_id)
    if record is None:
        raise not_found(file_id)
    return record


def load_header(ctx: ServiceContext, file_id: str) -> StoredHeader:
    """The stored DICOM JSON header, its span index and bulk lengths."""
    if not ids.is_valid_file_id(file_id):
        raise not_found(file_id)
    found = ctx.index.headers.read(file_id)
    if found is None:
        raise not_found(file_id)
    return found


async def load_header_async(ctx: ServiceContext, file_id: str) -> StoredHeader:
    """``load_header`` for the event loop (the index decides whether that needs a thread)."""
    if not ids.is_valid_file_id(file_id):
        raise not_found(file_id)
    found = await ctx.index.headers.read_async(file_id)
    if found is None:
        raise not_found(file_id)
    return found


_ATTRIBUTES = "attributes"  # the header cache's keys of tag lookups' answers


async def get_attributes_async(
    ctx: ServiceContext, file_id: str, selectors: list[str], bulk_data_base: str
) -> list[dict[str, Any]]:
    """One answer per selector, in request order, bulk values named by a URI under
    ``bulk_data_base``. Reads only the index, never the file: the hot path of tag lookups.
    The answers are shared with later lookups (see ``get_attributes_now``): not to be
    changed."""
    headers = ctx.index.headers
    key = (_ATTRIBUTES, file_id, bulk_data_base, *selectors)
    seen, kept = headers.kept(key)
    if kept is not None:
        return kept  # type: ignore[no-any-return]
    paths = _tag_paths(ctx, selectors)
    stored = await load_header_async(ctx, file_id)
    return _answers_kept(ctx, key, seen, _answers(stored, paths, bulk_data_base))


def get_attributes_now(
    ctx: ServiceContext, file_id: str, selectors: list[str], bulk_data_base: str
) -> list[dict[str, Any]] | None:
    """``get_attributes_async``'s answers when they need no wait (kept from an earlier
    lookup, or the index reads at once: ``HeaderReader.reads_at_once``), for a caller on the
    event loop that cannot await; None when they would, and the caller takes the async way.

    The answers are kept beside the header cache's entries, and dropped with them (on the
    embedded index at its next change, on PostgreSQL at the next delete): the same lookup
    again (a viewer's, a client polling) costs a check that nothing changed instead of
    reading the header, parsing the selectors and walking it.
    """
    headers = ctx.index.headers
    key = (_ATTRIBUTES, file_id, bulk_data_base, *selectors)
    seen, kept = headers.kept(key)
    if kept is not None:
        return kept  # type: ignore[no-any-return]
    if not headers.reads_at_once:
        return None
    paths = _tag_paths(ctx, selectors)
    stored = load_header(ctx, file_id)
    return _answers_kept(ctx, key, seen, _answers(stored, paths, bulk_data_base))


def _answers_kept(
    ctx: ServiceContext, key: tuple[str, ...], seen: int | None, answers: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """``answers``, kept under ``key`` if their header was read since ``kept(key)`` answered
    ``seen``."""
    ctx.index.headers.keep(key, answers, seen, len(orjson.dumps(answers)) + 64 * len(key))
    return answers


def _tag_paths(ctx: ServiceContext, selectors: list[str]) -> list[TagPath]:
    """The selectors parsed, at most ``max_tags_per_request`` of them (else a 400)."""
    if len(selectors) > ctx.settings.max_tags_per_request:
        raise InvalidParameter(
            f"at most {ctx.settings.max_tags_per_request} dicom_tag parameters per request"
        )
    return [parse_selector(s) for s in selectors]


def _answers(
    stored: StoredHeader, paths: list[TagPath], bulk_data_base: str
) -> list[dict[str, Any]]:
    keys = {key for p in paths for key in required_keys(p)}
    header = select_elements(stored.json, stored.spans, keys)  # parse only what paths need
    bulk = orjson.loads(stored.bulk_lengths)
    return [lookup(header, p, bulk, bulk_data_base) for p in paths]


async def metadata_async(ctx: ServiceContext, file_id: str, bulk_data_base: str) -> bytes:
    """The header as a DICOM JSON array of one dataset (the shape WADO-RS metadata uses),
    its bulk data URIs under ``bulk_data_base``."""
    stored = await load_header_async(ctx, file_id)
    return b"[" + with_bulk_data_base(stored.json, bulk_data_base) + b"]"


@dataclass(frozen=True)
class ByteStream:
    """Bytes to send as they are read: their length, and the chunks (opened already)."""

    length: int
    chunks: Iterator[bytes]


def bulk_value(ctx: ServiceContext, file_id: str, location: str) -> ByteStream:
    """The value behind a BulkDataURI, located from the stored file's header and streamed
    from its byte span (never held whole; a value inside deflated data is inflated)."""
    record = get_record(ctx, file_id)
    bulk = orjson.loads(load_header(ctx, file_id).bulk_lengths)
    if location.upper() not in bulk:  # only what the header names by a BulkDataURI
        raise TagNotFound(f"{location!r} is not a bulk data location of this file")
    try:
        with ctx.store.open_reader(record.blob_key, record.size) as f:
            found = locate_bulk_value(f, location, record.size)
        if isinstance(found, bytes):
            return ByteStream(len(found), iter([found]))
        end = found.offset + found.length
        return ByteStream(found.length, ctx.store.iter_range(record.blob_key, found.offset, end))
    except FileNotFound as exc:  # deleted meanwhile
        raise not_found(file_id) from exc


def delete_file(ctx: ServiceContext, file_id: str) -> None:
    """Index row first (the file disappears at once), then bytes and renderings."""
    if not ids.is_valid_file_id(file_id):
        raise not_found(file_id)
    with ctx.index.transaction() as conn:
        record = repo.get_by_file_id(conn, file_id)
        # Two deletes racing both find the row; only one deletes it (the other waits on its
        # lock, then finds nothing to delete) and only that one answers 204.
        if record is None or not repo.delete_by_file_id(conn, file_id):
            raise not_found(file_id)
    remove_instance_bytes(ctx, file_id, record.blob_key)


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not raw.startswith("s"):
            raise ValueError(raw)
        return int(raw[1:])
    except ValueError as exc:
        raise InvalidParameter(
            "cursor is not one this service issued: pass next_cursor from the previous page"
        ) from exc


def list_files(
    ctx: ServiceContext, *, limit: int, cursor: str | None, filters: dict[str, str]
) -> Page:
    if not 1 <= limit <= ctx.settings.list_max_limit:
        raise InvalidParameter(f"limit must be between 1 and {ctx.settings.list_max_limit}")
    before = _decode_cursor(cursor) if cursor else None
    with ctx.index.read() as conn:
        rows = repo.list_instances(conn, limit=limit + 1, before_seq=before, filters=filters)
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(
        items=[file_summary(r) for r in rows],
        next_cursor=_encode_cursor(rows[-1].seq) if more and rows else None,
    )
