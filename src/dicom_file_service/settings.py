"""The one settings object, read from the environment (prefix ``DICOM_FS_``).

Defaults are the embedded mode: SQLite index and blobs under ``./data``, nothing to set up.
Production sets ``DICOM_FS_DATABASE_URL=postgresql://...`` and ``DICOM_FS_STORAGE_URL=s3://...``;
an S3 store's endpoint and credentials come from the standard AWS variables (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``), read here with the rest.
Built once at start-up (``Settings()``) and passed down; no other module reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity (what a container's cpuset or
    ``taskset`` allows), not every core of the host."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DICOM_FS_", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Root of the embedded default.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///<data_dir>/index.sqlite3"
    )
    storage_url: str | None = Field(
        default=None,
        description="Blob store URL: file:///path or s3://bucket/prefix; "
        "default file://<data_dir>/blobs",
    )
    scratch_dir: Path | None = Field(
        default=None,
        description="Local directory for uploads in progress; default <data_dir>/scratch. "
        "Safe to lose: nothing in it is acknowledged.",
    )
    ohif_dir: Path | None = Field(
        default=None,
        description="Where `dicom-file-service ohif install` puts the OHIF viewer's build, "
        "served under /ohif/; default <data_dir>/ohif",
    )

    # S3: the standard AWS variables, without our prefix.
    aws_endpoint_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
    )
    aws_access_key_id: str | None = Field(default=None, validation_alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="AWS_SECRET_ACCESS_KEY"
    )
    aws_region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    s3_presign_endpoint_url: str | None = Field(
        default=None,
        description="The S3 endpoint as clients reach it, for presigned URLs, where it differs "
        "from AWS_ENDPOINT_URL (e.g. an internal host name); default: AWS_ENDPOINT_URL.",
    )
    s3_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time one S3 request may take before it is an outage."
    )

    presign_expiry_seconds: int = Field(
        default=900, ge=1, le=7 * 24 * 3600, description="Lifetime of presigned URLs."
    )
    signing_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Key of the service's own signed URLs (local backend); default: one "
        "generated once and kept in <data_dir>/signing.key. Every instance must share it.",
    )
    deid_secret: SecretStr | None = Field(
        default=None,
        min_length=16,
        description="Key of de-identification's pseudonyms (UIDs, Patient IDs, date offsets); "
        "default: one generated once and kept in <data_dir>/deid.key. The same key gives the "
        "same pseudonyms; keep it secret and keep it.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Base URL clients reach the service at, for the service's own signed "
        "URLs; default: the request's own scheme and host.",
    )
    trusted_proxies: str = Field(
        default="127.0.0.0/8,::1/128",
        description="Comma-separated CIDRs of the reverse proxies whose Forwarded and "
        "X-Forwarded-* headers say the client's scheme, host and path prefix; a request from "
        "any other peer is taken as it comes. Empty: none.",
    )

    log_format: Literal["auto", "json", "text"] = Field(
        default="auto",
        description="json: one JSON line per record and per request (for log collectors); "
        "text: plain lines; auto: text on a terminal, json otherwise.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description='Origins a browser viewer may call from (JSON list, e.g. ["*"] or '
        '["https://viewer.example.org"]); empty: no CORS headers.',
    )

    prerender: bool = Field(
        default=False,
        description="Render each new instance's default PNG and thumbnail in the background.",
    )
    jobs_in_process: bool = Field(
        default=True,
        description="Run clients' background jobs (DICOM sending and retrieving) in threads of "
        "serve's processes; false: only `worker` processes run them.",
    )
    thumbnail_size: int = Field(default=128, ge=16, le=1024)
    render_memory_cache_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=0,
        description="Renderings kept in each process's memory (0: none).",
    )
    local_copy_bytes: int = Field(
        default=1024 * 1024 * 1024,
        ge=0,
        description="S3: copies of recently stored files kept on the instance's disk (in "
        "<scratch_dir>/copies, shared by its processes) and read instead of the store; at "
        "most this many bytes (0: none). The store stays the truth: a copy is made after its "
        "put succeeded and is read only for a file the index still has.",
    )
    local_copy_seconds: float = Field(
        default=600.0,
        gt=0,
        description="S3: a local copy is removed this long after it was made (the longest a "
        "file deleted through another instance stays, unread, on this one's disk).",
    )

    header_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="Stored headers, locations and tag lookups' answers each process keeps in "
        "memory; 0: none. Embedded index: kept while nothing is committed (any commit drops "
        "them all). PostgreSQL: kept until any delete, which is answered only once every "
        "instance has dropped them (or its lease has ended).",
    )
    header_cache_lease_seconds: float = Field(
        default=5.0,
        gt=0.5,
        le=300,
        description="PostgreSQL: how long an instance may serve kept headers without hearing "
        "from the database (its lease, renewed four times as often); the longest a delete "
        "waits for an instance that vanished without a word.",
    )

    max_upload_bytes: int = Field(default=2 * 1024**3, gt=0)
    max_decoded_pixels: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Samples (rows x columns x samples) one rendered frame may decode to.",
    )
    max_inflated_bytes: int = Field(
        default=64 * 1024 * 1024,
        gt=0,
        description="Size a deflated data set may inflate to; larger ones (deflate bombs) are "
        "refused at upload, measured in constant memory.",
    )
    max_transcode_bytes: int = Field(
        default=128 * 1024 * 1024,
        gt=0,
        description="Decoded size of an instance WADO-RS may transcode to Explicit VR Little "
        "Endian; larger ones are retrieved as stored (transfer-syntax=*).",
    )
    max_render_bytes: int = Field(
        default=384 * 1024 * 1024,
        gt=0,
        description="Memory one frame's decode and rendering may take, counted as its samples "
        "times their decoded bytes plus 8 for the floating-point intermediates; a larger "
        "frame is refused (422 image_too_large) before it is decoded.",
    )
    render_timeout_seconds: float = Field(default=60.0, gt=0)
    upload_timeout_seconds: float = Field(
        default=600.0, gt=0, description="Time a client has to send one upload's body."
    )
    workers: int = Field(
        default_factory=lambda: available_cores(),
        ge=1,
        le=64,
        description="Processes ``serve`` runs (uvicorn workers); default: one per core. The "
        "pools below are sized per process from it.",
    )
    render_workers: int = Field(
        default=0,
        ge=0,
        description="Threads per process that decode and render; 0 (default): the cores per "
        "worker process, at least 2 (decoders release the GIL; one slow frame must not hold "
        "up every other).",
    )
    ingest_workers: int = Field(
        default=4, ge=1, description="Threads that parse, store and index uploads."
    )
    parse_processes: int = Field(
        default=-1,
        ge=-1,
        description="Processes per worker that parse uploads (CPU-bound Python: processes let "
        "one STOW-RS request's parts use every core); 0: parse in the ingest threads. Default "
        "(-1): the cores per worker, at least 1, at most 4.",
    )
    parse_single_uploads_in_thread: bool = Field(
        default=False,
        description="Parse a lone upload (not one part of many) in the thread that stores "
        "it, not in a parser process; default: true when the service runs a worker per "
        "core, where the other workers keep the cores busy and the hand-over to a process "
        "costs more than it gains.",
    )
    parse_timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Ingest's own bound: a file whose parsing takes longer is refused (422 "
        "parse_timeout) before anything is stored, and its parser process is stopped "
        "(with PARSE_PROCESSES > 0).",
    )
    db_pool_size: int = Field(
        default=0,
        ge=0,
        description="Index connections per process; 0 (default): enough for every ingest and "
        "render thread at once, plus two (PostgreSQL sees up to three times this per "
        "process: the pool, its overflow and the pool of point reads).",
    )
    db_pool_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Wait for a free index connection before a 503."
    )
    max_tags_per_request: int = Field(default=64, ge=1)
    list_max_limit: int = Field(default=1000, ge=1)
    qido_max_results: int = Field(
        default=1000,
        ge=1,
        description="Most matches one QIDO-RS answer holds (and its default limit); a Warning "
        "header says when more follow, to be fetched with offset.",
    )
    qido_max_scanned: int = Field(
        default=10000,
        ge=1,
        description="Most instances one QIDO-RS search examines for keys without an index "
        "(answered from stored headers), after the indexed keys chose them; a Warning header "
        "says when this bound cut the answer.",
    )
    extra_query_keys: str = Field(
        default="",
        description="Comma-separated keywords, tags or dotted paths of more QIDO-RS keys to "
        "index (written at ingest; `dicom-file-service db reindex` indexes what is stored).",
    )
    pending_upload_ttl_seconds: int = Field(default=3600, ge=60)
    shutdown_grace_seconds: float = Field(
        default=30.0,
        gt=0,
        description="On SIGTERM, requests in flight get this long to finish (new connections "
        "are refused); an upload still arriving then is abandoned, its staged bytes removed.",
    )
    sweep_min_age_seconds: float = Field(
        default=900,
        ge=0,
        description="Sweep never removes a blob or an upload younger than this, whatever its "
        "--older-than: a live instance writes an upload's blob before its index row commits, "
        "and receives an upload for up to UPLOAD_TIMEOUT_SECONDS. Keep it above both.",
    )

    # The DICOM network (DIMSE) door: docs/dicom-network.md.
    dicom_port: int = Field(
        default=11112,
        ge=0,
        le=65535,
        description="TCP port of the DICOM listener, on the same host as HTTP; 0: no listener.",
    )
    ae_title: str = Field(
        default="DICOMFS",
        min_length=1,
        max_length=16,
        pattern=r"^[ -\[\]-~]*[!-\[\]-~][ -\[\]-~]*$",
        description="The archive's own Application Entity title (at most 16 characters, no "
        "backslash, not only spaces).",
    )
    dicom_tls_port: int = Field(
        default=2762,
        ge=0,
        le=65535,
        description="TCP port of the DICOM listener over TLS (PS3.15 Annex B), used when "
        "DICOM_TLS_CERT and DICOM_TLS_KEY are set; 0: none.",
    )
    dicom_tls_cert: Path | None = Field(default=None, description="PEM certificate chain.")
    dicom_tls_key: Path | None = Field(default=None, description="PEM private key.")
    dicom_tls_client_ca: Path | None = Field(
        default=None,
        description="PEM CA bundle: when set, TLS clients must present a certificate it signs.",
    )
    dicom_max_associations: int = Field(
        default=64, ge=1, le=1024, description="Associations the listener serves at once."
    )
    dicom_listen_backlog: int = Field(
        default=128, ge=1, description="Connections the kernel queues before they are accepted."
    )
    dicom_max_pdu_bytes: int = Field(
        default=1024 * 1024,
        ge=4096,
        le=64 * 1024 * 1024,
        description="Largest PDU the listener receives (its Maximum Length announced); a "
        "longer one ends the association before its bytes are read.",
    )
    dicom_acse_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Wait for an association's negotiation to finish."
    )
    dicom_dimse_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Wait for the next DIMSE message of an operation."
    )
    dicom_network_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="An association (or a PDU half received) idle this long is closed; also "
        "ARTIM's and the connect timeout.",
    )
    dicom_listener_address: str = Field(
        default="",
        description="host:port of a DICOM listener each HTTP worker waits for (at most a "
        "minute) before it answers anything; serve sets it to its own listener's, so that a "
        "service that answers has both doors open. Empty: no wait.",
    )
    modalities: str = Field(
        default="",
        description='Remote AEs as a JSON object {"name": {"ae_title", "host", "port", '
        '"allow": ["echo","store","find","move","get"]}}, applied at start-up over stored ones '
        "of the same name (edited over REST at /modalities).",
    )

    @model_validator(mode="after")
    def _size_pools_from_workers(self) -> Settings:
        if self.render_workers == 0:
            cores = available_cores()
            self.render_workers = max(2, cores // self.workers)
        if self.db_pool_size == 0:
            self.db_pool_size = self.ingest_workers + self.render_workers + 2
        cores = available_cores()
        if self.parse_processes == -1:
            self.parse_processes = min(4, max(1, cores // self.workers))
        if "parse_single_uploads_in_thread" not in self.model_fields_set:
            self.parse_single_uploads_in_thread = self.workers >= cores
        return self

    @model_validator(mode="after")
    def _extra_query_keys_name_attributes(self) -> Settings:
        if self.extra_query_keys.strip():
            # Imported here: only a configuration that names keys pays for the dictionary.
            from dicom_file_service.dicom.qido import extra_query_keys
            from dicom_file_service.errors import ServiceError

            try:
                extra_query_keys(self.extra_query_keys)
            except ServiceError as exc:
                raise ValueError(f"DICOM_FS_EXTRA_QUERY_KEYS: {exc.detail}") from None
        return self

    @model_validator(mode="after")
    def _urls_do_not_outlive_their_uploads(self) -> Settings:
        if self.presign_expiry_seconds > self.pending_upload_ttl_seconds:
            raise ValueError(
                "DICOM_FS_PRESIGN_EXPIRY_SECONDS must not exceed "
                "DICOM_FS_PENDING_UPLOAD_TTL_SECONDS: sweep would remove an upload whose URL "
                "is still valid"
            )
        return self

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'index.sqlite3').resolve()}"

    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return f"file://{(self.data_dir / 'blobs').resolve()}"

    def resolved_ohif_dir(self) -> Path:
        return self.ohif_dir if self.ohif_dir is not None else self.data_dir / "ohif"

    def resolved_scratch_dir(self) -> Path:
        return (self.scratch_dir or self.data_dir / "scratch").resolve()
