"""Readiness: can we reach the index and the blob store right now?"""

from __future__ import annotations

from dicom_file_service.service.context import ServiceContext


def readiness(ctx: ServiceContext) -> list[str]:
    """What is not ready, as short sentences free of secrets (empty: ready)."""
    problems: list[str] = []
    try:
        ctx.index.check()
    except Exception as exc:  # any driver error means "not ready"
        problems.append(f"index unreachable ({type(exc).__name__})")
    try:
        ctx.store.check()
    except Exception as exc:  # any backend error means "not ready"
        problems.append(f"storage unusable ({type(exc).__name__})")
    return problems
