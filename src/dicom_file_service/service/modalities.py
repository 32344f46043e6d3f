"""The registry of remote Application Entities ("modalities") and the DICOM door's policy.

A modality is a name (the registry's key, as REST edits it) for an AE title at a host and
port, with the operations it may ask for. The DIMSE listener asks ``permits`` before serving
a request: C-ECHO and C-STORE are open to any calling AE (an archive takes what it is sent,
as STOW-RS does), whereas C-FIND, C-MOVE and C-GET hand data out, so they need a registered
AE title that allows the operation, calling from its registered host. The AE title alone
proves nothing (any peer can claim any title): the peer's address is what binds the claim.

Entries come from REST (stored in the index) and from ``DICOM_FS_MODALITIES``, which
``apply_configured`` writes over stored entries of the same name at start-up, so a
deployment's configuration wins over edits made since, and leaves other entries alone.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import Connection

from dicom_file_service.errors import InvalidModality, ModalityNotFound
from dicom_file_service.index import modalities as index_modalities
from dicom_file_service.index.modalities import ModalityRow
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.settings import Settings

Operation = Literal["echo", "store", "find", "move", "get"]
OPERATIONS: tuple[Operation, ...] = get_args(Operation)

# Open to any calling AE: a test of the connection, and what an archive is for.
_OPEN: frozenset[str] = frozenset({"echo", "store"})

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# PS3.5 AE (Application Entity): 16 characters of the default repertoire, no backslash and
# no control characters; leading and trailing spaces are not significant.
_AE_TITLE = re.compile(r"[ -\[\]-~]{1,16}")
# A DNS name's labels (RFC 1123); underscores too, as container and service names have them.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_FIELDS = frozenset({"name", "ae_title", "host", "port", "allow"})

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Modality:
    name: str
    ae_title: str
    host: str
    port: int
    allow: tuple[Operation, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ae_title": self.ae_title,
            "host": self.host,
            "port": self.port,
            "allow": list(self.allow),
        }


def parse_modality(name: str, body: Mapping[str, Any]) -> Modality:
    """The modality a client (or ``DICOM_FS_MODALITIES``) describes, checked field by field;
    ``InvalidModality`` names the first field that cannot be used. ``allow`` defaults to every
    operation, and comes back in ``OPERATIONS``' order without duplicates."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidModality(
            f"name: {name!r} is not 1-64 characters of letters, digits, '.', '_' and '-'"
        )
    if not isinstance(body, Mapping):
        raise InvalidModality("the modality must be a JSON object")
    unknown = sorted(str(key) for key in body if key not in _FIELDS)
    if unknown:
        raise InvalidModality(
            f"unknown field(s) {', '.join(unknown)}; a modality has ae_title, host, port, allow"
        )
    if "name" in body and body["name"] != name:
        raise InvalidModality(f"name: {body['name']!r} in the body is not {name!r} of the URL")
    for required in ("ae_title", "host", "port"):
        if required not in body:
            raise InvalidModality(f"{required}: missing")
    return Modality(
        name=name,
        ae_title=_ae_title(body["ae_title"]),
        host=_host(body["host"]),
        port=_port(body["port"]),
        allow=_allow(body.get("allow", list(OPERATIONS))),
    )


def _ae_title(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidModality("ae_title: must be a string")
    title = value.strip(" ")
    if not title:
        raise InvalidModality("ae_title: must not be empty or only spaces")
    if not _AE_TITLE.fullmatch(title):
        if len(title) > 16:
            raise InvalidModality(f"ae_title: {title!r} is longer than 16 characters")
        raise InvalidModality(
            f"ae_title: {title!r} may hold printable ASCII characters only, and no backslash"
        )
    return title


def _host(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidModality("host: must be a non-empty string (an IP address or a DNS name)")
    if _ip(value) is not None:
        return value
    name = value[:-1] if value.endswith(".") else value
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise InvalidModality(f"host: {value[:260]!r} is neither an IP address nor a DNS name")
    return value


def _port(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise InvalidModality(f"port: {value!r} is not an integer from 1 to 65535")
    return value


def _allow(value: Any) -> tuple[Operation, ...]:
    if not isinstance(value, list | tuple):
        raise InvalidModality(f"allow: must be a list of operations ({', '.join(OPERATIONS)})")
    for op in value:
        if op not in OPERATIONS:
            raise InvalidModality(
                f"allow: unknown operation {op!r}; the operations are {', '.join(OPERATIONS)}"
            )
    return tuple(op for op in OPERATIONS if op in value)


def _modality(row: ModalityRow) -> Modality:
    """A stored row as a modality (rows were checked by ``parse_modality`` when written)."""
    allow = tuple(op for op in OPERATIONS if op in row.allow)
    return Modality(row.name, row.ae_title, row.host, row.port, allow)


def list_modalities(ctx: ServiceContext) -> list[Modality]:
    """Every registered modality, by name."""
    with ctx.index.read() as conn:
        return [_modality(row) for row in index_modalities.list_rows(conn)]


def get_modality(ctx: ServiceContext, name: str) -> Modality:
    row = None
    if _NAME.fullmatch(name):  # what no entry can be named is not looked up (nor sent to SQL)
        with ctx.index.read() as conn:
            row = index_modalities.get_row(conn, name)
    if row is None:
        raise ModalityNotFound(f"no modality is registered as {name!r}")
    return _modality(row)


def put_modality(ctx: ServiceContext, modality: Modality) -> bool:
    """Store the modality, replacing any of its name; True when it was new."""
    with ctx.index.transaction() as conn:
        return _put(conn, modality)


def _put(conn: Connection, m: Modality) -> bool:
    return index_modalities.upsert(conn, m.name, m.ae_title, m.host, m.port, m.allow)


def delete_modality(ctx: ServiceContext, name: str) -> None:
    existed = False
    if _NAME.fullmatch(name):
        with ctx.index.transaction() as conn:
            existed = index_modalities.delete_row(conn, name)
    if not existed:
        raise ModalityNotFound(f"no modality is registered as {name!r}")


def by_ae_title(ctx: ServiceContext, ae_title: str) -> list[Modality]:
    """The modalities registered under this AE title (spaces around it are not significant),
    by name: a C-MOVE's destination, or the candidates for a calling AE."""
    title = ae_title.strip(" ")
    if not _AE_TITLE.fullmatch(title):  # a title no entry can have (a NUL byte, say)
        return []
    with ctx.index.read(transaction=False) as conn:  # one statement: no BEGIN needed
        return [_modality(r) for r in index_modalities.find_by_ae_title(conn, title)]


def configured_modalities(settings: Settings) -> list[Modality]:
    """The entries of ``DICOM_FS_MODALITIES`` (none when unset), checked without touching the
    index, so that a wrong one stops the start before anything is served. Raises
    ``ValueError`` naming the setting and the entry."""
    raw = settings.modalities.strip()
    if not raw:
        return []
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"DICOM_FS_MODALITIES is not valid JSON: {exc}") from exc
    if not isinstance(entries, dict):
        raise ValueError(
            'DICOM_FS_MODALITIES must be a JSON object {"name": {"ae_title", "host", "port", '
            f'"allow"}}}}, not {type(entries).__name__}'
        )
    found = []
    for name, body in entries.items():
        try:
            found.append(parse_modality(name, body))
        except InvalidModality as exc:
            raise ValueError(f"DICOM_FS_MODALITIES, entry {name!r}: {exc.detail}") from exc
    return found


def apply_configured(ctx: ServiceContext) -> int:
    """Write the configured modalities over stored ones of the same name (others are kept),
    in one transaction; the number written. Idempotent: every worker may run it at start."""
    configured = configured_modalities(ctx.settings)
    if configured:
        with ctx.index.transaction() as conn:
            for modality in configured:
                _put(conn, modality)
    return len(configured)


def permits(ctx: ServiceContext, calling_ae: str, peer_address: str, operation: Operation) -> bool:
    """Whether the DICOM door serves ``operation`` to this calling AE title from this peer.

    Echo and store: anyone. Find, move and get: a registered modality with that AE title,
    allowing the operation, whose host is the peer's address (an IP, or a name resolving to
    it now: DNS changes are followed). A peer address or a host that cannot be read or
    resolved is a refusal, never an error; an index that cannot be read raises (a
    ``ServiceError``), since "unknown" is not "refused".
    """
    if operation in _OPEN:
        return True
    if operation not in OPERATIONS:
        return False
    peer = _ip(peer_address)
    if peer is None:
        return False
    hosts = [m.host for m in by_ae_title(ctx, calling_ae) if operation in m.allow]
    # Literal addresses first: a match there needs no name resolved.
    if any(_ip(host) == peer for host in hosts):
        return True
    return any(peer in _resolve(host) for host in hosts if _ip(host) is None)


def _ip(text: str) -> IpAddress | None:
    """The address, with IPv4-mapped IPv6 (``::ffff:a.b.c.d``) as its IPv4 address and any
    zone (``%eth0``) left out; None for what is not an address."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _resolve(host: str) -> set[IpAddress]:
    """The addresses the name resolves to now; none when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):  # socket.gaierror is an OSError
        return set()
    return {a for info in infos if (a := _ip(str(info[4][0]))) is not None}
