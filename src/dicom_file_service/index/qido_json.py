"""A header condition as SQL over the stored DICOM JSON of ``instances.header``.

PostgreSQL reads the header as ``jsonb`` and walks the tag path with a JSON path
(``$."00081110"."Value"[*]."00081155"."Value"[*]``); SQLite's JSON1 walks it with one
``json_each`` per tag. Either tests the values' text as ``qido_match.sql_form`` says, or only
that the attribute has a value where the database cannot judge (names, times, numbers,
private tags): the clause keeps every row that can match, and the search gives the verdict
on those rows' headers (``qido_match.header_matches``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, bindparam, text

from dicom_file_service.dicom.qido_match import HeaderCondition, SqlForm, sql_form

# orjson writes NUL as \u0000, which jsonb refuses: dropped before the cast (matching text
# never holds one).
_PG_HEADER = "replace(convert_from(instances.header, 'UTF8'), '\\u0000', '')::jsonb"


def header_clause(dialect: str, condition: HeaderCondition, n: int) -> ColumnElement[bool]:
    """The condition as a boolean SQL expression on the ``instances`` row; ``n`` keeps its
    bound parameters apart from other conditions' in the same statement."""
    form = sql_form(condition)
    path = condition.key.path
    if dialect == "postgresql":
        return _postgresql(path, form, n)
    return _sqlite(path, form, n)


def _postgresql(path: tuple[str, ...], form: SqlForm | None, n: int) -> ColumnElement[bool]:
    json_path = "$" + "".join(f'."{tag}"."Value"[*]' for tag in path)
    params: list[Any] = [bindparam(f"h{n}_path", json_path)]
    if form is None:
        sql = f"jsonb_path_exists({_PG_HEADER}, CAST(:h{n}_path AS jsonpath))"
        return text(sql).bindparams(*params)  # type: ignore[return-value]
    where, values = _values_clause("trim(j.v #>> '{}')", form, n)
    params += values
    sql = (
        f"EXISTS (SELECT 1 FROM jsonb_path_query({_PG_HEADER}, CAST(:h{n}_path AS jsonpath)) "
        f"AS j(v) WHERE {where})"
    )
    return text(sql).bindparams(*params)  # type: ignore[return-value]


def _sqlite(path: tuple[str, ...], form: SqlForm | None, n: int) -> ColumnElement[bool]:
    sources = []
    params: list[Any] = []
    for depth, tag in enumerate(path):
        source = "CAST(instances.header AS TEXT)" if depth == 0 else f"j{n}_{depth - 1}.value"
        name = f"h{n}_p{depth}"
        params.append(bindparam(name, f'$."{tag}".Value'))
        sources.append(f"json_each({source}, :{name}) AS j{n}_{depth}")
    last = f"j{n}_{len(path) - 1}"
    where = "1"
    if form is not None:
        where, values = _values_clause(f"trim(CAST({last}.value AS TEXT))", form, n)
        params += values
    sql = f"EXISTS (SELECT 1 FROM {' JOIN '.join(sources)} WHERE {where})"
    return text(sql).bindparams(*params)  # type: ignore[return-value]


def _values_clause(value: str, form: SqlForm, n: int) -> tuple[str, list[Any]]:
    """SQL on one value's text, with its parameters."""
    params: list[Any] = []
    if form.op == "range":
        low, high = form.values
        ends = [f"{value} IS NOT NULL"]
        if low is not None:
            params.append(bindparam(f"h{n}_low", low))
            ends.append(f"{value} >= :h{n}_low")
        if high is not None:
            params.append(bindparam(f"h{n}_high", high))
            ends.append(f"{value} <= :h{n}_high")
        return " AND ".join(ends), params
    parts = []
    for i, v in enumerate(form.values):
        params.append(bindparam(f"h{n}_v{i}", v))
        if form.op == "like":
            parts.append(f"{value} LIKE :h{n}_v{i} ESCAPE '!'")
        else:
            parts.append(f"{value} = :h{n}_v{i}")
    return "(" + " OR ".join(parts or ["0 = 1"]) + ")", params
