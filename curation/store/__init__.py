"""The store: one SQLite file behind sqlite-utils (Store), and its schema migrations."""

from curation.store.database import BUSY_TIMEOUT_S, NewExample, Store, now

__all__ = ["BUSY_TIMEOUT_S", "NewExample", "Store", "now"]
