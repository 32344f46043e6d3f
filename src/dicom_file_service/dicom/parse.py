"""Read and validate a stored DICOM file; capture its identity and its header as DICOM JSON.

The file may be gigabytes: the header is read with pydicom up to the pixel data, values larger
than 1 KiB are deferred (never loaded), and the pixel data element is validated by walking its
framing (defined length, or the items of an encapsulated sequence) without reading its value.
pydicom is lenient by design; an archive must not be: a value that runs past the end of the
file, an unterminated sequence, or a file that is not DICOM at all is refused with a precise
``InvalidDicom`` rather than stored half-readable.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

import pydicom
from pydicom import config as pydicom_config
from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import _read_file_meta_info
from pydicom.uid import UID

from dicom_file_service.dicom.dicom_json import BULK_THRESHOLD, bulk_data_uri, dataset_to_json
from dicom_file_service.errors import (
    InvalidDicom,
    MissingIdentity,
    ServiceError,
    SopClassMismatch,
    SopClassNotSupported,
    TransferSyntaxNotSupported,
)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_HEX8 = re.compile(r"^[0-9A-F]{8}$")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
_UNDEFINED = 0xFFFFFFFF
_ITEM, _SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
_IMPLICIT_LE, _EXPLICIT_LE, _EXPLICIT_BE = (
    "1.2.840.10008.1.2",
    "1.2.840.10008.1.2.1",
    "1.2.840.10008.1.2.2",
)
_MAX_UID = 64
DEFAULT_MAX_INFLATED = 64 * 1024 * 1024
_MAX_FRAMES = 2**31 - 1  # frames of 8 bytes at least could not fill more in 2**32 bytes
_DEFLATED = "1.2.840.10008.1.2.1.99"
# (0028,0002) Samples per Pixel, (0028,0004) Photometric Interpretation, (0028,0010) Rows,
# (0028,0011) Columns, (0028,0100) Bits Allocated: present only with pixel data (PS3.3 C.7.6.3).
_IMAGE_PIXEL_KEYS = ("00280002", "00280004", "00280010", "00280011", "00280100")


@dataclass(frozen=True)
class ParsedInstance:
    """What the index keeps of a file: identity, a few query fields, the whole header."""

    sop_instance_uid: str
    series_instance_uid: str
    study_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient_id: str | None
    patient_name: str | None
    modality: str | None
    study_date: str | None
    number_of_frames: int
    has_pixel_data: bool
    header: dict[str, Any]
    bulk_lengths: dict[str, int]
    # Where each frame of encapsulated multi-frame pixel data lies, as pydicom's extended
    # offsets (PS3.5 A.4, (7FE0,0001) Extended Offset Table and (7FE0,0002) its lengths):
    # offsets from the first fragment's item tag, then lengths, each "<Q" packed; None when
    # frames and fragments are not one to one (pydicom then follows the Basic Offset Table).
    frame_table: bytes | None = None
    # What is odd about the file but did not stop it being stored (STOW-RS WarningReason).
    warnings: tuple[str, ...] = ()


def parse_file(
    path: str | os.PathLike[str],
    *,
    bulk_data_uri_prefix: str,
    max_inflated_bytes: int = DEFAULT_MAX_INFLATED,
) -> ParsedInstance:
    """Validate the file at ``path`` and capture what the index needs. Raises InvalidDicom.

    pydicom reads lazily, so its complaints about malformed data surface wherever an element
    is first touched: an exception raised inside pydicom becomes InvalidDicom. One raised in
    our own code is a bug of ours and is let through, so that tests (the fuzz test above all)
    find it instead of it hiding as a 422; our byte-level checks report bad bytes themselves.
    """
    try:
        return _parse(path, bulk_data_uri_prefix, max_inflated_bytes)
    except ServiceError:  # ours, and precise already
        raise
    except Exception as exc:
        if not _raised_in_pydicom(exc):
            raise
        raise InvalidDicom(f"the file cannot be parsed as DICOM: {_reason(exc)}") from exc


_PYDICOM_DIR = os.path.dirname(pydicom.__file__) + os.sep


def _raised_in_pydicom(exc: BaseException) -> bool:
    """Whether the innermost Python frame of the exception is pydicom's (a C function such as
    ``struct.unpack`` or ``zlib`` called by pydicom counts as pydicom's)."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(_PYDICOM_DIR)


IN_MEMORY_BYTES = 4 * 1024 * 1024
"""Files up to this size are read whole and parsed from memory (bounded: one per parse)."""


def _parse(
    path: str | os.PathLike[str], bulk_data_uri_prefix: str, max_inflated_bytes: int
) -> ParsedInstance:
    size = os.path.getsize(path)
    # pydicom's complaints about odd values are not our errors. Its validation mode is global
    # but idempotent; ``warnings.catch_warnings`` is not thread-safe, so it is not used here.
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    with open(path, "rb") as on_disk:
        # pydicom asks its file for its position at every element, and a file's ``tell`` is
        # a system call (a quarter of a CT slice's parse); a small file is parsed from memory.
        f: BinaryIO = io.BytesIO(on_disk.read()) if size <= IN_MEMORY_BYTES else on_disk
        _refuse_deflate_bombs(f, size, max_inflated_bytes)
        ds = _read_header(f, size)
        if _is_deflated(ds):
            ds, pixel = _read_deflated(f)
        elif f.tell() < size:
            pixel = _check_pixel_element(f, ds, size)
            _check_trailing_elements(f, ds, size)
        else:
            pixel = None
            _check_dataset_end(ds, size)
        _check_deferred_values(ds, size)
        try:
            header, bulk_lengths = dataset_to_json(ds, bulk_data_uri_prefix)
        except InvalidDicom:
            raise
        except Exception as exc:  # a value pydicom read but cannot convert
            raise InvalidDicom(f"the header cannot be read: {_reason(exc)}") from exc
    if pixel is None and any(k in header for k in _IMAGE_PIXEL_KEYS):
        raise InvalidDicom(
            "the file describes an image (Image Pixel module: Rows, Columns, ...) but ends "
            "before its Pixel Data (7FE0,0010): it is truncated"
        )
    fragments: list[tuple[int, int]] = []
    if pixel is not None:
        tag, vr, length, fragments = pixel
        key = f"{tag:08X}"
        header[key] = {"vr": vr, "BulkDataURI": bulk_data_uri(bulk_data_uri_prefix, key)}
        bulk_lengths[key] = length
    instance = _instance(ds, header, bulk_lengths, has_pixels=pixel is not None)
    table = _frame_table(fragments, instance.number_of_frames)
    return dataclasses.replace(instance, frame_table=table) if table else instance


_MAX_FRAME_TABLE = 1_000_000


def _frame_table(items: list[tuple[int, int]], frames: int) -> bytes | None:
    """Extended offsets of frames that are one fragment each (``items`` starts with the
    Basic Offset Table's item)."""
    fragments = items[1:]
    if frames < 2 or len(fragments) != frames or frames > _MAX_FRAME_TABLE:
        return None
    first = fragments[0][0]
    offsets = [pos - first for pos, _ in fragments]
    lengths = [length for _, length in fragments]
    return struct.pack(f"<{frames}Q", *offsets) + struct.pack(f"<{frames}Q", *lengths)


def _refuse_deflate_bombs(f: BinaryIO, size: int, limit: int) -> None:
    """A deflated data set is inflated whole by pydicom (at ingest, and again at render): its
    inflated size is measured first, in constant memory, and a file that inflates past
    ``limit`` is refused before anything holds it (a few MB can inflate to gigabytes)."""
    f.seek(128)
    if size < 132 or f.read(4) != b"DICM":
        f.seek(0)
        return
    try:
        meta = _read_file_meta_info(f)
    except Exception:  # a broken meta group: the header read reports it precisely
        f.seek(0)
        return
    if str(meta.get("TransferSyntaxUID", "")) != _DEFLATED:
        f.seek(0)
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    inflated = 0
    try:
        while (chunk := f.read(1024 * 1024)) and not inflater.eof:
            while chunk and not inflater.eof:
                out = inflater.decompress(chunk, 1024 * 1024)
                inflated += len(out)
                if inflated > limit:
                    raise InvalidDicom(
                        f"the deflated data set inflates to more than {limit} bytes, the "
                        "limit (setting DICOM_FS_MAX_INFLATED_BYTES): not stored"
                    )
                if not out and inflater.unconsumed_tail == chunk:
                    break  # no progress: the stream wants what does not follow
                chunk = inflater.unconsumed_tail
    except zlib.error as exc:
        raise InvalidDicom(f"the deflated data set cannot be inflated: {exc}") from exc
    f.seek(0)


def _read_header(f: BinaryIO, size: int) -> Dataset:
    if size < 8:
        raise InvalidDicom(f"the file is only {size} bytes long: not a DICOM file")
    f.seek(128)
    has_preamble = size >= 132 and f.read(4) == b"DICM"
    f.seek(0)
    try:
        ds = dcmread(f, force=not has_preamble, stop_before_pixels=True, defer_size=BULK_THRESHOLD)
    except InvalidDicomError as exc:
        raise InvalidDicom(f"not a DICOM file: {_reason(exc)}") from exc
    except (EOFError, struct.error) as exc:
        raise InvalidDicom("the file is truncated: it ends inside the header") from exc
    except Exception as exc:  # pydicom raises many kinds on malformed input
        raise InvalidDicom(f"the header cannot be parsed: {_reason(exc)}") from exc
    if has_preamble and len(ds) == 0:
        raise InvalidDicom(
            "the file has a DICOM preamble and file meta information but no dataset after "
            "it: it is truncated"
        )
    if not has_preamble and (len(ds) == 0 or "SOPInstanceUID" not in ds):
        raise InvalidDicom(
            "not a DICOM file: no 128-byte preamble followed by 'DICM', and the bytes do not "
            "parse as a DICOM dataset"
        )
    return ds


def _is_deflated(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return meta is not None and str(meta.get("TransferSyntaxUID", "")) == _DEFLATED


def _read_deflated(
    f: BinaryIO,
) -> tuple[Dataset, tuple[int, str, int, list[tuple[int, int]]] | None]:
    """Deflated files can't be read by offset: pydicom inflates them whole (they are small)."""
    f.seek(0)
    try:
        ds = dcmread(f, defer_size=None)
        for tag in _PIXEL_TAGS:
            if tag in ds:
                elem = ds[tag]
                return ds, (tag, elem.VR, len(elem.value or b""), [])
    except Exception as exc:  # zlib and pydicom errors on a corrupt deflated stream
        raise InvalidDicom(f"the deflated dataset cannot be inflated: {_reason(exc)}") from exc
    return ds, None


def _check_dataset_end(ds: Dataset, size: int) -> None:
    """pydicom silently drops a final element cut inside its header: the bytes must add up.

    Elements lie in ascending tag order (PS3.5 7.1), so the last one must end the file.
    """
    keys = list(ds.keys())
    if not keys:
        return
    raw = ds.get_item(keys[-1], keep_deferred=True)
    tell, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    if tell is None or length is None:
        return  # already converted by pydicom: its extent is not recorded
    if length == _UNDEFINED:
        if raw.value is None:
            return  # deferred: its end is not known without reading it
        end = tell + len(raw.value) + 8  # the value, then its delimitation item
    else:
        end = tell + length
    if end < size:
        raise InvalidDicom(
            f"the file ends with {size - end} byte(s) that are not a complete element: "
            "it is truncated"
        )


@dataclass(frozen=True)
class _ElementHeader:
    tag: int
    vr: str | None  # None in implicit VR
    length: int
    value_at: int  # file offset of the value


_LONG_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN", "UT", "SQ", "UC", "UR"})


def _encoding(ds: Dataset) -> tuple[bool, str]:
    """(implicit VR?, struct byte-order character) of the dataset as read."""
    implicit, little = ds.original_encoding
    return bool(implicit), "<" if little is not False else ">"


def _read_element_header(f: BinaryIO, pos: int, implicit: bool, endian: str) -> _ElementHeader:
    """The tag, VR and length of the element at ``pos`` (PS3.5 7.1.1–7.1.3)."""
    f.seek(pos)
    head = f.read(8)
    if len(head) < 8:
        raise InvalidDicom("the file is truncated: it ends inside an element header")
    group, element = struct.unpack(endian + "HH", head[:4])
    tag = (group << 16) | element
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        return _ElementHeader(tag, None, length, pos + 8)
    vr = head[4:6].decode("ascii", "replace")
    if vr in _LONG_VRS:
        more = f.read(4)
        if len(more) < 4:
            raise InvalidDicom("the file is truncated: it ends inside an element header")
        (length,) = struct.unpack(endian + "I", more)
        return _ElementHeader(tag, vr, length, pos + 12)
    (length,) = struct.unpack(endian + "H", head[6:8])
    return _ElementHeader(tag, vr, length, pos + 8)


def _check_trailing_elements(f: BinaryIO, ds: Dataset, size: int) -> None:
    """Elements after the pixel data (padding, signatures) must lie wholly inside the file."""
    pos = f.tell()
    implicit, endian = _encoding(ds)
    while pos < size:
        head = _read_element_header(f, pos, implicit, endian)
        if head.length == _UNDEFINED:
            return  # a sequence after the pixel data: not walked, pydicom never reads it
        if head.value_at + head.length > size:
            raise InvalidDicom("the file is truncated: its last element runs past the end")
        pos = head.value_at + head.length


def _check_deferred_values(ds: Dataset, size: int) -> None:
    """A deferred (large) value must lie wholly inside the file; inline ones were read whole."""
    for tag in list(ds.keys()):
        raw: Any = ds.get_item(tag, keep_deferred=True)
        if raw is None or not hasattr(raw, "value_tell"):
            continue  # converted by pydicom already, so read whole
        length = raw.length
        if length == _UNDEFINED:
            continue
        if raw.value is None and raw.value_tell + length > size:
            raise InvalidDicom(
                f"the file is truncated: element ({tag >> 16:04X},{tag & 0xFFFF:04X}) declares "
                f"{length} bytes but the file ends {raw.value_tell + length - size} bytes short"
            )
        if raw.value is not None and len(raw.value) < length:
            raise InvalidDicom(
                f"the file is truncated inside element ({tag >> 16:04X},{tag & 0xFFFF:04X})"
            )


def _check_pixel_element(
    f: BinaryIO, ds: Dataset, size: int
) -> tuple[int, str, int, list[tuple[int, int]]] | None:
    """Walk the pixel data element's framing; returns (tag, VR, value length, items) or
    None; ``items`` are the (position, length) of each item of encapsulated pixel data."""
    start = f.tell()
    implicit, endian = _encoding(ds)
    head = _read_element_header(f, start, implicit, endian)
    if head.tag not in _PIXEL_TAGS:
        f.seek(start)
        return None
    tag, length, value_at = head.tag, head.length, head.value_at
    vr = head.vr or (_pixel_vr(ds) if tag == 0x7FE00010 else dictionary_VR(tag))
    if length != _UNDEFINED:
        if value_at + length > size:
            raise InvalidDicom(
                f"the file is truncated: Pixel Data declares {length} bytes but only "
                f"{size - value_at} remain"
            )
        _check_pixel_size(ds, length)
        f.seek(value_at + length)
        return tag, vr, length, []
    items: list[tuple[int, int]] = []
    walked = _walk_encapsulated(f, value_at, size, endian, items)
    f.seek(value_at + walked + 8)
    return tag, vr, walked, items


def _walk_encapsulated(
    f: BinaryIO, at: int, size: int, endian: str, items: list[tuple[int, int]]
) -> int:
    """Follow the items of encapsulated pixel data to its Sequence Delimitation Item,
    noting each item's (position, length) in ``items``."""
    pos = at
    while True:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            raise InvalidDicom(
                "the file is truncated: the encapsulated pixel data has no sequence delimiter"
            )
        group, element, length = struct.unpack(endian + "HHI", head)
        tag = (group << 16) | element
        if tag == _SEQ_DELIM:
            return pos - at
        if tag != _ITEM or length == _UNDEFINED:
            raise InvalidDicom(
                f"the encapsulated pixel data is malformed at byte {pos}: expected an item "
                f"tag (FFFE,E000), found ({group:04X},{element:04X})"
            )
        items.append((pos, length))
        pos += 8 + length
        if pos > size:
            raise InvalidDicom(
                "the file is truncated: an encapsulated pixel data fragment runs past the end"
            )


def _pixel_vr(ds: Dataset) -> str:
    bits = ds.get("BitsAllocated", 16)
    return "OB" if isinstance(bits, int) and bits <= 8 else "OW"


def _check_pixel_size(ds: Dataset, length: int) -> None:
    """Native pixel data shorter than its attributes say cannot be rendered: refuse it now."""
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        bits = int(ds.BitsAllocated)
        spp = int(ds.get("SamplesPerPixel", 1) or 1)
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (AttributeError, TypeError, ValueError):
        return  # without these the image is not renderable anyway; the renderer says so
    expected_bits = rows * cols * spp * frames * bits
    if spp == 3 and _photometric(ds) in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        # Native 4:2:2: two luminance and one pair of chrominance samples per two pixels,
        # so two thirds of three samples per pixel (PS3.3 C.7.6.3.1.2).
        expected_bits = expected_bits // 3 * 2
    expected = (expected_bits + 7) // 8
    if length + 1 < expected:
        raise InvalidDicom(
            f"Pixel Data holds {length} bytes but Rows, Columns, Samples per Pixel, Number of "
            f"Frames and Bits Allocated call for {expected}: the file is truncated or corrupt"
        )


def _photometric(ds: Dataset) -> str:
    return str(ds.get("PhotometricInterpretation", "") or "").strip().upper()


def _instance(
    ds: Dataset, header: dict[str, Any], bulk_lengths: dict[str, int], *, has_pixels: bool
) -> ParsedInstance:
    missing = [
        name
        for name, key in (
            ("SOP Instance UID (0008,0018)", "00080018"),
            ("Study Instance UID (0020,000D)", "0020000D"),
            ("Series Instance UID (0020,000E)", "0020000E"),
        )
        if not _first(header, key)
    ]
    if missing:
        raise MissingIdentity(
            f"the file has no {', '.join(missing)}: it cannot be stored without its identity"
        )
    sop = _uid(header, "00080018", "SOP Instance UID")
    study = _uid(header, "0020000D", "Study Instance UID")
    series = _uid(header, "0020000E", "Series Instance UID")
    sop_class = _first(header, "00080016") or _first(header, "00020002") or ""
    ts = _first(header, "00020010") or _inferred_syntax(ds)
    _check_classes(header, str(sop_class).strip(), str(ts).strip(), sop)
    frames = 0
    if has_pixels:
        try:
            frames = max(1, int(str(_first(header, "00280008") or 1).strip()))
        except ValueError:
            frames = 1
        if frames > _MAX_FRAMES:
            raise InvalidDicom(
                f"Number of Frames (0028,0008) {frames} is more than any file can hold "
                f"(at most {_MAX_FRAMES})"
            )
    name = _first(header, "00100010")
    patient_name = name.get("Alphabetic") if isinstance(name, dict) else None
    warnings = []
    meta_sop = str(_first(header, "00020003") or "").strip().rstrip("\x00")
    if meta_sop and meta_sop != sop:
        warnings.append(
            f"the file meta's Media Storage SOP Instance UID (0002,0003) {meta_sop[:64]} is not "
            f"the data set's SOP Instance UID (0008,0018) {sop}: stored under the data set's"
        )
    return ParsedInstance(
        warnings=tuple(warnings),
        sop_instance_uid=sop,
        series_instance_uid=series,
        study_instance_uid=study,
        sop_class_uid=str(sop_class)[:_MAX_UID],
        transfer_syntax_uid=str(ts)[:_MAX_UID],
        patient_id=_text(_first(header, "00100020"), 64),
        patient_name=_text(patient_name, 324),
        modality=_text(_first(header, "00080060"), 16),
        study_date=_text(_first(header, "00080020"), 8),
        number_of_frames=frames,
        has_pixel_data=has_pixels,
        header=header,
        bulk_lengths=bulk_lengths,
    )


def _check_classes(header: dict[str, Any], sop_class: str, ts: str, sop: str) -> None:
    """The SOP class is one for storage and agrees with the file meta; the transfer syntax
    UID names a transfer syntax. UIDs pydicom does not know (private ones) are accepted."""
    meta_class = str(_first(header, "00020002") or "").strip().rstrip("\x00")
    if meta_class and sop_class and meta_class != sop_class.rstrip("\x00"):
        error: ServiceError = SopClassMismatch(
            f"the data set's SOP Class UID (0008,0016) {sop_class[:64]} is not the file "
            f"meta's Media Storage SOP Class UID (0002,0002) {meta_class[:64]}"
        )
    elif _known_as(sop_class) not in (None, "SOP Class") or (
        _known_as(sop_class) == "SOP Class" and "Storage" not in UID(sop_class).name
    ):
        error = SopClassNotSupported(
            f"SOP Class UID {sop_class} is {UID(sop_class).name}, not a storage SOP class"
        )
    elif _known_as(ts) not in (None, "Transfer Syntax"):
        error = TransferSyntaxNotSupported(
            f"Transfer Syntax UID (0002,0010) {ts} is {UID(ts).name}, not a transfer syntax"
        )
    else:
        return
    error.about(sop_class[:64], sop)
    raise error


def _known_as(uid: str) -> str | None:
    """The kind pydicom's UID dictionary gives ``uid`` ("SOP Class", ...), None if unknown."""
    found = UID(uid.rstrip("\x00"))
    return str(found.type) if found.name != str(found) and found.type else None


def _first(header: dict[str, Any], key: str) -> Any:
    values = header.get(key, {}).get("Value")
    return values[0] if values else None


def _uid(header: dict[str, Any], key: str, name: str) -> str:
    value = str(_first(header, key)).strip().rstrip("\x00")
    if len(value) > _MAX_UID or not _UID.match(value):
        raise InvalidDicom(f"{name} {value[:80]!r} is not a valid UID (digits and dots, ≤ 64)")
    return value


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text[:limit] if text else None


def _inferred_syntax(ds: Dataset) -> str:
    implicit, little = ds.original_encoding
    if implicit:
        return _IMPLICIT_LE
    return _EXPLICIT_LE if little is not False else _EXPLICIT_BE


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]
