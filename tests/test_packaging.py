"""A non-editable install works: the wheel holds every module, the app's pages and the data the code reads.

The package list in pyproject.toml is written out (the sample data ships as `goldsmith_sample_data`),
so a new subpackage left off it would be missing from every install but a checkout; this builds the
real wheel, installs it into an empty folder and loads the demo from there, away from the checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds, from a copy of the checkout (building in place would leave build/ in it)."""
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "goldsmith"
    skip = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "demo", "runs", "snapshots", "__pycache__", ".*cache")
    shutil.copytree(ROOT, source, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    [found] = out.glob("goldsmith-*.whl")
    return found


def tracked(pattern: str) -> list[str]:
    listed = subprocess.run(["git", "ls-files", pattern], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return listed.split()


def test_the_wheel_holds_every_module_page_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    code = [f for layer in ("schemas", "curation", "training", "app") for f in tracked(f"{layer}/*.py")]
    assert code and [f for f in code if f not in names] == []
    data = [f for f in tracked("sample_data/*") if not f.endswith(".py")]
    assert data and [f for f in data if f.replace("sample_data/", "goldsmith_sample_data/", 1) not in names] == []
    assert "curation/similarity/calibration_texts.jsonl" in names


def test_an_installed_goldsmith_loads_the_demo_without_a_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1"}
    code = (
        "import curation, goldsmith_sample_data; "
        "print(curation.__file__); print(goldsmith_sample_data.ROOT); "
        "from app.cli import main; import sys; sys.argv = ['goldsmith', 'demo', '--db', 'demo.db', '--json']; main()"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0].startswith(str(target)) and lines[1] == str(target / "goldsmith_sample_data")
    assert '"examples": 172' in done.stdout
