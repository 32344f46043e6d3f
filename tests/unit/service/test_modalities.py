"""The registry of remote AEs and the DICOM door's policy, on a real index (SQLite and
PostgreSQL): what an entry may hold, who may find, move and get, and the configured entries
written over stored ones at start-up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dicom_file_service.errors import InvalidModality, ModalityNotFound
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.modalities import (
    OPERATIONS,
    Modality,
    apply_configured,
    by_ae_title,
    delete_modality,
    get_modality,
    list_modalities,
    parse_modality,
    permits,
    put_modality,
)
from dicom_file_service.settings import Settings

GOOD = {"ae_title": "CT_SCANNER", "host": "10.0.0.12", "port": 104}


def _context(tmp_path: Path, database_url: str, **settings: Any) -> ServiceContext:
    return ServiceContext.create(
        Settings(
            data_dir=tmp_path / "data", database_url=database_url, parse_processes=0, **settings
        )
    )


@pytest.fixture
def ctx(tmp_path: Path, database_url: str) -> Iterator[ServiceContext]:
    context = _context(tmp_path, database_url)
    yield context
    context.close()


def _put(ctx: ServiceContext, name: str, **body: Any) -> bool:
    return put_modality(ctx, parse_modality(name, body))


# What an entry may hold.


def test_a_good_entry_is_read_with_every_operation_by_default() -> None:
    m = parse_modality("ct-1", {**GOOD, "ae_title": "  CT_SCANNER "})
    assert m == Modality("ct-1", "CT_SCANNER", "10.0.0.12", 104, OPERATIONS)
    assert m.as_json() == {
        "name": "ct-1",
        "ae_title": "CT_SCANNER",
        "host": "10.0.0.12",
        "port": 104,
        "allow": ["echo", "store", "find", "move", "get"],
    }


def test_allow_drops_duplicates_and_keeps_the_operations_order() -> None:
    m = parse_modality("x", {**GOOD, "allow": ["move", "find", "move"]})
    assert m.allow == ("find", "move")
    assert parse_modality("x", {**GOOD, "allow": []}).allow == ()


@pytest.mark.parametrize(
    "host", ["pacs.example.org", "localhost", "orthanc_1", "::1", "192.168.1.1", "a" * 63]
)
def test_hosts_may_be_addresses_or_dns_names(host: str) -> None:
    assert parse_modality("x", {**GOOD, "host": host}).host == host


@pytest.mark.parametrize(
    ("name", "body", "field"),
    [
        ("bad name", GOOD, "name"),
        ("", GOOD, "name"),
        ("x" * 65, GOOD, "name"),
        ("ok", {**GOOD, "name": "other"}, "name"),
        ("ok", {**GOOD, "ae_title": "   "}, "ae_title"),
        ("ok", {**GOOD, "ae_title": ""}, "ae_title"),
        ("ok", {**GOOD, "ae_title": "A" * 17}, "ae_title"),
        ("ok", {**GOOD, "ae_title": "BACK\\SLASH"}, "ae_title"),
        ("ok", {**GOOD, "ae_title": "CTÉ"}, "ae_title"),
        ("ok", {**GOOD, "ae_title": "TAB\tX"}, "ae_title"),
        ("ok", {**GOOD, "ae_title": 7}, "ae_title"),
        ("ok", {k: v for k, v in GOOD.items() if k != "ae_title"}, "ae_title"),
        ("ok", {**GOOD, "host": ""}, "host"),
        ("ok", {**GOOD, "host": "has space"}, "host"),
        ("ok", {**GOOD, "host": "a" * 254}, "host"),
        ("ok", {**GOOD, "host": "-lead.example"}, "host"),
        ("ok", {**GOOD, "host": "x..y"}, "host"),
        ("ok", {**GOOD, "host": None}, "host"),
        ("ok", {**GOOD, "port": 0}, "port"),
        ("ok", {**GOOD, "port": 65536}, "port"),
        ("ok", {**GOOD, "port": "104"}, "port"),
        ("ok", {**GOOD, "port": True}, "port"),
        ("ok", {**GOOD, "port": 104.0}, "port"),
        ("ok", {k: v for k, v in GOOD.items() if k != "port"}, "port"),
        ("ok", {**GOOD, "allow": "find"}, "allow"),
        ("ok", {**GOOD, "allow": None}, "allow"),
        ("ok", {**GOOD, "allow": ["find", "print"]}, "print"),
        ("ok", {**GOOD, "aetitle": "X"}, "aetitle"),
    ],
)
def test_each_bad_field_is_refused_by_name(name: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidModality) as raised:
        parse_modality(name, body)
    assert field in raised.value.detail


# The registry on a real index.


def test_put_get_list_delete(ctx: ServiceContext) -> None:
    assert _put(ctx, "b", **GOOD) is True
    assert _put(ctx, "a", **{**GOOD, "ae_title": "OTHER"}) is True
    assert _put(ctx, "b", **{**GOOD, "port": 11112, "allow": ["find"]}) is False
    assert [m.name for m in list_modalities(ctx)] == ["a", "b"]
    assert get_modality(ctx, "b") == Modality("b", "CT_SCANNER", "10.0.0.12", 11112, ("find",))
    assert [m.name for m in by_ae_title(ctx, " CT_SCANNER ")] == ["b"]
    assert by_ae_title(ctx, "ct_scanner") == []  # titles are case-sensitive
    delete_modality(ctx, "b")
    with pytest.raises(ModalityNotFound):
        get_modality(ctx, "b")
    with pytest.raises(ModalityNotFound):
        delete_modality(ctx, "b")
    assert [m.name for m in list_modalities(ctx)] == ["a"]


def test_what_no_entry_can_be_called_is_not_found(ctx: ServiceContext) -> None:
    """Not sent to the database either (PostgreSQL refuses a NUL byte in text)."""
    for name in ("a\x00b", "x" * 300, ""):
        with pytest.raises(ModalityNotFound):
            get_modality(ctx, name)
        with pytest.raises(ModalityNotFound):
            delete_modality(ctx, name)
    assert by_ae_title(ctx, "CT\x00") == []
    assert not permits(ctx, "CT\x00", "127.0.0.1", "find")


# The policy.


def test_echo_and_store_are_open_to_anyone(ctx: ServiceContext) -> None:
    for op in ("echo", "store"):
        assert permits(ctx, "NOBODY", "203.0.113.9", op)


def test_an_unregistered_ae_may_not_query_or_retrieve(ctx: ServiceContext) -> None:
    for op in ("find", "move", "get"):
        assert not permits(ctx, "NOBODY", "127.0.0.1", op)


def test_a_registered_ae_may_do_only_what_it_is_allowed(ctx: ServiceContext) -> None:
    _put(ctx, "viewer", ae_title="VIEWER", host="127.0.0.1", port=104, allow=["find"])
    assert permits(ctx, "VIEWER", "127.0.0.1", "find")
    assert permits(ctx, "VIEWER  ", "127.0.0.1", "find")  # padded as on the wire
    assert not permits(ctx, "VIEWER", "127.0.0.1", "move")
    assert not permits(ctx, "VIEWER", "127.0.0.1", "get")


def test_only_from_the_registered_host(ctx: ServiceContext) -> None:
    _put(ctx, "viewer", ae_title="VIEWER", host="127.0.0.1", port=104)
    assert not permits(ctx, "VIEWER", "127.0.0.2", "find")
    assert not permits(ctx, "VIEWER", "not an address", "find")
    assert permits(ctx, "VIEWER", "::ffff:127.0.0.1", "find")  # IPv4-mapped is the same
    _put(ctx, "v6", ae_title="V6", host="::1", port=104)
    assert permits(ctx, "V6", "0:0:0:0:0:0:0:1", "get")
    assert not permits(ctx, "V6", "127.0.0.1", "get")


def test_a_host_name_is_resolved_when_asked(ctx: ServiceContext) -> None:
    _put(ctx, "local", ae_title="LOCAL", host="localhost", port=104, allow=["move"])
    assert permits(ctx, "LOCAL", "127.0.0.1", "move")
    assert not permits(ctx, "LOCAL", "10.1.2.3", "move")


def test_an_unresolvable_host_is_a_refusal(ctx: ServiceContext) -> None:
    _put(ctx, "gone", ae_title="GONE", host="no-such-host.invalid", port=104)
    assert not permits(ctx, "GONE", "127.0.0.1", "find")


def test_any_entry_of_a_shared_title_may_match(ctx: ServiceContext) -> None:
    _put(ctx, "far", ae_title="SHARED", host="192.0.2.1", port=104)
    _put(ctx, "near", ae_title="SHARED", host="127.0.0.1", port=104, allow=["get"])
    assert permits(ctx, "SHARED", "127.0.0.1", "get")
    assert not permits(ctx, "SHARED", "127.0.0.1", "find")  # near does not allow it
    assert permits(ctx, "SHARED", "192.0.2.1", "find")


# The configured entries.


def test_configured_entries_override_stored_ones_of_their_name(
    tmp_path: Path, database_url: str
) -> None:
    first = _context(tmp_path, database_url)
    _put(first, "ct", ae_title="OLD", host="10.0.0.1", port=104)
    _put(first, "kept", ae_title="KEPT", host="10.0.0.2", port=104)
    first.close()
    config = {
        "ct": {"ae_title": "NEW", "host": "127.0.0.1", "port": 4242, "allow": ["find"]},
        "mr": {"ae_title": "MR", "host": "localhost", "port": 104},
    }
    ctx = _context(tmp_path, database_url, modalities=json.dumps(config))
    try:
        assert apply_configured(ctx) == 2
        assert apply_configured(ctx) == 2  # idempotent
        assert {m.name: m for m in list_modalities(ctx)} == {
            "ct": Modality("ct", "NEW", "127.0.0.1", 4242, ("find",)),
            "kept": Modality("kept", "KEPT", "10.0.0.2", 104, OPERATIONS),
            "mr": Modality("mr", "MR", "localhost", 104, OPERATIONS),
        }
        assert permits(ctx, "NEW", "127.0.0.1", "find")
    finally:
        ctx.close()


def test_no_configured_entries_writes_nothing(ctx: ServiceContext) -> None:
    assert apply_configured(ctx) == 0
    assert list_modalities(ctx) == []


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"ct": {"ae_title": "CT", "host": "h", "port": 0}}', "'ct'"),
        ('{"ct": "CT@h:104"}', "'ct'"),
        ('{"bad name": {"ae_title": "CT", "host": "h", "port": 104}}', "'bad name'"),
    ],
)
def test_a_bad_configuration_is_a_value_error_naming_it(
    tmp_path: Path, database_url: str, value: str, named: str
) -> None:
    ctx = _context(tmp_path, database_url, modalities=value)
    try:
        with pytest.raises(ValueError, match="DICOM_FS_MODALITIES") as raised:
            apply_configured(ctx)
        assert named in str(raised.value)
        assert list_modalities(ctx) == []
    finally:
        ctx.close()
