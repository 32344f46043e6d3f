"""``python -m dicom_file_service.cli``: the command, as the tests and the listener start it."""

from dicom_file_service.cli import main

if __name__ == "__main__":
    main()
