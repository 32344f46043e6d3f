"""The extra query keys' index (``DICOM_FS_EXTRA_QUERY_KEYS``): rows, matching, reindexing.

Each value of a configured attribute is a row ``(instance seq, tag path, form, value)``,
normalised by ``dicom.query_keys.extra_key_values``; a condition on one is an ``EXISTS``
over those rows, as exact as the fixed columns. A key is matched here only once ``db reindex``
has reached the end of what was stored before it was configured (``extra_key_state``);
until then the search answers it from stored headers, so no instance is ever missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    delete,
    exists,
    func,
    insert,
    or_,
    select,
    update,
)

from dicom_file_service.dicom.qido import Level
from dicom_file_service.dicom.qido_match import HeaderCondition, SqlForm, extra_form
from dicom_file_service.index.tables import extra_key_state, extra_keys, instances, series, studies

_LEVEL_TABLES = {"study": studies, "series": series}
_UID = {"study": "study_instance_uid", "series": "series_instance_uid"}


def insert_rows(conn: Connection, seq: int, rows: Sequence[tuple[str, str, str]]) -> None:
    """One instance's extra-key values (as ``extra_key_values`` made them)."""
    if rows:
        conn.execute(
            insert(extra_keys),
            [{"seq": seq, "tag": tag, "form": form, "value": value} for tag, form, value in rows],
        )


def delete_rows(conn: Connection, seqs: Sequence[int], tags: Iterable[str] | None = None) -> None:
    """The rows of these instances (of these tags only, when given)."""
    stmt = delete(extra_keys).where(extra_keys.c.seq.in_(list(seqs)))
    if tags is not None:
        stmt = stmt.where(extra_keys.c.tag.in_(list(tags)))
    conn.execute(stmt)


def complete_tags(conn: Connection, tags: Iterable[str]) -> frozenset[str]:
    """Which of the tags ``db reindex`` has indexed to the end."""
    wanted = list(tags)
    if not wanted:
        return frozenset()
    stmt = select(extra_key_state.c.tag).where(
        extra_key_state.c.tag.in_(wanted), extra_key_state.c.complete.is_(True)
    )
    return frozenset(conn.execute(stmt).scalars())


def condition_clause(level: Level, condition: HeaderCondition) -> ColumnElement[bool]:
    """The condition on the query level's rows: an instance with a matching value (a study
    or series: any of its instances)."""
    form = extra_form(condition)
    where = and_(
        extra_keys.c.tag == condition.key.tag,
        extra_keys.c.form == form.form,
        _value_clause(form),
    )
    if level == "instance":
        return exists().where(extra_keys.c.seq == instances.c.seq, where)
    uid = _UID[level]
    matching = select(instances.c[uid]).join(extra_keys, extra_keys.c.seq == instances.c.seq)
    return _LEVEL_TABLES[level].c[uid].in_(matching.where(where))


def _value_clause(form: SqlForm) -> ColumnElement[bool]:
    column: Any = extra_keys.c.value
    if form.op == "equal":
        equal: ColumnElement[bool] = column.in_([v for v in form.values if v is not None])
        return equal
    if form.op == "like":
        return or_(*(column.like(str(p), escape="!") for p in form.values))
    low, high = form.values
    ends = [column >= low] if low is not None else []
    ends += [column <= high] if high is not None else []
    return and_(column.is_not(None), *ends)


# ``db reindex``: per tag, a cursor (the last instance seq indexed), kept with each batch.


def start(conn: Connection, tags: Sequence[str]) -> dict[str, int]:
    """The cursors of the tags still to index (new tags start at 0); the rows and state of
    tags no longer configured are dropped, as they would go stale."""
    gone = select(extra_key_state.c.tag).where(extra_key_state.c.tag.not_in(list(tags)))
    old = list(conn.execute(gone).scalars())
    if old:
        conn.execute(delete(extra_keys).where(extra_keys.c.tag.in_(old)))
        conn.execute(delete(extra_key_state).where(extra_key_state.c.tag.in_(old)))
    known = {
        tag: (cursor, complete)
        for tag, cursor, complete in conn.execute(
            select(extra_key_state.c.tag, extra_key_state.c.cursor, extra_key_state.c.complete)
        )
    }
    for tag in tags:
        if tag not in known:
            conn.execute(insert(extra_key_state).values(tag=tag, cursor=0, complete=False))
            known[tag] = (0, False)
    return {tag: int(known[tag][0]) for tag in tags if not known[tag][1]}


def remaining(conn: Connection, after: int) -> int:
    """Instances stored after ``after`` (a seq)."""
    return int(conn.execute(select(func.count()).where(instances.c.seq > after)).scalar() or 0)


def next_headers(conn: Connection, after: int, limit: int) -> list[tuple[int, bytes]]:
    """The stored headers of the next ``limit`` instances after ``after``, by seq."""
    stmt = (
        select(instances.c.seq, instances.c.header)
        .where(instances.c.seq > after)
        .order_by(instances.c.seq)
        .limit(limit)
    )
    return [(int(seq), bytes(header)) for seq, header in conn.execute(stmt)]


def advance(conn: Connection, tags: Sequence[str], cursor: int, *, complete: bool) -> None:
    """Move the tags' cursor on (never back) and say whether they are done."""
    conn.execute(
        update(extra_key_state)
        .where(extra_key_state.c.tag.in_(list(tags)))
        .values(
            cursor=func.max(extra_key_state.c.cursor, cursor)
            if conn.dialect.name == "sqlite"
            else func.greatest(extra_key_state.c.cursor, cursor),
            complete=complete,
        )
    )
