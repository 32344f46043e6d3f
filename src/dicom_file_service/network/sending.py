"""Sending stored instances by C-STORE, byte for byte: one implementation, the service's
(``service.sending``), shared with the sending jobs; here for the listener's handlers."""

from __future__ import annotations

from dicom_file_service.service.sending import OutgoingInstance, accepted_syntaxes, install

__all__ = ["OutgoingInstance", "accepted_syntaxes", "install"]
