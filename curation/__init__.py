"""Goldsmith's store and domain services. Import from the submodules (curation.store, curation.workflow, ...)."""
