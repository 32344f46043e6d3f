"""What a QIDO-RS answer holds at each level (PS3.18 10.6.3), as tags of the stored header.

``dicom.qido`` says what a query matches; this module what the answer to it returns: each
level's attributes, those the service computes rather than reads, and ``includefield=all``.
"""

from __future__ import annotations

from dicom_file_service.dicom.qido import Level

# What each level answers with (PS3.18 Tables 10.6.3-3, -4 and -5), plus the UIDs of the
# levels above so that a client can address what it found, and the descriptions viewers show.
STUDY_RETURN = [
    "00080005",
    "00080020",
    "00080030",
    "00080050",
    "00080056",
    "00080061",
    "00080090",
    "00080201",
    "00081030",
    "00081190",
    "00100010",
    "00100020",
    "00100030",
    "00100040",
    "0020000D",
    "00200010",
    "00201206",
    "00201208",
]
SERIES_RETURN = [
    "00080005",
    "00080060",
    "00080201",
    "0008103E",
    "00081190",
    "0020000D",
    "0020000E",
    "00200011",
    "00201209",
    "00400244",
    "00400245",
    "00400275",
]
INSTANCE_RETURN = [
    "00080005",
    "00080016",
    "00080018",
    "00080056",
    "00080201",
    "00081190",
    "0020000D",
    "0020000E",
    "00200013",
    "00280008",
    "00280010",
    "00280011",
    "00280100",
]
RETURN: dict[Level, list[str]] = {
    "study": STUDY_RETURN,
    "series": SERIES_RETURN,
    "instance": INSTANCE_RETURN,
}
# Attributes the service computes rather than reads from a header.
COMPUTED = {"00080056", "00080061", "00081190", "00201206", "00201208", "00201209"}
# Those of a study that take queries of their own (its series, their modalities): computed
# only for an answer that returns one of them.
COUNTS = frozenset({"00080061", "00201206", "00201208"})
# ``includefield=all`` at study and series level: these modules' attributes (Patient, General
# Study, Patient Study; General Series) as far as the first instance of the study or series has
# them. At instance level ``all`` is the whole stored header.
ALL_STUDY = [
    "00080020",
    "00080030",
    "00080050",
    "00080090",
    "00081030",
    "00081032",
    "00081060",
    "00100010",
    "00100020",
    "00100021",
    "00100030",
    "00100032",
    "00100040",
    "00101010",
    "00101020",
    "00101030",
    "00102160",
    "00104000",
    "0020000D",
    "00200010",
    "00321060",
]
ALL_SERIES = [
    "00080021",
    "00080031",
    "00080060",
    "0008103E",
    "00081070",
    "00081111",
    "00180015",
    "00185100",
    "0020000E",
    "00200011",
    "00200060",
    "00400244",
    "00400245",
    "00400275",
]
