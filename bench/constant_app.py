"""The Python ceiling: an ASGI app that answers every request with the same tag-lookup body.

``bench/bench.py`` runs it under uvicorn with the same worker count and server options as
``dicom-file-service serve`` and measures it with the same wrk load as the tag lookups, in the
same run: what no Python service on this server and machine can beat.
"""

from __future__ import annotations

from typing import Any

BODY = (
    b'{"tag":"(0010,0010)","keyword":"PatientName","name":"Patient\'s Name","vr":"PN",'
    b'"vm":1,"value":"CompressedSamples^CT1"}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
