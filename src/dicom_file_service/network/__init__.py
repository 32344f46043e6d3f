"""The DICOM network front door (DIMSE, PS3.7 / PS3.8): one more door over the service layer.

A C-STORE is an ingest exactly like STOW-RS, a C-FIND a search exactly like QIDO-RS, a C-MOVE
or C-GET retrieves what WADO-RS would; C-ECHO answers while the service is ready. Built on
pynetdicom, run by ``dicom-file-service dimse`` (and beside HTTP by ``serve``).
"""
