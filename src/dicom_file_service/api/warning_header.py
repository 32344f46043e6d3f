"""The ``Warning`` header's values (RFC 7234 5.5, as PS3.18 8.3.4 uses it): code 299 and a
text saying in words what a client should know about an answer (ignored query keys, a part
refused and why).

The header is ASCII; a value is quoted, so quotes and backslashes inside it are replaced;
each is kept short and at most ``MAX_VALUES`` are sent.
"""

from __future__ import annotations

from collections.abc import Iterable

AGENT = "dicom-file-service"
MAX_VALUES = 20
MAX_TEXT = 300


def warning_values(texts: Iterable[str]) -> list[str]:
    out = []
    for text in list(texts)[:MAX_VALUES]:
        plain = text.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "/")
        out.append(f'299 {AGENT}: "{plain[:MAX_TEXT]}"')
    return out
