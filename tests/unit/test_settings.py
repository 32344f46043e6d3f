"""Settings that contradict each other are refused at start-up, with the reason."""

from __future__ import annotations

import pydantic
import pytest

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
