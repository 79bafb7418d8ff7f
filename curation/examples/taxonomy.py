"""The taxonomy and the writing guidelines: team-wide settings that admins manage."""

from __future__ import annotations

from pydantic import ValidationError

from curation.errors import InvalidInput, invalid
from curation.people.permissions import require
from curation.people.users import acting_user
from curation.store import Store
from schemas import Tags, Taxonomy


def get_taxonomy(store: Store) -> tuple[Taxonomy, int]:
    """The taxonomy and its version (an empty taxonomy, version 0, when none was set)."""
    value, version = store.get_setting("taxonomy")
    return (Taxonomy.model_validate(value) if value else Taxonomy()), version


def set_taxonomy(store: Store, actor: str, taxonomy: Taxonomy | dict, expected_version: int) -> int:
    """Replace the taxonomy (admins). Returns the new version."""
    try:
        taxonomy = Taxonomy.model_validate(taxonomy)
    except ValidationError as error:
        raise invalid(error, "taxonomy") from None
    with store.write():
        require(acting_user(store, actor), "manage_taxonomy")
        return store.set_setting("taxonomy", taxonomy.model_dump(mode="json"), expected_version, actor)


def check_tags(store: Store, tags: Tags) -> None:
    """InvalidInput naming every tag value the taxonomy does not allow."""
    problems = get_taxonomy(store)[0].tag_problems(tags)
    if problems:
        raise InvalidInput("; ".join(problems))


def get_guidelines(store: Store) -> tuple[str, int]:
    """The writing guidelines (Markdown) and their version."""
    value, version = store.get_setting("guidelines")
    return value or "", version


def set_guidelines(store: Store, actor: str, text: str, expected_version: int) -> int:
    """Replace the writing guidelines (admins). Returns the new version."""
    if not text.strip():
        raise InvalidInput("the guidelines are empty; write them in Markdown")
    with store.write():
        require(acting_user(store, actor), "manage_guidelines")
        return store.set_setting("guidelines", text, expected_version, actor)
