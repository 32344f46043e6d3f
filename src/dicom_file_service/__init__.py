"""dicom-file-service: stores DICOM files and serves their header attributes and renderings."""

__version__ = "0.1.0"
