import pytest
from pydantic import ValidationError

from schemas import ExampleContent, Message, ReviewInput, Tags, Taxonomy, User


def conversation(*roles: str) -> list[dict]:
    return [{"role": r, "content": f"{r} text"} for r in roles]


@pytest.mark.parametrize(
    ("roles", "error"),
    [
        ((), "at least one user turn"),
        (("user",), "must end with an assistant turn"),
        (("assistant",), "'user' was expected"),
        (("system",), "at least one user turn"),
        (("user", "user", "assistant"), "message 2 has role 'user' but 'assistant' was expected"),
        (("user", "assistant", "system", "user", "assistant"), "message 3 is a system prompt"),
        (("system", "user", "assistant", "user"), "must end with an assistant turn"),
    ],
)
def test_untrainable_conversations_are_refused_with_the_reason(roles, error):
    with pytest.raises(ValidationError, match=error):
        ExampleContent.model_validate({"messages": conversation(*roles)})


@pytest.mark.parametrize("roles", [("user", "assistant"), ("system", "user", "assistant"), ("user", "assistant") * 3])
def test_trainable_conversations_are_accepted(roles):
    assert len(ExampleContent.model_validate({"messages": conversation(*roles)}).messages) == len(roles)


def test_message_rejects_blank_text_unknown_roles_and_extra_fields():
    with pytest.raises(ValidationError, match="content is empty"):
        Message(role="user", content="   ")
    with pytest.raises(ValidationError):
        Message(role="tool", content="x")
    with pytest.raises(ValidationError):
        Message.model_validate({"role": "user", "content": "x", "weight": 0})
    assert Message(role=" User ", content="x").role == "user"


def test_tags_normalise_friendly_input_to_one_shape():
    tags = Tags(category="  claims ", response_type="", labels="fnol; urgent,fnol, ")
    assert tags == Tags(category="claims", labels=("fnol", "urgent"))
    assert Tags(labels=None).labels == ()


def test_content_hash_depends_on_text_and_roles_only():
    a = ExampleContent.from_pair("Q", "A", tags=Tags(category="x"))
    b = ExampleContent.from_pair("Q", "A")
    assert a.content_hash == b.content_hash
    assert ExampleContent.from_pair("Q", "A ").content_hash != a.content_hash
    assert ExampleContent.from_pair("Q", "A", system="S").content_hash != a.content_hash


def test_review_needs_a_comment_unless_approving():
    assert ReviewInput(decision="approve").comment == ""
    for decision in ("reject", "request_changes"):
        with pytest.raises(ValidationError, match="needs a comment"):
            ReviewInput(decision=decision, comment=" ")
    with pytest.raises(ValidationError):
        ReviewInput.model_validate(
            {"decision": "approve", "rubric": {"accuracy": 6, "tone": 1, "compliance": 1, "completeness": 1}}
        )


def test_usernames_are_normalised_and_checked():
    assert User(username=" Maya ", role="author", created_at="2026-01-01T00:00:00Z").username == "maya"
    with pytest.raises(ValidationError, match="not valid"):
        User(username="ma ya", role="author", created_at="2026-01-01T00:00:00Z")


def test_taxonomy_rejects_inconsistent_targets_and_reports_bad_tags():
    with pytest.raises(ValidationError, match="not in categories"):
        Taxonomy(categories=("claims",), targets=[{"category": "billing", "response_type": "x", "target": 3}])
    with pytest.raises(ValidationError, match="more than once"):
        Taxonomy(categories=("claims", "claims"))
    taxonomy = Taxonomy(categories=("claims",), knowledge_areas=("auto",))
    assert taxonomy.tag_problems(Tags(category="claims", response_type="anything")) == []
    assert "choose one of: claims" in taxonomy.tag_problems(Tags(category="claim"))[0]
