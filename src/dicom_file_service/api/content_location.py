"""``Content-Location`` on DICOMweb answers (PS3.18 8.4.3): the URL of what was answered.

Viewers and proxies use it to know which resource a response (a search result, metadata, a
rendering) stands for. A thin ASGI wrapper adds it to every successful GET under
``/dicomweb`` that did not set its own, from the configured public base URL or, without one,
the request's scheme and Host.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_PREFIX = "/dicomweb/"


class ContentLocation:
    def __init__(self, app: ASGIApp, public_base_url: str | None) -> None:
        self.app = app
        self.public = public_base_url.rstrip("/") if public_base_url else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith(_PREFIX):
            await self.app(scope, receive, send)
            return
        location = self._url(scope)

        async def send_located(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"content-location" for name, _ in headers):
                    headers.append((b"content-location", location))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_located)

    def _url(self, scope: Scope) -> bytes:
        if self.public is not None:
            base = self.public.encode("latin-1")
        else:
            host = next((v for k, v in scope["headers"] if k == b"host"), b"localhost")
            base = scope["scheme"].encode() + b"://" + host + scope.get("root_path", "").encode()
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        query: bytes = scope.get("query_string", b"")
        return base + path + (b"?" + query if query else b"")
