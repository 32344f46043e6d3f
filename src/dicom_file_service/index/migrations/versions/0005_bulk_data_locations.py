"""Stored headers name bulk values by location alone; routes are added when answering.

Rows written before this revision hold ``"BulkDataURI": "/dicom-image/<file id>/bulkdata/
7FE00010"``: the file API's route baked into the data. They are rewritten to ``"7FE00010"``,
and their span index (``header_index``) is made again, as the element offsets move, by
``dicom.header_index.encode_header`` as it is at this revision (copied here, not imported, so
that a later change to it never changes this migration).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

from array import array
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_BATCH = 500
_KEY = b'"BulkDataURI":"'


def upgrade() -> None:
    conn = op.get_bind()
    instances = sa.table(
        "instances",
        sa.column("seq", sa.BigInteger()),
        sa.column("file_id", sa.String()),
        sa.column("header", sa.LargeBinary()),
        sa.column("header_index", sa.LargeBinary()),
    )
    last = -1
    while True:
        rows = conn.execute(
            sa.select(instances.c.seq, instances.c.file_id, instances.c.header)
            .where(instances.c.seq > last)
            .order_by(instances.c.seq)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        for seq, file_id, header in rows:
            route = _KEY + f"/dicom-image/{file_id}/bulkdata/".encode()
            stored = bytes(header)
            if route not in stored:
                continue
            new_json, new_index = _encode_header(orjson.loads(stored.replace(route, _KEY)))
            conn.execute(
                sa.update(instances)
                .where(instances.c.seq == seq)
                .values(header=new_json, header_index=new_index)
            )
        last = rows[-1][0]


def _encode_header(header: dict[str, Any]) -> tuple[bytes, bytes]:
    """(JSON bytes of the whole header, span index): ``dicom.header_index.encode_header`` as
    it was at this revision (frozen: never import the package here)."""
    keys = sorted(header)
    parts = [b'"%s":%s' % (key.encode(), orjson.dumps(header[key])) for key in keys]
    spans = array("I")
    pos = 1  # after "{"
    for key, part in zip(keys, parts, strict=True):
        start = pos + len(key) + 3  # after '"key":'
        end = pos + len(part)
        spans.extend((int(key, 16), start, end))
        pos = end + 1  # after ","
    return b"{" + b",".join(parts) + b"}", spans.tobytes()


def downgrade() -> None:
    raise NotImplementedError("stored headers are not rewritten back to routes")
