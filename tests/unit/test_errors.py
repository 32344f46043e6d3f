"""The exception tree is one module, and its docstring draws all of it."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import dicom_file_service
from dicom_file_service import errors


def _all_modules() -> None:
    for info in pkgutil.walk_packages(dicom_file_service.__path__, "dicom_file_service."):
        if ".migrations" not in info.name:
            importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_service_error_is_defined_in_errors() -> None:
    _all_modules()
    elsewhere = {
        f"{c.__module__}.{c.__name__}"
        for c in _subclasses(errors.ServiceError)
        if c.__module__ != errors.__name__
    }
    assert not elsewhere


def test_the_tree_in_the_docstring_names_every_class() -> None:
    doc = errors.__doc__ or ""
    classes = [
        name
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, Exception) and cls.__module__ == errors.__name__
    ]
    assert len(classes) > 30
    assert [name for name in classes if name not in doc] == []
