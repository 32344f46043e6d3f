"""Domain exceptions, each with a stable machine-readable ``code``: every error class of the
service is defined here, and nowhere else.

Every layer raises these (third-party errors are converted where they occur); the HTTP layer
maps them to problem documents through one table (``api/problems.py``), the CLI prints their
``detail``, and the DICOM network will map them to DIMSE statuses. The tree:

    ServiceError
    ├── BadRequest (4xx: the client sent something we cannot accept)
    │   ├── InvalidDicom > TooDeeplyNested, ParseTimeout, SopClassMismatch
    │   ├── SopClassNotSupported, EmptyUpload, MissingFileField, MissingIdentity
    │   ├── InvalidTag, InvalidParameter, MalformedBody > TruncatedBody
    │   ├── PayloadTooLarge, UnsupportedMediaType > TransferSyntaxNotSupported
    │   ├── NoPixelData, FrameOutOfRange, UndecodablePixelData, ImageTooLarge
    │   ├── StudyMismatch, NotAcceptable, InvalidModality, OptionRefused
    ├── NotFound > FileNotFound > BlobNotFound; TagNotFound, UploadNotFound, ModalityNotFound,
    │   JobNotFound, ResourceNotFound
    ├── DuplicateInstance
    ├── RequestTimeout, RangeNotSatisfiable
    ├── Forbidden > InvalidSignature (403: an expired, tampered or misused signed URL)
    ├── RemoteFailure (a remote AE unreachable, refusing or failing: a job's error, or an
    │   echo's answer; never an HTTP status of ours)
    └── Unavailable (503): StorageUnavailable, InsufficientStorage, ParserUnavailable,
        IndexUnavailable > CommitOutcomeUnknown, RenderTimeout, OhifInstallFailed (the CLI's)

    DuplicateKey (not a ServiceError: the index's signal to the service that a unique
    constraint refused a row; the service decides what it means, and no client sees it)
"""

from __future__ import annotations

import errno


class ServiceError(Exception):
    """Base of every error the service reports to a client."""

    code: str = "service_error"
    title: str = "Service error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail
        # The instance the error is about, where it is known (STOW-RS reports it).
        self.sop_class_uid: str | None = None
        self.sop_instance_uid: str | None = None

    def about(self, sop_class_uid: str, sop_instance_uid: str) -> None:
        """Name the instance this error is about."""
        self.sop_class_uid, self.sop_instance_uid = sop_class_uid, sop_instance_uid


class BadRequest(ServiceError):
    code = "bad_request"
    title = "Bad request"


class InvalidDicom(BadRequest):
    """The bytes are not a DICOM Part 10 file we can parse (or are truncated)."""

    code = "invalid_dicom"
    title = "Not a valid DICOM file"


class TooDeeplyNested(InvalidDicom):
    """Sequences nest deeper than the service stores (a hostile or broken file)."""

    code = "too_deeply_nested"
    title = "Sequences nest too deeply"


class ParseTimeout(InvalidDicom):
    """Parsing the file took longer than ingest allows (its parser process was stopped)."""

    code = "parse_timeout"
    title = "The file took too long to parse"


class SopClassMismatch(InvalidDicom):
    """The data set's SOP Class UID contradicts the file meta's (STOW-RS reason 0xA900)."""

    code = "sop_class_mismatch"
    title = "The data set does not match its SOP class"


class SopClassNotSupported(BadRequest):
    """A SOP class that is not for storage, e.g. Verification (STOW-RS reason 0x0122)."""

    code = "sop_class_not_supported"
    title = "Not a storage SOP class"


class EmptyUpload(BadRequest):
    code = "empty_upload"
    title = "Empty upload"


class MissingFileField(BadRequest):
    code = "missing_file_field"
    title = "Missing 'file' field"


class MissingIdentity(BadRequest):
    """SOP Instance / Study / Series Instance UID absent: the file cannot be indexed."""

    code = "missing_identity"
    title = "Missing identifying UIDs"


class InvalidTag(BadRequest):
    code = "invalid_tag"
    title = "Invalid DICOM tag selector"


class InvalidParameter(BadRequest):
    code = "invalid_parameter"
    title = "Invalid query parameter"


class MalformedBody(BadRequest):
    """The request body is not what its Content-Type says (e.g. broken multipart)."""

    code = "malformed_body"
    title = "Malformed request body"


class PayloadTooLarge(BadRequest):
    code = "payload_too_large"
    title = "Upload too large"


class UnsupportedMediaType(BadRequest):
    code = "unsupported_media_type"
    title = "Unsupported content type"


class TransferSyntaxNotSupported(UnsupportedMediaType):
    """The file's transfer syntax UID names something else (STOW-RS reason 0xC122)."""

    code = "transfer_syntax_not_supported"
    title = "Transfer syntax not supported"


class NoPixelData(BadRequest):
    code = "no_pixel_data"
    title = "No pixel data"


class FrameOutOfRange(BadRequest):
    code = "frame_out_of_range"
    title = "Frame out of range"


class UndecodablePixelData(BadRequest):
    """The pixel data cannot be decoded (unsupported transfer syntax, corrupt stream, ...)."""

    code = "undecodable_pixel_data"
    title = "Pixel data cannot be decoded"


class ImageTooLarge(BadRequest):
    """Decoding would exceed the configured pixel budget (protects the server's memory)."""

    code = "image_too_large"
    title = "Image too large to render"


class NotFound(ServiceError):
    code = "not_found"
    title = "Not found"


class FileNotFound(NotFound):
    code = "file_not_found"
    title = "File not found"


class TagNotFound(NotFound):
    code = "tag_not_found"
    title = "Attribute not present"


class DuplicateInstance(ServiceError):
    code = "duplicate_sop_instance"
    title = "SOP Instance already stored"


class RequestTimeout(ServiceError):
    """The client took longer than the configured limit to send its request."""

    code = "request_timeout"
    title = "Request took too long"


class RangeNotSatisfiable(ServiceError):
    code = "range_not_satisfiable"
    title = "Range not satisfiable"


class Unavailable(ServiceError):
    code = "unavailable"
    title = "Service unavailable"


class StorageUnavailable(Unavailable):
    code = "storage_unavailable"
    title = "Blob storage unavailable"


class InsufficientStorage(Unavailable):
    """The disk holding uploads, blobs or the index is full: nothing was stored; space freed
    makes the same request work (507)."""

    code = "insufficient_storage"
    title = "Insufficient storage"

    @classmethod
    def from_os_error(cls, exc: OSError, where: str) -> ServiceError | None:
        """The error for a full disk (ENOSPC, EDQUOT), None for any other failure."""
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return cls(f"{where} is full ({exc.strerror}): nothing was stored; free some space")
        return None


class ParserUnavailable(Unavailable):
    """A parser process died under an upload (the pool is made again): send it again."""

    code = "parser_unavailable"
    title = "The parser stopped"


class IndexUnavailable(Unavailable):
    code = "index_unavailable"
    title = "Index database unavailable"


class CommitOutcomeUnknown(IndexUnavailable):
    """The connection failed during COMMIT: the row may or may not be stored. Whatever the
    row would refer to must be kept (sweep settles it against the index later)."""

    code = "commit_outcome_unknown"
    title = "Index commit outcome unknown"


class OhifInstallFailed(Unavailable):
    """The OHIF viewer's build could not be fetched or prepared (``ohif install``)."""

    code = "ohif_install_failed"
    title = "The OHIF viewer could not be installed"


class Forbidden(ServiceError):
    code = "forbidden"
    title = "Forbidden"


class InvalidSignature(Forbidden):
    """A signed URL that is expired, tampered with, or used for another object or method."""

    code = "invalid_signature"
    title = "Invalid or expired signed URL"


class UploadNotFound(NotFound):
    """No object was put for a direct upload (or it expired and was swept)."""

    code = "upload_not_found"
    title = "Upload not found"


class StudyMismatch(BadRequest):
    """A STOW-RS part whose Study Instance UID is not the one the request's URL names."""

    code = "study_mismatch"
    title = "Instance outside the study"


class NotAcceptable(BadRequest):
    """Nothing the request's Accept header allows can be served (the detail says what can)."""

    code = "not_acceptable"
    title = "Not acceptable"


class TruncatedBody(MalformedBody):
    """A multipart body that ended inside a part: the parts before it were handled."""

    def __init__(self, handled: int) -> None:
        super().__init__(
            f"the multipart body ended before its closing boundary, after {handled} part(s)"
        )
        self.handled = handled


class RenderTimeout(Unavailable):
    """Decoding or rendering did not finish within its time limit (503: try again later,
    or ask for less)."""

    code = "render_timeout"
    title = "Rendering took too long"


class BlobNotFound(FileNotFound):
    """A blob store's key has no object. A FileNotFound itself: wherever it escapes, a stored
    file whose bytes are gone (deleted meanwhile, or lost by the store) is a 404, never a 500."""

    def __init__(self, key: str) -> None:
        super().__init__(
            "the file's stored bytes are gone (deleted meanwhile, or lost by the store)"
        )
        self.key = key


class InvalidModality(BadRequest):
    """A remote AE's registry entry with a field that cannot be used (the detail names it)."""

    code = "invalid_modality"
    title = "Invalid modality"


class ModalityNotFound(NotFound):
    """No remote AE is registered under that name."""

    code = "modality_not_found"
    title = "Modality not found"


class JobNotFound(NotFound):
    """No background job has that id."""

    code = "job_not_found"
    title = "Job not found"


class ResourceNotFound(NotFound):
    """A UID that names no stored study, series or instance."""

    code = "resource_not_found"
    title = "Resource not found"


class OptionRefused(BadRequest):
    """A de-identification option this door will not apply (the detail says why)."""

    code = "option_refused"
    title = "De-identification option refused"


class RemoteFailure(ServiceError):
    """A remote Application Entity could not be reached, refused the association, or
    answered with a failure (the detail says which, in words)."""

    code = "remote_failure"
    title = "Remote AE failure"


class DuplicateKey(Exception):
    """The index refused a row on a unique constraint (its message says which); the caller's
    transaction (or savepoint) is then unusable and must be rolled back."""
