"""The request as the client made it, when a trusted reverse proxy stands in between.

A proxy in front of the service (nginx, a load balancer, an ingress) says how it was asked:
its scheme, its ``Host`` and the path prefix it serves the service under, in RFC 7239's
``Forwarded`` or in the older ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` /
``X-Forwarded-Prefix`` / ``X-Forwarded-For``. Every URL the service hands out is made from
the request's scheme, ``Host`` and ``root_path`` (``api.urls``), so this ASGI layer, in front
of everything, puts the proxy's values there, and the current public path prefix in a context
variable for the URLs the routes make as paths. Anybody can send those headers, so they count
only when the direct peer is in ``DICOM_FS_TRUSTED_PROXIES`` (loopback by default); uvicorn's
own proxy handling is off (``cli.serve``), so this is the one judgment of them.

Which value of a list counts: each proxy of a chain appends what it saw (one ``Forwarded``
element, one ``X-Forwarded-For`` address), so the list is read from the right, the nearest
proxy's end. Every hop whose client is itself a trusted proxy is walked past; the element
written by the outermost trusted proxy (the one the client itself reached) says the scheme
and host. The ``X-Forwarded-*`` lists are read at the same hop, counted on
``X-Forwarded-For`` (without it: their rightmost value). Where a request carries both
families, ``X-Forwarded-*`` wins field by field: the proxies that set them (nginx as the docs
configure it, Traefik, Caddy, most load balancers) pass a client's own ``Forwarded`` through
untouched, so preferring it would let any client name the host. A value that is not well
formed (an unknown scheme, a host with a path in it, a malformed ``Forwarded``) is ignored,
never an error. ``DICOM_FS_PUBLIC_BASE_URL``, when set, still names scheme, host and prefix.

The request's path is left as the proxy sent it (a proxy serving us under ``/pacs/`` strips
the prefix), so the ASGI layers that route on it see the service's own paths.
"""

from __future__ import annotations

import contextvars
import functools
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_root_path: contextvars.ContextVar[str] = contextvars.ContextVar("root_path", default="")


def current_root_path() -> str:
    """The current request's public path prefix (``/pacs``, or empty): the routes' paths
    handed out as paths (``Location``, the file API's BulkDataURIs) start with it."""
    return _root_path.get()


def trusted_networks(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list of CIDRs or addresses; ValueError naming the
    setting for a bad one (the service must not start trusting something else)."""
    networks = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ValueError(f"DICOM_FS_TRUSTED_PROXIES: {item!r} is not a CIDR: {exc}") from exc
    return tuple(networks)


def parse_node(value: str) -> Address | None:
    """The IP address of a ``for=`` node or ``X-Forwarded-For`` item (``192.0.2.1``,
    ``192.0.2.1:4711``, ``[2001:db8::1]:4711``, ``2001:db8::1``); None for ``unknown``,
    obfuscated names and anything else."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        rest = value[end + 1 :]
        if end < 0 or (rest and not re.fullmatch(r":[0-9]{1,5}", rest)):
            return None
        value = value[1:end]
        if "." in value and ":" not in value:
            return None  # an IPv4 address has no brackets
    elif value.count(":") == 1:
        value, _, port = value.partition(":")
        if not re.fullmatch(r"[0-9]{1,5}", port):
            return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


_REG_NAME = re.compile(r"[A-Za-z0-9._~-]{1,253}")
_PORT = re.compile(r"[0-9]{1,5}")


def valid_host(value: str) -> str | None:
    """``value`` if it is a URL authority's host and optional port (a name, an IPv4 address
    or a bracketed IPv6 address), else None: never a path, credentials or a second URL."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        try:
            ipaddress.IPv6Address(value[1:end])
        except ValueError:
            return None
        port = value[end + 1 :]
        if port and not (port.startswith(":") and _port_ok(port[1:])):
            return None
        return value
    name, colon, port = value.partition(":")
    if not _REG_NAME.fullmatch(name) or (colon and not _port_ok(port)):
        return None
    return value


def _port_ok(port: str) -> bool:
    return bool(_PORT.fullmatch(port)) and 0 < int(port) < 65536


def valid_proto(value: str) -> str | None:
    value = value.strip().lower()
    return value if value in ("http", "https") else None


_SEGMENT = re.compile(r"(?:[A-Za-z0-9._~!$'()*+,;=:@-]|%[0-9A-Fa-f]{2})+")


def valid_prefix(value: str) -> str | None:
    """A path prefix without its trailing slash (``/pacs``; ``""`` for ``/``), or None for
    anything but an absolute path of plain segments (no ``..``, query, fragment or quote)."""
    value = value.strip()
    if not value.startswith("/") or len(value) > 512:
        return None
    segments = value.strip("/").split("/") if value.strip("/") else []
    for segment in segments:
        if segment in (".", "..") or not _SEGMENT.fullmatch(segment):
            return None
    return "".join("/" + s for s in segments)


_FORWARDED_PAIR = re.compile(
    r"""\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=([!#$%&'*+.^_`|~0-9A-Za-z:\[\]-]+|"(?:[^"\\]|\\.)*")\s*"""
)


def parse_forwarded(value: str) -> list[dict[str, str]] | None:
    """The elements of a ``Forwarded`` header (RFC 7239 section 4: comma-separated elements
    of ``;``-separated ``name=value`` pairs, the value a token or a quoted string), names in
    lower case; None if it is not well formed (then none of it can be told apart).

    Tokens take ``:`` and ``[]`` as well, which the RFC does not allow unquoted but some
    proxies send (``for=[2001:db8::1]``)."""
    elements: list[dict[str, str]] = []
    element: dict[str, str] = {}
    pos, end = 0, len(value)
    while True:
        while pos < end and value[pos] in " \t":
            pos += 1
        if pos < end and value[pos] not in ",;":
            match = _FORWARDED_PAIR.match(value, pos)
            if match is None:
                return None
            name, raw = match.group(1).lower(), match.group(2)
            if name in element:
                return None  # a parameter occurs at most once per element
            if raw.startswith('"'):
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            element[name] = raw
            pos = match.end()
        if pos >= end:
            elements.append(element)
            return [e for e in elements if e]
        if value[pos] == ",":
            elements.append(element)
            element = {}
        elif value[pos] != ";":
            return None
        pos += 1


@dataclass(frozen=True)
class Seen:
    """What the proxies say of the client's request; None where they say nothing usable."""

    scheme: str | None = None
    host: str | None = None
    prefix: str | None = None
    client: str | None = None


def _is_trusted(address: Address | None, trusted: tuple[Network, ...]) -> bool:
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)


def _outermost(fors: list[Address | None], trusted: tuple[Network, ...]) -> int:
    """The index of the hop the client reached first among those trusted proxies wrote."""
    i = len(fors) - 1
    while i > 0 and _is_trusted(fors[i], trusted):
        i -= 1
    return i


def _list(headers: dict[str, list[str]], name: str) -> list[str]:
    return [item.strip() for line in headers.get(name, []) for item in line.split(",")]


@functools.lru_cache(maxsize=1024)
def _peer_trusted(peer: str, trusted: tuple[Network, ...]) -> bool:
    """Whether a direct peer is trusted: asked on every request (tag lookups among them),
    about the few addresses that connect."""
    return _is_trusted(parse_node(peer), trusted)


def seen_by_proxies(
    headers: Iterable[tuple[bytes, bytes]], peer: str | None, trusted: tuple[Network, ...]
) -> Seen | None:
    """What the proxies say, if the direct ``peer`` is trusted; None if it is not."""
    lines: dict[str, list[str]] = {}
    for name, raw in headers:
        if name[:1] in b"fFxX":  # most requests have neither family: this is all they cost
            key = name.decode("latin-1").lower()
            if key == "forwarded" or key.startswith("x-forwarded-"):
                lines.setdefault(key, []).append(raw.decode("latin-1"))
    if not lines or not peer or not _peer_trusted(peer, trusted):
        return None  # nothing said, or nobody we listen to said it

    forwarded = parse_forwarded(", ".join(lines["forwarded"])) if "forwarded" in lines else None
    chosen: dict[str, str] = {}
    client: Address | None = None
    if forwarded:
        fors = [parse_node(e.get("for", "")) for e in forwarded]
        hop = _outermost(fors, trusted)
        chosen, client = forwarded[hop], fors[hop]

    hop_back = 1
    xff = _list(lines, "x-forwarded-for")
    if xff:
        nodes = [parse_node(item) for item in xff]
        outer = _outermost(nodes, trusted)
        hop_back, client = len(nodes) - outer, nodes[outer] or client

    def x_forwarded(name: str) -> str | None:
        values = [v for v in _list(lines, name) if v]
        if not values:
            return None
        return values[-hop_back] if len(values) >= hop_back else values[0]

    def first(*candidates: str | None) -> str | None:
        return next((c for c in candidates if c is not None), None)

    proto, host, prefix = (x_forwarded(f"x-forwarded-{n}") for n in ("proto", "host", "prefix"))
    return Seen(
        scheme=first(proto and valid_proto(proto), valid_proto(chosen.get("proto", ""))),
        host=first(host and valid_host(host), valid_host(chosen.get("host", ""))),
        prefix=valid_prefix(prefix) if prefix is not None else None,
        client=str(client) if client is not None else None,
    )


class ProxiedRequest:
    """The ASGI layer that puts what trusted proxies say into the request's scope: its
    scheme, ``Host`` header, ``root_path`` and client address."""

    def __init__(
        self, app: ASGIApp, trusted: tuple[Network, ...], public_base_url: str | None
    ) -> None:
        self.app = app
        self.trusted = trusted
        # The configured public URL's path is the prefix, whatever a proxy says.
        self.public_prefix = (
            valid_prefix(urlsplit(public_base_url).path or "/") if public_base_url else None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = scope.get("client")
        seen = seen_by_proxies(scope["headers"], peer[0] if peer else None, self.trusted)
        prefix = self._prefix(seen)
        if seen is not None:
            scope = dict(scope)
            if seen.scheme is not None:
                scope["scheme"] = seen.scheme
            if seen.host is not None:
                host = seen.host.encode("latin-1")
                others = [(k, v) for k, v in scope["headers"] if k.lower() != b"host"]
                scope["headers"] = [(b"host", host), *others]
            if seen.client is not None:
                scope["client"] = (seen.client, 0)
        if prefix:
            scope = dict(scope)
            scope["root_path"] = prefix + scope.get("root_path", "")
        token = _root_path.set(scope.get("root_path", ""))
        try:
            await self.app(scope, receive, send)
        finally:
            _root_path.reset(token)

    def root_path_for(self, headers: Iterable[tuple[bytes, bytes]], peer: str | None) -> str:
        """The root path this layer gives a request that has no ``root_path`` of its own
        (what ``current_root_path`` says while it is answered)."""
        if self.public_prefix is not None:  # what proxies say cannot change it
            return self.public_prefix
        return self._prefix(seen_by_proxies(headers, peer, self.trusted)) or ""

    def _prefix(self, seen: Seen | None) -> str | None:
        """The path prefix of the service's URLs: the configured public URL's, else the one
        trusted proxies say."""
        if self.public_prefix is not None:
            return self.public_prefix
        return seen.prefix if seen is not None else None
