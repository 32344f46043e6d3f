"""The registry of remote Application Entities (the ``modalities`` table). Functions over a
``Connection`` that never commit: the service owns the transaction (``IndexDatabase``).

Rows come back as ``ModalityRow`` with ``allow`` decoded; what a valid entry is, and what it
permits, is the service's to say (``service.modalities``), not the index's.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from dicom_file_service.index.tables import modalities


@dataclass(frozen=True)
class ModalityRow:
    name: str
    ae_title: str
    host: str
    port: int
    allow: tuple[str, ...]
    updated_at: float | None


_COLUMNS = [modalities.c[f] for f in ModalityRow.__dataclass_fields__]


def _row(row: Row[Any]) -> ModalityRow:
    values = dict(row._mapping)
    values["allow"] = tuple(orjson.loads(values["allow"]))
    return ModalityRow(**values)


def list_rows(conn: Connection) -> list[ModalityRow]:
    """Every registered modality, by name."""
    stmt = select(*_COLUMNS).order_by(modalities.c.name)
    return [_row(r) for r in conn.execute(stmt)]


def get_row(conn: Connection, name: str) -> ModalityRow | None:
    row = conn.execute(select(*_COLUMNS).where(modalities.c.name == name)).first()
    return _row(row) if row else None


def find_by_ae_title(conn: Connection, ae_title: str) -> list[ModalityRow]:
    """The modalities registered under exactly this AE title (several may share one)."""
    stmt = select(*_COLUMNS).where(modalities.c.ae_title == ae_title).order_by(modalities.c.name)
    return [_row(r) for r in conn.execute(stmt)]


# Insert unless a row of that name exists (portable: both dialects take ON CONFLICT).
_INSERT = {
    "postgresql": postgresql.insert(modalities).on_conflict_do_nothing(index_elements=["name"]),
    "sqlite": sqlite.insert(modalities).on_conflict_do_nothing(index_elements=["name"]),
}


def upsert(
    conn: Connection, name: str, ae_title: str, host: str, port: int, allow: Sequence[str]
) -> bool:
    """Store the modality under ``name``, replacing any of that name; True when it was new.

    An UPDATE first, then an INSERT that yields to a row inserted meanwhile by a concurrent
    transaction (then updated after all), so two writers of one name never fail on the key.
    """
    values = {
        "ae_title": ae_title,
        "host": host,
        "port": port,
        "allow": orjson.dumps(list(allow)).decode(),
        "updated_at": time.time(),
    }
    replace = update(modalities).where(modalities.c.name == name).values(**values)
    if conn.execute(replace).rowcount:
        return False
    if conn.execute(_INSERT[conn.dialect.name], {"name": name, **values}).rowcount:
        return True
    conn.execute(replace)
    return False


def delete_row(conn: Connection, name: str) -> bool:
    """Remove the modality; True when there was one."""
    return bool(conn.execute(delete(modalities).where(modalities.c.name == name)).rowcount)
