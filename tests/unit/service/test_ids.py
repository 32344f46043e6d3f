"""Identifiers and keys: opaque, URL-safe, sharded over a fixed set of prefixes."""

from __future__ import annotations

from dicom_file_service.service import ids


def test_every_instance_key_falls_under_a_prepared_shard() -> None:
    shards = set(ids.instance_shards())
    assert len(shards) == 64 * 64
    for _ in range(2000):
        file_id = ids.new_file_id()
        assert ids.is_valid_file_id(file_id)
        assert ids.instance_key(file_id).rsplit("/", 1)[0] in shards
