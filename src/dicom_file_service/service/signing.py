"""The service's own signed URLs, for the local backend's direct transfer (README, "Usage").

An object store signs its own URLs (S3 presigning); a local disk has no server of its own,
so the service signs URLs to itself: HMAC-SHA256 over the method, the object's path and the
expiry time, with a secret from the settings (``DICOM_FS_SIGNING_SECRET``) or, for the
embedded default, one generated once and kept in the data directory. A URL is bound to one
object and one method; a tampered, expired or misused one is refused (403).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

from dicom_file_service.errors import InvalidSignature
from dicom_file_service.settings import Settings

_HEX64 = re.compile(r"[0-9a-f]{64}")


def signing_key(settings: Settings) -> bytes:
    """The configured secret, else the one kept in ``<data_dir>/signing.key`` (made once)."""
    if settings.signing_secret is not None:
        return settings.signing_secret.get_secret_value().encode()
    return kept_key(settings.data_dir / "signing.key")


def kept_key(path: Path) -> bytes:
    """The random key kept in ``path``, made on first use; every process reads the same."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    _write_new_key(path)
    return path.read_bytes()


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)  # first writer wins: every process then reads the same key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)


def _mac(key: bytes, method: str, path: str, expires: int) -> str:
    message = f"{method}\n{path}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, method: str, path: str, expires_in: int) -> tuple[str, int]:
    """``(query string, expires)`` that authorises ``method`` on ``path`` until ``expires``."""
    expires = int(time.time()) + expires_in
    return f"expires={expires}&signature={_mac(key, method, path, expires)}", expires


def verify(key: bytes, method: str, path: str, expires: str | None, signature: str | None) -> None:
    """Raise InvalidSignature unless the signature is this method's on this path, unexpired."""
    if not expires or not signature:
        raise InvalidSignature("the URL is not signed: ask for a new one")
    try:
        when = int(expires)
    except ValueError as exc:
        raise InvalidSignature("the URL's expiry is not a number: ask for a new one") from exc
    expected = _mac(key, method, path, when)
    if not _HEX64.fullmatch(signature) or not hmac.compare_digest(expected, signature):
        raise InvalidSignature(
            "the URL's signature does not match: it was altered, or it is for another object "
            "or method"
        )
    if when < time.time():
        raise InvalidSignature("the URL has expired: ask for a new one")
