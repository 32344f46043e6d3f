"""Removing an instance's bytes once its index row is gone (delete, overwrite).

This runs after the transaction that removed the row has committed, so it must never undo
anything: a failure here is logged, not raised. The file is already gone for every reader,
and ``sweep`` reclaims a blob that no row refers to.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from dicom_file_service.service.context import ServiceContext

log = logging.getLogger(__name__)


def remove_instance_bytes(ctx: ServiceContext, file_id: str, blob_key: str) -> None:
    """Best effort, each part on its own: the stored file, and its cached renderings even when
    the file's delete failed (they are unreachable anyway: every route asks the index first;
    sweep reclaims what is left)."""
    steps: list[tuple[str, Callable[[], None]]] = [
        ("the stored file", lambda: ctx.store.delete(blob_key)),
        ("the cached renderings", lambda: ctx.renders.delete_all(file_id)),
    ]
    for what, remove in steps:
        try:
            remove()
        except Exception:  # any backend failure: the row is gone; sweep reclaims the bytes
            log.warning(
                f"could not remove {what} of a deleted instance",
                exc_info=True,
                extra={"file_id": file_id},
            )
