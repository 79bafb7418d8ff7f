"""Imports only go down: schemas <- curation <- training <- app; schemas needs nothing but pydantic."""

import ast
import sys

import pytest

from conftest import ROOT

LAYERS = ["schemas", "curation", "training", "app"]


def imports_of(package: str) -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found += [(path.name, alias.name.split(".")[0]) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.append((path.name, node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", LAYERS)
def test_imports_only_go_down(package):
    above = set(LAYERS[LAYERS.index(package) + 1 :])
    assert [(f, m) for f, m in imports_of(package) if m in above] == []


def test_schemas_need_only_pydantic_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"pydantic", "schemas", "__future__"}
    assert [(f, m) for f, m in imports_of("schemas") if m not in allowed] == []
