"""Lakeshore Mutual, a fictional insurer's support team: the sample data `goldsmith demo` loads.

This folder ships inside the package as `goldsmith_sample_data` (pyproject's package-dir), so an
installed Goldsmith finds it without a checkout: `goldsmith_sample_data.ROOT` is the folder.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parent
