"""Goldsmith's store and domain services. Import from the submodules (curation.store, curation.examples.workflow, ...)."""

import sys

# sqlite-utils imports pandas, when installed, only to map pandas column types on insert, which
# Goldsmith never does. Hiding pandas during that one import saves ~0.3 s on every command and
# page load; pandas stays importable for the code that needs it (validation, the app's charts).
if "pandas" not in sys.modules and "sqlite_utils" not in sys.modules:
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils  # noqa: F401
    finally:
        del sys.modules["pandas"]
