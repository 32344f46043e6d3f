"""Migrations are frozen: none imports the package, whose code changes after they are written.

A migration that called, say, ``dicom.query_keys`` would do something else on a fresh database
once that module changed; each carries its own copy of what it needs instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import dicom_file_service

VERSIONS = Path(dicom_file_service.__file__).parent / "index" / "migrations" / "versions"
PACKAGE = dicom_file_service.__name__


def _migrations() -> list[Path]:
    return sorted(VERSIONS.glob("*.py"))


def _imports_of_the_package(source: str) -> list[str]:
    """Each import (statement, or by name to importlib / __import__) of the package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level or module.split(".")[0] == PACKAGE:
                found.append("." * node.level + module)
        elif (  # import_module("dicom_file_service...")
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.split(".")[0] == PACKAGE
        ):
            found.append(node.value)
    return found


def test_there_are_migrations_to_check() -> None:
    assert len(_migrations()) >= 5


@pytest.mark.parametrize("path", _migrations(), ids=lambda p: p.name)
def test_no_migration_imports_the_package(path: Path) -> None:
    imports = _imports_of_the_package(path.read_text())
    assert not imports, f"{path.name} imports {imports}: copy what it needs into it instead"


@pytest.mark.parametrize(
    "source",
    [
        "from dicom_file_service.dicom.query_keys import query_keys",
        "import dicom_file_service.dicom.header_index as h",
        "def f():\n    from dicom_file_service import dicom",
        "from ..tables import instances",
        "importlib.import_module('dicom_file_service.dicom.query_keys')",
    ],
)
def test_the_check_sees_every_form_of_import(source: str) -> None:
    assert _imports_of_the_package(source)
