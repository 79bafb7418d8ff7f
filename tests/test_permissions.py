"""The full role x action matrix: every allowed call works, every forbidden one raises
PermissionDenied and leaves every table exactly as it was."""

import pytest

from conftest import GOOD_RUBRIC, content, dump, make_example
from curation.errors import MissingActor, PermissionDenied
from curation.examples import taxonomy, workflow
from curation.people import users
from curation.people.permissions import ACTIONS, can
from schemas import ROLES, ReviewInput

ACTOR = {"admin": "ada", "lead": "lee", "reviewer": "rita", "author": "amy"}


def _stored(s, author, status="draft"):
    """An example by `author` in `status`, put straight into the store (setup, not the thing under test)."""
    c = content("set up", "answer")
    with s.write():
        return s.insert_example(messages=c.messages, tags=c.tags, author=author, status=status, actor=author)


# Each action is (setup, act): setup builds what the action needs, act is the call under test.
ACTIONS_UNDER_TEST = {
    "create": (lambda s, me: None, lambda s, me, _: workflow.create_example(s, me, content("brand new", "answer"))),
    "edit_own": (
        lambda s, me: _stored(s, me),
        lambda s, me, ex: workflow.edit_example(s, me, ex.id, ex.version, content("e", "a")),
    ),
    "edit_others": (
        lambda s, me: _stored(s, "al"),
        lambda s, me, ex: workflow.edit_example(s, me, ex.id, ex.version, content("e", "a")),
    ),
    "submit_own": (lambda s, me: _stored(s, me), lambda s, me, ex: workflow.submit_example(s, me, ex.id, ex.version)),
    "submit_others": (lambda s, me: _stored(s, "al"), lambda s, me, ex: workflow.submit_example(s, me, ex.id, ex.version)),
    "review_others": (
        lambda s, me: _stored(s, "al", "submitted"),
        lambda s, me, ex: workflow.review_example(s, me, ex.id, ex.version, ReviewInput(decision="approve", rubric=GOOD_RUBRIC)),
    ),
    "review_own": (
        lambda s, me: _stored(s, me, "submitted"),
        lambda s, me, ex: workflow.review_example(s, me, ex.id, ex.version, ReviewInput(decision="approve", rubric=GOOD_RUBRIC)),
    ),
    "archive": (
        lambda s, me: make_example(s, "approved", author="al"),
        lambda s, me, ex: workflow.archive_example(s, me, ex.id, ex.version),
    ),
    "bulk_status": (
        lambda s, me: make_example(s, "approved", author="al"),
        lambda s, me, ex: workflow.bulk_set_status(s, me, [ex.id], "archived"),
    ),
    "add_user": (lambda s, me: None, lambda s, me, _: users.add_user(s, me, "newbie", "author", password="x" * 12)),
    "set_role": (lambda s, me: s.get_user("al"), lambda s, me, u: users.set_role(s, me, "al", "reviewer", u.version)),
    "deactivate": (lambda s, me: s.get_user("al"), lambda s, me, u: users.set_active(s, me, "al", False, u.version)),
    "others_password": (lambda s, me: None, lambda s, me, _: users.set_password(s, me, "al", "y" * 12)),
    "set_taxonomy": (lambda s, me: None, lambda s, me, _: taxonomy.set_taxonomy(s, me, {"categories": ["claims"]}, 0)),
    "set_guidelines": (lambda s, me: None, lambda s, me, _: taxonomy.set_guidelines(s, me, "# Be kind", 0)),
}

# Written out by hand from the issue, not derived from the code under test.
MATRIX = {
    #                  author reviewer lead  admin
    "create": (True, False, True, False),
    "edit_own": (True, False, True, False),
    "edit_others": (False, False, True, False),
    "submit_own": (True, False, True, False),
    "submit_others": (False, False, True, False),
    "review_others": (False, True, True, False),
    "review_own": (False, False, False, False),
    "archive": (False, False, True, False),
    "bulk_status": (False, False, True, False),
    "add_user": (False, False, False, True),
    "set_role": (False, False, False, True),
    "deactivate": (False, False, False, True),
    "others_password": (False, False, False, True),
    "set_taxonomy": (False, False, False, True),
    "set_guidelines": (False, False, False, True),
}
ROLE_ORDER = ("author", "reviewer", "lead", "admin")


@pytest.mark.parametrize("role", ROLE_ORDER)
@pytest.mark.parametrize("action", list(MATRIX))
def test_role_action_matrix(team, role, action):
    setup, act = ACTIONS_UNDER_TEST[action]
    me = ACTOR[role]
    prepared = setup(team, me)
    before = dump(team)
    if MATRIX[action][ROLE_ORDER.index(role)]:
        act(team, me, prepared)
        assert dump(team) != before
    else:
        with pytest.raises(PermissionDenied):
            act(team, me, prepared)
        assert dump(team) == before


def test_matrix_covers_every_role():
    assert set(ROLE_ORDER) == set(ROLES)


@pytest.mark.parametrize("role", ROLE_ORDER)
def test_snapshots_and_training_are_for_leads_only(team, role):
    user = team.get_user(ACTOR[role])
    assert can(user, "create_snapshot") is (role == "lead")
    assert can(user, "launch_training") is (role == "lead")
    assert set(ACTIONS) >= {"create_snapshot", "launch_training"}


def test_reviewers_never_review_their_own_examples_even_as_lead(team):
    ex = make_example(team, "submitted", author="lee")
    before = dump(team)
    with pytest.raises(PermissionDenied, match="another reviewer must review it"):
        workflow.review_example(team, "lee", ex.id, ex.version, ReviewInput(decision="approve"))
    assert dump(team) == before


def test_deactivated_users_can_do_nothing(team):
    users.set_active(team, "ada", "amy", False, team.get_user("amy").version)
    before = dump(team)
    with pytest.raises(PermissionDenied, match="deactivated"):
        workflow.create_example(team, "amy", content())
    assert dump(team) == before


def test_unknown_or_missing_actor_is_refused(team):
    for who, error in ((None, MissingActor), ("", MissingActor), (" ", MissingActor), ("mallory", PermissionDenied)):
        with pytest.raises(error):
            workflow.create_example(team, who, content())
    assert team.db["examples"].count == 0
