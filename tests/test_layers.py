"""The house's shape: imports only go down, inside curation too; the doors stay thin; functions stay readable.

- schemas <- curation <- training <- app; schemas needs nothing but pydantic.
- Inside curation: errors and osutil under everything, then store <- people <- similarity <-
  examples <- datasets <- insight, and demo (which loads a whole team) on top. No import circles.
- app/ (the CLI and the pages) starts no process, opens no write transaction and runs no SQL:
  those belong to a service both doors call.
- No folder holds more than 15 modules; no function is over 100 lines.
"""

import ast
import sys
from pathlib import Path

import pytest

from conftest import ROOT

LAYERS = ["schemas", "curation", "training", "app"]
CURATION = ["errors", "osutil", "store", "people", "similarity", "examples", "datasets", "insight", "demo"]
SOURCES = [p for layer in LAYERS for p in sorted((ROOT / layer).rglob("*.py"))]


def _is_module(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(path: Path) -> list[str]:
    """Every module a file imports (at the top or inside a function), as absolute dotted names.

    `from curation.similarity import minhash` names the module curation.similarity.minhash;
    `from curation.store import Store` names the package curation.store.
    """
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [f"{node.module}.{a.name}" if _is_module(f"{node.module}.{a.name}") else node.module for a in node.names]
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_only_go_down(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    wrong = [(str(p.relative_to(ROOT)), m) for p in sorted((ROOT / layer).rglob("*.py")) for m in imports_of(p)]
    assert [(f, m) for f, m in wrong if m.split(".")[0] in above] == []


def test_schemas_need_only_pydantic_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"pydantic", "schemas", "__future__"}
    files = sorted((ROOT / "schemas").rglob("*.py"))
    assert [(p.name, m) for p in files for m in imports_of(p) if m.split(".")[0] not in allowed] == []


def _room(module: str) -> str | None:
    """The curation sub-domain of a dotted module name (curation.examples.workflow -> examples)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "curation" and len(parts) > 1 else None


def test_inside_curation_lower_rooms_never_import_higher_ones():
    wrong = []
    for path in sorted((ROOT / "curation").rglob("*.py")):
        room = path.relative_to(ROOT / "curation").with_suffix("").parts[0]
        if room == "__init__":
            continue
        assert room in CURATION, f"{path} is in no known sub-domain; add it to CURATION in its place"
        for module in imports_of(path):
            other = _room(module)
            if other and other in CURATION and CURATION.index(other) > CURATION.index(room):
                wrong.append((str(path.relative_to(ROOT)), module))
    assert wrong == []


def test_no_import_circles():
    """Not even through imports inside functions (dedup and live once imported each other that way)."""
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p for p in SOURCES}
    graph = {m: sorted({i for i in imports_of(p) if i in modules and i != m}) for m, p in modules.items()}
    for name, imported in graph.items():  # a package's __init__ runs before any module in it
        parent = name.rsplit(".", 1)[0]
        graph[name] = [i for i in imported if not name.startswith(f"{i}.")] if parent in modules else imported
    done: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in trail:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*trail, nxt])
        done.add(node)

    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []


# ------------------------------------------------------------------------------------------ thin doors

# What only a service may do. os.execve (cli_serve becoming the Streamlit server) replaces the
# command's own process rather than starting one, so it is not listed.
PROCESS_CALLS = {"Popen", "run", "call", "check_call", "check_output", "system", "spawnv", "spawnl", "fork", "startfile"}
PROCESS_MODULES = {"subprocess", "multiprocessing", "concurrent.futures"}
SQL_ATTRIBUTES = {"execute", "executemany", "executescript", "query", "conn", "db", "write", "rows_where"}


def door_violations(path: Path) -> list[str]:
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            found += [
                f"line {node.lineno}: imports {n}" for n in names if n.split(".")[0] in {m.split(".")[0] for m in PROCESS_MODULES}
            ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "os" and node.attr in PROCESS_CALLS:
                found.append(f"line {node.lineno}: os.{node.attr}")
            elif node.attr in SQL_ATTRIBUTES and node.value.id in {"store", "held", "s"}:
                found.append(f"line {node.lineno}: {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr in SQL_ATTRIBUTES - {"write", "query"}:
            inner = node.value
            if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name | ast.Attribute):
                callee = inner.func.id if isinstance(inner.func, ast.Name) else inner.func.attr
                if callee in {"store", "open_store", "Store"}:
                    found.append(f"line {node.lineno}: {callee}(...).{node.attr}")
    return sorted(found, key=lambda f: int(f.split(":")[0].removeprefix("line ")))


@pytest.mark.parametrize("path", sorted((ROOT / "app").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_doors_start_no_process_open_no_write_and_run_no_sql(path):
    assert door_violations(path) == []


def test_the_door_check_catches_what_it_forbids(tmp_path):
    page = tmp_path / "page.py"
    page.write_text(
        "import subprocess\nfrom multiprocessing import Process\nimport os\nos.system('x')\n"
        "with store.write():\n    store.db['examples'].insert({})\nstore.conn.execute('DELETE FROM examples')\n"
        "open_store(db).db.execute('x')\n"
    )
    assert door_violations(page) == [
        "line 1: imports subprocess",
        "line 2: imports multiprocessing",
        "line 4: os.system",
        "line 5: store.write",
        "line 6: store.db",
        "line 7: store.conn",
        "line 8: open_store(...).db",
    ]


# ------------------------------------------------------------------------------------------ sizes


def test_no_folder_holds_more_than_15_modules():
    folders = {p.parent for p in SOURCES}
    crowded = {
        str(f.relative_to(ROOT)): n for f in folders if (n := len([p for p in f.glob("*.py") if p.name != "__init__.py"])) > 15
    }
    assert crowded == {}


def test_no_function_is_over_100_lines():
    long = []
    for path in [*SOURCES, *sorted((ROOT / "tests").rglob("*.py")), *sorted((ROOT / "bench").rglob("*.py"))]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 100:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)")
    assert long == []
