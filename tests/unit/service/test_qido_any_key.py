"""QIDO-RS on keys without a column, on SQLite and PostgreSQL: the database's JSON filter and
the verdict on headers agree with what each instance holds; the scan's bound is said; extra
keys are matched on their index once reindexed, and exactly as on headers before."""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from dicom_file_service.errors import InvalidParameter
from dicom_file_service.service.context import ServiceContext
from dicom_file_service.service.extra_keys import reindex
from dicom_file_service.service.ingest import ingest_path
from dicom_file_service.service.qido import search
from dicom_file_service.settings import Settings
from tests.api.dicom_factory import copy_with_new_uid
from tests.datafiles import data_file


class _Urls:
    def retrieve_url(self, study: str, series: str | None = None, sop: str | None = None) -> str:
        return f"/studies/{study}"

    def bulk_data_base(self, study: str, series: str, sop: str) -> str:
        return "/bulk"


def _context(tmp_path: Path, database_url: str, **settings: Any) -> ServiceContext:
    return ServiceContext.create(
        Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            parse_processes=0,
            **settings,
        )
    )


@pytest.fixture
def stored(tmp_path: Path, database_url: str) -> dict[str, Any]:
    """Five instances of one patient: two studies; instance ``n`` has private value
    ``Scanner n``, body part CHEST for even ``n``, a referenced study ``1.2.n``, and the
    operator ``Müller^Jürgen`` on instance 4 only."""
    ctx = _context(tmp_path, database_url)
    patient = f"ANY-{uuid.uuid4().hex[:8]}"
    studies = [generate_uid(), generate_uid()]
    series = [generate_uid(), generate_uid()]
    sops = []
    for n in range(5):
        ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file("CT_small.dcm"))))
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.PatientID = patient
        ds.StudyInstanceUID, ds.SeriesInstanceUID = studies[n % 2], series[n % 2]
        ds[0x00091001].value = f"Scanner {n}"  # GEMS_IDEN_01's, a private LO
        if n % 2 == 0:
            ds.BodyPartExamined = "CHEST"
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
        ref.ReferencedSOPInstanceUID = f"1.2.{n}"
        ds.ReferencedStudySequence = Sequence([ref])
        if n == 4:
            ds.OperatorsName = "Müller^Jürgen"
        path = tmp_path / f"{n}.dcm"
        ds.save_as(path, enforce_file_format=True)
        ingest_path(ctx, path)
        sops.append(ds.SOPInstanceUID)
    ctx.close()
    return {"patient": patient, "studies": studies, "series": series, "sops": sops}


def _search(
    ctx: ServiceContext, level: str, patient: str, **params: str
) -> tuple[list[dict[str, Any]], list[str]]:
    pairs = [("PatientID", patient), *params.items()]
    result = search(ctx, pairs, level, {}, _Urls())  # type: ignore[arg-type]
    return result.matches, result.warnings


def _values(found: list[dict[str, Any]], tag: str) -> set[str]:
    return {item[tag]["Value"][0] for item in found}


def test_keys_without_a_column_match_at_every_level(
    stored: dict[str, Any], tmp_path: Path, database_url: str
) -> None:
    ctx = _context(tmp_path, database_url)
    patient, sops = stored["patient"], stored["sops"]

    def instances(**params: str) -> set[str]:
        found, warnings = _search(ctx, "instance", patient, **params)
        assert not warnings
        return _values(found, "00080018")

    try:
        assert instances(**{"00091001": "Scanner 3"}) == {sops[3]}
        assert instances(**{"00091001": "Scan*"}) == set(sops)
        assert instances(**{"00091001": "scanner 3"}) == set()
        assert instances(BodyPartExamined="CHEST") == {sops[0], sops[2], sops[4]}
        assert instances(ImageType="AXIAL") == set(sops)  # any of a multi-valued attribute
        assert instances(**{"00081110.00081155": "1.2.1,1.2.2"}) == {sops[1], sops[2]}
        assert instances(**{"ReferencedStudySequence.ReferencedSOPInstanceUID": "1.2.*"}) == set()
        assert instances(OperatorsName="müller*") == {sops[4]}  # a name, case-insensitive
        assert instances(OperatorsName="muller^jurgen", fuzzymatching="true") == {sops[4]}
        assert instances(OperatorsName="muller^jurgen") == set()
        both = {"00091001": "Scanner ?", "BodyPartExamined": "CHEST", "InstanceNumber": "1"}
        assert instances(**both) == {sops[0], sops[2], sops[4]}

        # A study or series matches when any of its instances does.
        found, _ = _search(ctx, "study", patient, **{"00091001": "Scanner 3"})
        assert _values(found, "0020000D") == {stored["studies"][1]}
        assert "00091001" in found[0]  # the key is returned (the first instance's value)
        found, _ = _search(ctx, "series", patient, OperatorsName="MÜLLER^JÜRGEN")
        assert _values(found, "0020000E") == {stored["series"][0]}
        found, _ = _search(ctx, "study", patient, BodyPartExamined="HEAD")
        assert found == []

        # includefield of each kind: returned, from the answering instance's header.
        found, _ = _search(
            ctx,
            "instance",
            patient,
            **{"00091001": "Scanner 2", "includefield": "00081110.00081155,BodyPartExamined"},
        )
        (hit,) = found
        assert hit["00091001"]["Value"] == ["Scanner 2"]
        assert hit["00180015"]["Value"] == ["CHEST"]
        assert hit["00081110"]["Value"][0]["00081155"]["Value"] == ["1.2.2"]

        with pytest.raises(InvalidParameter, match="NumberOfStudyRelatedInstances"):
            _search(ctx, "study", patient, NumberOfStudyRelatedInstances="5")
    finally:
        ctx.close()


def test_the_scan_is_bounded_and_says_when_the_bound_cut_the_answer(
    stored: dict[str, Any], tmp_path: Path, database_url: str
) -> None:
    ctx = _context(tmp_path, database_url, qido_max_scanned=3)
    patient, sops = stored["patient"], stored["sops"]
    try:
        found, warnings = _search(ctx, "instance", patient, BodyPartExamined="CHEST")
        assert _values(found, "00080018") == {sops[0], sops[2]}  # the fifth was not examined
        assert any("first 3 instances" in w and "BodyPartExamined" in w for w in warnings)
        # Paged within the bound: the pages neither overlap nor skip.
        first, warnings = _search(ctx, "instance", patient, **{"00091001": "S*", "limit": "2"})
        assert any("offset=2" in w for w in warnings)
        rest, _ = _search(
            ctx, "instance", patient, **{"00091001": "S*", "limit": "2", "offset": "2"}
        )
        assert _values(first + rest, "00080018") == set(sops[:3])
        # A page full before the bound was reached: no warning about the bound.
        found, warnings = _search(ctx, "instance", patient, **{"00091001": "S*", "limit": "1"})
        assert len(found) == 1 and not any("first 3" in w for w in warnings)
    finally:
        ctx.close()


def test_extra_keys_are_used_once_reindexed_and_match_as_headers_do(
    stored: dict[str, Any], tmp_path: Path, database_url: str
) -> None:
    keys = "BodyPartExamined,OperatorsName,00081110.00081155,00091001"
    ctx = _context(tmp_path, database_url, qido_max_scanned=3, extra_query_keys=keys)
    patient, sops = stored["patient"], stored["sops"]
    queries: list[dict[str, str]] = [
        {"BodyPartExamined": "CHEST"},
        {"OperatorsName": "müller*"},
        {"OperatorsName": "MULLER^JURGEN", "fuzzymatching": "true"},
        {"00081110.00081155": "1.2.4"},
        {"00091001": "Scanner 4"},
    ]
    try:
        before = [_search(ctx, "instance", patient, **q) for q in queries]
        assert all(any("first 3" in w for w in warnings) for _, warnings in before)
        report = reindex(ctx, batch_size=2, max_batches=1)
        assert (report.instances, report.complete) == (2, False)
        report = reindex(ctx, batch_size=2)  # resumes after the first batch
        assert report.complete and report.resumed_after > 0
        after = [_search(ctx, "instance", patient, **q) for q in queries]
        assert [w for _, w in after] == [[]] * len(queries)  # the index: nothing scanned
        assert [_values(f, "00080018") for f, _ in after] == [
            {sops[0], sops[2], sops[4]},
            {sops[4]},
            {sops[4]},
            {sops[4]},
            {sops[4]},
        ]
        found, warnings = _search(ctx, "study", patient, **{"00081110.00081155": "1.2.3"})
        assert _values(found, "0020000D") == {stored["studies"][1]} and not warnings
        assert reindex(ctx).instances == 0  # nothing left to do
    finally:
        ctx.close()
