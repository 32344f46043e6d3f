"""The one settings object, read from the environment (prefix ``DICOM_FS_``).

Defaults are the embedded mode: SQLite index and blobs under ``./data``, nothing to set up.
Built once at start-up (``Settings()``) and passed down; no other module reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DICOM_FS_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Root of the embedded default.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/index.sqlite3"
    )
    storage_url: str | None = Field(
        default=None, description="Blob store URL; default file://<data_dir>/blobs"
    )

    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_decoded_pixels: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Samples (rows x columns x samples) one rendered frame may decode to.",
    )
    render_timeout_seconds: float = Field(default=60.0, gt=0)
    upload_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Time a client has to send one upload's body."
    )
    render_workers: int = Field(default=2, ge=1, description="Threads that decode and render.")
    max_tags_per_request: int = Field(default=64, ge=1)
    list_max_limit: int = Field(default=1000, ge=1)
    pending_upload_ttl_seconds: int = Field(default=3600, ge=60)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite3').resolve()}"

    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'blobs').resolve()}"
