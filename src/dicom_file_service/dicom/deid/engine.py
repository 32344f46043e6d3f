"""The Basic Application Level Confidentiality Profile applied to a data set (PS3.15 E.1),
with its options, at every depth.

Each attribute, in the data set and in every item of every sequence, gets the action Table
E.1-1 gives it under the chosen options (``dicom.deid.profile``; the table is data, not code).
What the table cannot say by row is decided here, once, by kind:

- **Combined actions** keep the attribute where the IOD may need it, so that a conformant
  input stays conformant without a module table per SOP class: X/Z becomes Z, X/D, Z/D and
  X/Z/D become D, X/Z/U* keeps the sequence with its UIDs replaced. None of these keeps an
  original value.
- **UIDs**: every UI value at any depth is replaced by its keyed pseudonym (U), except the
  standard's own (SOP classes, transfer syntaxes, coding schemes: pydicom's copy of PS3.6's
  registry), and except under ``retain_uids`` where the table says K.
- **Dates and times** the table does not list are treated as its dates are (Z; K with full
  dates retained; moved with modified dates). Moved dates go back by the patient's keyed
  offset of whole days, so intervals hold; times stay.
- **Person names** the table does not list are emptied.
- **Private attributes** and public ones the data dictionary does not know are removed; group
  lengths are dropped (the writer recomputes what it needs).
- **Clean (C)** on text replaces every identifying value the instance itself holds (names,
  IDs, accession and study numbers, addresses, dates) wherever it appears in the text; what
  cannot be recognised as identifying (a name the instance does not hold) stays. On a
  sequence, C cleans its items by the same table.

A Z writes an empty value, a D a dummy that differs from any real one ("ANONYMIZED", the date
19000101), with two exceptions PS3.15 leaves to the de-identifier: Patient ID becomes its keyed
pseudonym, and Patient's Name that pseudonym too (or the values the request gives), so that a
de-identified patient's studies still group together.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydicom import config as pydicom_config
from pydicom._uid_dict import UID_dictionary
from pydicom.datadict import dictionary_has_tag, dictionary_VR, repeater_has_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID

from dicom_file_service.dicom.deid.identifying import identifying_pattern
from dicom_file_service.dicom.deid.pixels import CannotClean, Region, blank_regions
from dicom_file_service.dicom.deid.profile import BASIC_PROFILE_CODE, OPTIONS, Profile
from dicom_file_service.dicom.deid.pseudonyms import Pseudonyms
from dicom_file_service.dicom.deid.safe_private import safe_private
from dicom_file_service.dicom.part10 import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

PATIENT_NAME, PATIENT_ID = 0x00100010, 0x00100020
BURNED_IN_ANNOTATION = 0x00280301
_DATE_VRS = ("DA", "DT", "TM")
_RESOLVED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U*", "X/Z/U": "U*"}
_DUMMY = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DS": "0",
    "DT": "19000101000000",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "TM": "000000",
    "UC": "ANONYMIZED",
    "UR": "urn:anonymized",
    "UT": "ANONYMIZED",
}
_NUMBERS = ("US", "SS", "UL", "SL", "FL", "FD", "SV", "UV", "AT")
_BINARY = ("OB", "OW", "OD", "OF", "OL", "OV", "UN")
_FREE_TEXT = ("LO", "LT", "SH", "ST", "UC", "UT")


"""Options the engine refuses rather than claim: the safe private attributes (Table E.3.10-1)
are not yet in the repository, nor is the blanking of pixel regions."""
OFFERED = frozenset(OPTIONS)


class Excluded(Exception):
    """The instance cannot be de-identified as asked (its pixels may show identity)."""


@dataclass(frozen=True)
class Request:
    """What to do: the options (PS3.15's names, ``profile.OPTIONS``) and values to write
    for Patient's Name and Patient ID instead of the pseudonym."""

    options: frozenset[str] = frozenset()
    replace: Mapping[str, str] = field(default_factory=dict)
    pixel_regions: tuple[Region, ...] = ()  # to blank, with clean_pixel_data

    @property
    def variant(self) -> str:
        """The request beyond the Basic Profile, written canonically ("" for the Basic
        Profile alone): the ``Pseudonyms.variant`` its UIDs are made under."""
        if not self.options and not self.replace:
            return ""
        given = ",".join(f"{k}={v}" for k, v in sorted(self.replace.items()))
        variant = f"{','.join(sorted(self.options))};{given}"
        if self.pixel_regions:
            variant += ";" + ",".join(":".join(map(str, r)) for r in self.pixel_regions)
        return variant


def deidentify(ds: Dataset, request: Request, pseudonyms: Pseudonyms, profile: Profile) -> Dataset:
    """``ds`` de-identified in place (and returned), its file meta made anew; ``Excluded``
    when its Burned In Annotation says YES and the pixels are not cleaned."""
    unknown = request.options - OPTIONS.keys()
    if unknown:
        raise ValueError(f"unknown options: {', '.join(sorted(unknown))}")
    cleaning = "clean_pixel_data" in request.options
    if cleaning != bool(request.pixel_regions):
        raise ValueError("clean_pixel_data and pixel regions go together")
    # pydicom's doubts about stored values (an over-long UID) are not this copy's to judge;
    # its validation mode is global but idempotent, as where files are parsed.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    if cleaning:
        try:
            blank_regions(ds, request.pixel_regions)
        except CannotClean as exc:
            raise Excluded(str(exc)) from exc
    elif str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES":
        raise Excluded("Burned In Annotation is YES: the pixels may show identity")
    run = _Run(ds, request, pseudonyms, profile)
    run.data_set(ds)
    run.patient(ds)
    run.record(ds)
    _new_file_meta(ds)
    return ds


class _Run:
    def __init__(
        self, ds: Dataset, request: Request, pseudonyms: Pseudonyms, profile: Profile
    ) -> None:
        self.options = request.options
        self.replace = request.replace
        self.pseudonyms = pseudonyms
        self.profile = profile
        self.original_patient_id = str(ds.get("PatientID", "") or "")
        self.offset = datetime.timedelta(days=pseudonyms.date_offset_days(self.original_patient_id))
        # Gathered before anything is changed, and only when some text may be cleaned.
        cleans = profile.cleans_text(request.options)
        self.identifying = identifying_pattern(ds) if cleans else None
        self.dates_moved = False
        self.keep_safe_private = "retain_safe_private" in request.options

    # ------------------------------------------------------------------ walking

    def data_set(self, ds: Dataset, within: str = "K") -> None:
        """Every attribute of ``ds``; ``within`` is what the sequence holding it asked of its
        items: K (the table decides), D (free text the table does not list is replaced by a
        dummy) or C (such text is cleaned)."""
        for tag in list(ds.keys()):
            self.element(ds, tag, within)
        if self.keep_safe_private:
            _remove_unused_creators(ds)

    def private(self, ds: Dataset, tag: BaseTag, within: str) -> None:
        """Retain Safe Private: a private attribute Table E.3.10-1 lists for its creator is
        kept, its UIDs mapped and its sequences' items de-identified like any other; every
        other is removed. Creators stay while their block keeps something."""
        if 0x0010 <= tag.element <= 0x00FF:
            return  # a private creator: judged once its block is (``data_set``)
        creator = ds.get((tag.group, tag.element >> 8)) if tag.element >= 0x1000 else None
        name = str(creator.value).strip() if creator is not None else ""
        vr = safe_private().get((tag.group, name, tag.element & 0xFF))
        if vr is None:
            del ds[tag]
            return
        element = ds[tag]
        if vr == "UI" or element.VR == "UI":
            text = (
                element.value.decode("ascii", "replace")
                if isinstance(element.value, bytes)
                else element.value
            )
            element.VR, element.value = "UI", self.uids(str(text).strip("\x00 "))
        elif element.VR == "SQ":
            for item in element.value:
                self.data_set(item, within)
        elif vr == "SQ":
            del ds[tag]  # a sequence read as unknown bytes cannot be looked into

    def element(self, ds: Dataset, tag: BaseTag, within: str) -> None:
        """One attribute. Decided on its tag and VR as read, so that what is removed, and what
        is kept unchanged (neither a UID nor a sequence), is never decoded: a CT slice's
        hundred private attributes cost a deletion each."""
        if tag.is_private and self.keep_safe_private and tag.element != 0x0000:
            self.private(ds, tag, within)
            return
        if tag.element == 0x0000 or tag.is_private or not _known(int(tag)):
            del ds[tag]  # group lengths, private and unknown attributes
            return
        vr = ds.get_item(tag).VR or _dictionary_vr(int(tag))  # None: read as implicit VR
        action = self.action(int(tag), vr, within)
        if action == "K" and vr not in ("UI", "SQ"):
            return  # kept as read
        element = ds[tag]
        if vr != element.VR:  # an ambiguous or implicit VR, resolved by decoding
            action = self.action(int(tag), element.VR, within)
        if action == "C" and element.VR in _BINARY:
            action = "X"  # a bitmap or binary value cannot be cleaned, only removed
        if action == "X":
            del ds[tag]
            if tag.group & 0xFF00 == 0x6000 and tag.element == 0x3000:
                _remove_group(ds, tag.group)  # an overlay without its data is no overlay
        elif element.VR == "SQ":
            self.sequence(element, action, within)
        elif action == "Z":
            element.value = self.empty(int(tag))
        elif action == "D":
            element.value = self.dummy(element)
        elif action in ("U", "U*"):
            element.value = self.uids(element.value)
        elif action == "C":
            element.value = self.cleaned(element)
        elif element.VR == "UI" and action != "K":
            element.value = self.uids(element.value)

    def action(self, tag: int, vr: str, within: str) -> str:
        rule = self.profile.rule(tag)
        if rule is not None:
            written = rule.action(self.options)
            return _RESOLVED.get(written, written)
        if vr in _DATE_VRS:
            if "retain_longitudinal_full_dates" in self.options:
                return "K"
            return "C" if "retain_longitudinal_modified_dates" in self.options else "Z"
        if vr == "UI":
            return "U"
        if vr == "PN":
            return "Z"
        if vr in _FREE_TEXT and within in ("D", "C"):
            return within
        return "K"

    def sequence(self, element: DataElement, action: str, within: str) -> None:
        """Z empties a sequence; any other action keeps its items, each de-identified, their
        unlisted free text dummied (D) or cleaned (C) as the sequence, or one holding it,
        asks."""
        if action == "Z":
            element.value = Sequence()
            return
        strictest = "D" if "D" in (action, within) else "C" if "C" in (action, within) else "K"
        for item in element.value:
            self.data_set(item, strictest)

    # ------------------------------------------------------------------ values

    def empty(self, tag: int) -> object:
        if tag == PATIENT_ID:
            return self.patient_id()
        if tag == PATIENT_NAME:
            return self.replace.get("PatientName") or self.patient_id()
        return None

    def dummy(self, element: DataElement) -> object:
        if element.VR == "UI":
            return self.uids(element.value)
        if element.VR in _NUMBERS:
            return 0
        if element.VR in _BINARY:
            return b"\x00\x00"
        return _DUMMY.get(element.VR, "ANONYMIZED")

    def uids(self, value: object) -> object:
        return _map_values(value, self.uid)

    def uid(self, uid: str) -> str:
        uid = uid.strip("\x00 ")
        if not uid or uid in UID_dictionary:
            return uid
        return self.pseudonyms.uid(uid)

    def patient_id(self) -> str:
        return self.replace.get("PatientID") or self.pseudonyms.patient_id(self.original_patient_id)

    def cleaned(self, element: DataElement) -> object:
        if element.VR in ("DA", "DT"):
            self.dates_moved = True
            return _map_values(element.value, self.moved)
        if element.VR == "TM":
            return element.value
        if element.VR == "UI":
            return self.uids(element.value)
        if element.VR == "PN":
            return self.patient_id() if element.value else element.value
        if isinstance(element.value, str | MultiValue | list):
            return _map_values(element.value, self.scrubbed)
        return element.value

    def moved(self, value: str) -> str:
        """A DA or DT value moved back by the patient's offset (its time part kept)."""
        text = str(value)
        if len(text) < 8 or not text[:8].isdigit():
            return text
        try:
            day = datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        except ValueError:
            return _DUMMY["DA"] + text[8:]
        return (day - self.offset).strftime("%Y%m%d") + text[8:]

    def scrubbed(self, value: str) -> str:
        if self.identifying is None:
            return str(value)
        return self.identifying.sub("*", str(value))

    # ------------------------------------------------------------------ the record

    def patient(self, ds: Dataset) -> None:
        """Patient ID and Patient's Name always hold the pseudonym (or the request's values),
        present even where the input had none: a research copy names its subject."""
        ds.PatientID = self.patient_id()
        ds.PatientName = self.replace.get("PatientName") or self.patient_id()

    def record(self, ds: Dataset) -> None:
        """What was done (PS3.15 E.1.2, PS3.3 C.7.1.1): Patient Identity Removed, the method
        in words and as codes (CID 7050), and what happened to the dates."""
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "PS3.15 E.1 Basic Application Confidentiality Profile"
        codes = [BASIC_PROFILE_CODE] + [
            (OPTIONS[o][1], OPTIONS[o][2])
            for o in sorted(self.options, key=lambda o: OPTIONS[o][1])
        ]
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        if "retain_longitudinal_full_dates" in self.options:
            ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
        elif "retain_longitudinal_modified_dates" in self.options:
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
        else:
            ds.LongitudinalTemporalInformationModified = "REMOVED"


def _dictionary_vr(tag: int) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:  # a repeating group's: its converted element says
        return "UN"


def _remove_unused_creators(ds: Dataset) -> None:
    """Private creators whose block holds nothing any more."""
    tags = [int(t) for t in ds.keys()]  # noqa: SIM118 - iterating a Dataset decodes
    for tag in tags:
        group, element = tag >> 16, tag & 0xFFFF
        if group % 2 and 0x0010 <= element <= 0x00FF:
            start = (group << 16) | (element << 8)
            if not any(start <= t < start + 0x100 for t in tags):
                del ds[tag]


def _known(tag: int) -> bool:
    return dictionary_has_tag(tag) or repeater_has_tag(tag)


def _remove_group(ds: Dataset, group: int) -> None:
    for element in list(ds):
        if element.tag.group == group:
            del ds[element.tag]


def _map_values(value: object, convert: Callable[[str], str]) -> object:
    if isinstance(value, MultiValue | list | tuple):
        return [convert(str(v)) for v in value]
    return convert(str(value)) if value not in (None, "") else value


def _new_file_meta(ds: Dataset) -> None:
    """The file meta of the copy: the new instance, the same transfer syntax, no sender, and
    an empty preamble (a preamble may hold anything)."""
    old = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if old is not None and "TransferSyntaxUID" in old:
        meta.TransferSyntaxUID = old.TransferSyntaxUID
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128
