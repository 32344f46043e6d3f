"""Settings that contradict each other are refused at start-up, with the reason."""

from __future__ import annotations

import pydantic
import pytest

from dicom_file_service import settings as settings_module
from dicom_file_service.settings import Settings


def test_upload_urls_may_not_outlive_the_sweep_of_their_uploads() -> None:
    with pytest.raises(pydantic.ValidationError, match="PENDING_UPLOAD_TTL"):
        Settings(presign_expiry_seconds=7200, pending_upload_ttl_seconds=3600)


def test_a_signing_secret_must_not_be_trivially_short() -> None:
    with pytest.raises(pydantic.ValidationError):
        Settings(signing_secret="short")  # type: ignore[arg-type]


def test_the_aws_variables_are_read_without_our_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = Settings()
    assert settings.aws_endpoint_url == "http://127.0.0.1:9000"
    assert settings.aws_access_key_id == "key"
    assert settings.aws_secret_access_key is not None
    assert settings.aws_secret_access_key.get_secret_value() == "secret"
    assert settings.aws_region == "eu-west-1"


def test_pools_are_sized_from_the_worker_count(monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker per core (the default): render threads and parser processes per worker
    from the cores it has, connections for every thread, lone uploads parsed in thread."""
    monkeypatch.setattr(settings_module, "available_cores", lambda: 8)
    per_core = Settings(workers=8)
    assert per_core.render_workers == 2 and per_core.parse_processes == 1
    assert per_core.parse_single_uploads_in_thread
    assert per_core.db_pool_size == per_core.ingest_workers + per_core.render_workers + 2
    one = Settings(workers=1)
    assert one.render_workers == 8 and one.parse_processes == 4
    assert not one.parse_single_uploads_in_thread
    assert Settings().workers == 8
    told = Settings(workers=8, parse_processes=0, render_workers=3, db_pool_size=5)
    assert (told.parse_processes, told.render_workers, told.db_pool_size) == (0, 3, 5)
