"""Keyed pseudonyms: stable under one key, different under another, valid as UIDs and IDs."""

from __future__ import annotations

import re

from dicom_file_service.dicom.deid.engine import Request
from dicom_file_service.dicom.deid.pseudonyms import (
    MAX_OFFSET_DAYS,
    MIN_OFFSET_DAYS,
    Pseudonyms,
)


def test_the_same_original_gives_the_same_pseudonym_and_another_key_another() -> None:
    one, again, other = Pseudonyms(b"key one"), Pseudonyms(b"key one"), Pseudonyms(b"key two")
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    assert one.uid(uid) == again.uid(uid) != other.uid(uid)
    assert one.patient_id("PID1") == again.patient_id("PID1") != other.patient_id("PID1")
    assert one.uid(uid) != one.uid(uid + "1")
    assert one.patient_id("PID1") != one.patient_id("PID2")


def test_a_pseudonymous_uid_is_a_2_25_uid_and_a_patient_id_fits_lo() -> None:
    keys = Pseudonyms(b"k")
    for n in range(200):
        uid = keys.uid(f"1.2.3.{n}")
        assert re.fullmatch(r"2\.25\.(0|[1-9][0-9]*)", uid) and len(uid) <= 64
        assert re.fullmatch(r"[0-9A-F]{20}", keys.patient_id(str(n)))


def test_a_patients_dates_move_by_one_offset_in_range() -> None:
    keys = Pseudonyms(b"k")
    offsets = {keys.date_offset_days(f"P{n}") for n in range(300)}
    assert all(MIN_OFFSET_DAYS <= d <= MAX_OFFSET_DAYS for d in offsets)
    assert len(offsets) > 250  # spread, not one value
    assert keys.date_offset_days("P1") == Pseudonyms(b"k").date_offset_days("P1")


def test_another_request_gives_other_uids_but_the_same_patient_pseudonyms() -> None:
    basic, dated = Request(), Request(frozenset({"retain_longitudinal_modified_dates"}))
    named = Request(replace={"PatientName": "SUBJECT^ONE"})
    variants = [basic.variant, dated.variant, named.variant]
    assert variants[0] == "" and len(set(variants)) == 3
    assert Request(frozenset({"b", "a"})).variant == Request(frozenset({"a", "b"})).variant
    keys = [Pseudonyms(b"k", variant=v) for v in variants]
    assert len({k.uid("1.2.3") for k in keys}) == 3
    assert keys[1].uid("1.2.3") == Pseudonyms(b"k", variant=variants[1]).uid("1.2.3")
    assert len({k.patient_id("P1") for k in keys}) == 1
    assert len({k.date_offset_days("P1") for k in keys}) == 1
