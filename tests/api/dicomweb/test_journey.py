"""One study's whole life through dicomweb-client alone, on every backend: stored with STOW-RS,
found with QIDO-RS, retrieved whole and by series, instance, frame, metadata, bulk data and
rendered, then deleted; every byte that comes back compared with what was stored."""

from __future__ import annotations

import io

import pydicom
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.api.dicom_factory import copy_with_new_uid
from tests.conftest import Server
from tests.datafiles import data_file

AS_STORED = (("application/dicom", "*"),)


def _stored_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def test_a_study_from_stow_to_delete(server: Server) -> None:
    web = DICOMwebClient(f"{server.base_url}/dicomweb")
    study, ct, mr = generate_uid(), generate_uid(), generate_uid()
    patient = f"JOURNEY-{study[-8:]}"
    datasets = []
    for name, series in (("CT_small.dcm", ct), ("CT_small.dcm", ct), ("MR_small.dcm", mr)):
        ds = pydicom.dcmread(io.BytesIO(copy_with_new_uid(data_file(name))))
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.PatientID = study, series, patient
        datasets.append(ds)
    sent = {ds.SOPInstanceUID: _stored_bytes(ds) for ds in datasets}
    answer = web.store_instances(datasets)
    assert len(answer.ReferencedSOPSequence) == 3

    (found,) = web.search_for_studies(search_filters={"PatientID": patient})
    assert found["00201208"]["Value"] == [3]
    assert {s["0020000E"]["Value"][0] for s in web.search_for_series(study)} == {ct, mr}
    assert len(web.search_for_instances(study, ct)) == 2

    def as_bytes(retrieved: list[Dataset]) -> dict[str, bytes]:
        return {ds.SOPInstanceUID: _stored_bytes(ds) for ds in retrieved}

    assert as_bytes(web.retrieve_study(study, media_types=AS_STORED)) == sent
    ct_sent = {d.SOPInstanceUID: sent[d.SOPInstanceUID] for d in datasets[:2]}
    assert as_bytes(web.retrieve_series(study, ct, media_types=AS_STORED)) == ct_sent
    first = datasets[0]
    one = web.retrieve_instance(study, ct, first.SOPInstanceUID, media_types=AS_STORED)
    assert _stored_bytes(one) == sent[first.SOPInstanceUID]

    (frame,) = web.retrieve_instance_frames(study, ct, first.SOPInstanceUID, [1])
    assert frame == first.PixelData
    metadata = web.retrieve_series_metadata(study, ct)
    assert {m["00080018"]["Value"][0] for m in metadata} == set(ct_sent)
    pixel_uri = next(
        m["7FE00010"]["BulkDataURI"]
        for m in metadata
        if m["00080018"]["Value"][0] == first.SOPInstanceUID
    )
    assert web.retrieve_bulkdata(pixel_uri) == [first.PixelData]
    png = web.retrieve_instance_rendered(
        study, ct, first.SOPInstanceUID, media_types=("image/png",)
    )
    assert Image.open(io.BytesIO(png)).size == (first.Columns, first.Rows)

    web.delete_study(study)
    assert web.search_for_studies(search_filters={"PatientID": patient}) == []
    assert web.search_for_instances(study) == []
