"""The checks a draft gets as it is written: one service for the Write page and `goldsmith check`.

What it repeats (exact, near and semantic duplicates, from the live index), personal data,
the team's guideline rules, missing tags and a token estimate against the target model's limit.
"""

from __future__ import annotations

from curation.examples import workflow
from curation.examples.guideline_rules import guideline_warnings
from curation.examples.personal_data import personal_data_warnings
from curation.examples.submissions import attach_checks, conversation_tokens, question_of
from curation.similarity.live import find_matches
from curation.store import Store
from schemas import DEFAULT_MAX_TOKENS, TAG_KEYS, DraftCheck, ExampleContent, LiveMatch
from schemas.curation import SavedExample


def check_draft(
    store: Store,
    content: ExampleContent,
    *,
    exclude_id: int | None = None,
    model: str | None = None,
    semantic: bool = True,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> DraftCheck:
    """Everything a reviewer would flag in a draft, before it is saved or submitted.

    Args:
        store: the store.
        content: the conversation and tags being written.
        exclude_id: the example being edited (it does not match itself).
        model: the embedding model for semantic matches (default: the offline MiniLM).
        semantic: also look for semantic duplicates (loads the embedding model once per process).
        max_tokens: the target model's context limit.

    Returns:
        The findings; each match shows the question of the example it repeats (its first user turn).
        When the embedding model cannot load, exact and near matches still count
        and `note` says why semantic ones were not checked.
    """
    matches, note = _matches(store, content, exclude_id, model, semantic)
    return DraftCheck(
        matches=[m.model_copy(update={"prompt": question_of(store, m.example_id)}) for m in matches],
        personal_data=personal_data_warnings(content),
        guideline_warnings=guideline_warnings(content),
        missing_tags=[k for k in TAG_KEYS if not getattr(content.tags, k)],
        tokens=conversation_tokens(content),
        max_tokens=max_tokens,
        note=note,
    )


def _matches(
    store: Store, content: ExampleContent, exclude_id: int | None, model: str | None, semantic: bool
) -> tuple[list[LiveMatch], str]:
    try:
        return find_matches(store, content, exclude_id=exclude_id, model=model, semantic=semantic), ""
    except Exception as error:  # no embedding model here (or a broken one): exact and near matches still count
        if not semantic:
            raise
        found = find_matches(store, content, exclude_id=exclude_id, model=model, semantic=False)
        return found, f"Semantic duplicates were not checked ({type(error).__name__}: {error})."


def save_and_check(
    store: Store,
    actor: str,
    content: ExampleContent,
    *,
    example_id: int | None = None,
    expected_version: int | None = None,
    submit: bool = False,
    reason: str | None = None,
    semantic: bool = True,
) -> SavedExample:
    """The Write page's Save and Submit: `workflow.save_example`, then the checks on what was saved.

    A submitted example keeps these checks (near and semantic duplicates included) for its reviewer.
    """
    saved = workflow.save_example(
        store, actor, content, example_id=example_id, expected_version=expected_version, submit=submit, reason=reason
    )
    check = check_draft(store, saved, exclude_id=saved.id, semantic=semantic)
    if saved.status == "submitted":
        attach_checks(store, saved, check)
    return SavedExample(example=saved, checks=check)
