"""The de-identification key: the configured secret, else one made once in the data dir."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from dicom_file_service.service.deidentify import deid_key
from dicom_file_service.settings import Settings


def test_the_key_is_made_once_and_kept_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    first = deid_key(settings)
    assert len(first) == 32
    assert deid_key(Settings(data_dir=tmp_path)) == first
    assert (tmp_path / "deid.key").read_bytes() == first
    assert deid_key(Settings(data_dir=tmp_path / "elsewhere")) != first


def test_a_configured_secret_wins_and_must_not_be_short(tmp_path: Path) -> None:
    secret = "a configured secret, long enough"
    settings = Settings(data_dir=tmp_path, deid_secret=SecretStr(secret))
    assert deid_key(settings) == secret.encode()
    assert not (tmp_path / "deid.key").exists()
    with pytest.raises(ValueError, match="at least 16"):
        Settings(data_dir=tmp_path, deid_secret=SecretStr("short"))
