"""A QIDO-RS search with keys beyond the indexed columns: extra keys and stored headers.

Without header conditions a search is ``qido.matches``: the indexed columns (and the extra
keys' index) in SQL, paged by the database. With them, the indexed conditions choose the
candidate instances (at study and series level: the instances of the studies or series they
match), and at most ``scan_limit`` of those, the first stored, are examined: the database
tests each header condition on the stored JSON (``qido_json``), and each row it keeps is
judged on its parsed header (``qido_match.header_matches``). A study or series matches when
one of its instances meets every header condition; matches come in the order their first
matching instance was stored, so pages neither overlap nor skip.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import ColumnElement, Connection, select

from dicom_file_service.dicom.qido import Level, Query
from dicom_file_service.dicom.qido_match import HeaderCondition, header_matches
from dicom_file_service.index import extra_keys
from dicom_file_service.index.qido import Match, level_select, matches
from dicom_file_service.index.qido_json import header_clause
from dicom_file_service.index.tables import instances, series, studies

_BATCH = 200  # candidate rows read at a time
_LEVEL_TABLES = {"study": studies, "series": series}
_UID: dict[Level, str] = {
    "study": "study_instance_uid",
    "series": "series_instance_uid",
    "instance": "sop_instance_uid",
}


@dataclass(frozen=True)
class Page:
    """One page of matches; ``more``: others follow it; ``cut``: the header scan stopped at
    its bound, so matches among later instances may be missing."""

    matches: list[Match]
    more: bool
    cut: bool = False


def search(
    conn: Connection,
    query: Query,
    scope: dict[Level, str],
    limit: int,
    *,
    scan_limit: int,
    indexed_extra: frozenset[str] = frozenset(),
) -> Page:
    """One page of what ``query`` finds; header conditions on tags in ``indexed_extra`` use
    the extra keys' index, the others are scanned (at most ``scan_limit`` instances)."""
    extra = [
        extra_keys.condition_clause(query.level, c)
        for c in query.header_conditions
        if c.key.tag in indexed_extra
    ]
    scanned = [c for c in query.header_conditions if c.key.tag not in indexed_extra]
    if not scanned:
        found, more = matches(conn, query, scope, limit, extra)
        return Page(found, more)
    return _scan(conn, query, scope, limit, scan_limit, extra, scanned)


def _scan(
    conn: Connection,
    query: Query,
    scope: dict[Level, str],
    limit: int,
    scan_limit: int,
    extra: list[ColumnElement[bool]],
    conditions: list[HeaderCondition],
) -> Page:
    candidates = _candidates(query, scope, extra)
    beyond = conn.execute(
        select(instances.c.seq)
        .where(*candidates)
        .order_by(instances.c.seq)
        .offset(scan_limit)
        .limit(1)
    ).scalar()
    dialect = conn.dialect.name
    where = candidates + [header_clause(dialect, c, n) for n, c in enumerate(conditions)]
    if beyond is not None:
        where.append(instances.c.seq < beyond)
    wanted = query.offset + limit + 1
    found: dict[str, Match] = {}
    last: int | None = None
    exhausted = False
    columns = (
        instances.c.seq,
        instances.c.study_instance_uid,
        instances.c.series_instance_uid,
        instances.c.sop_instance_uid,
        instances.c.header,
    )
    while len(found) < wanted:
        stmt = select(*columns).where(*where).order_by(instances.c.seq).limit(_BATCH)
        if last is not None:
            stmt = stmt.where(instances.c.seq > last)
        rows = conn.execute(stmt).all()
        for i, (seq, study, series_uid, sop, header) in enumerate(rows):
            last = seq
            parsed = orjson.loads(header)
            if all(header_matches(parsed, c) for c in conditions):
                match = _match(query.level, seq, study, series_uid, sop)
                found.setdefault(_key(query.level, match), match)
                if len(found) >= wanted:
                    exhausted = i == len(rows) - 1 and len(rows) < _BATCH
                    break
        else:
            if len(rows) < _BATCH:
                exhausted = True
                break
    page = list(found.values())[query.offset : query.offset + limit]
    return Page(page, len(found) > query.offset + limit, exhausted and beyond is not None)


def _candidates(
    query: Query, scope: dict[Level, str], extra: list[ColumnElement[bool]]
) -> list[ColumnElement[bool]]:
    """Conditions on instance rows: those the indexed conditions allow (at study and series
    level: every instance of a study or series they match)."""
    if query.level == "instance":
        clause = level_select(query, scope, extra).whereclause
        return [clause] if clause is not None else []
    where: list[ColumnElement[bool]] = [
        instances.c[_UID[level]] == uid for level, uid in scope.items()
    ]
    if query.conditions or extra:
        column = _LEVEL_TABLES[query.level].c[_UID[query.level]]
        uids = level_select(query, scope, extra).with_only_columns(column)
        where.append(instances.c[_UID[query.level]].in_(uids))
    return where


def _match(level: Level, seq: int, study: str, series: str, sop: str) -> Match:
    if level == "study":
        return Match(study)
    if level == "series":
        return Match(study, series)
    return Match(study, series, sop, seq)


def _key(level: Level, match: Match) -> str:
    if level == "study":
        return match.study_instance_uid
    if level == "series":
        return match.series_instance_uid or ""
    return match.sop_instance_uid or ""
