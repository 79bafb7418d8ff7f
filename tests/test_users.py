import pytest

from conftest import PASSWORD, dump
from curation.errors import AuthenticationFailed, Conflict, InvalidInput, MissingActor, PermissionDenied
from curation.people import users


def test_the_first_user_must_be_an_admin_and_needs_no_actor(store):
    with pytest.raises(InvalidInput, match="first user must be an admin"):
        users.add_user(store, None, "amy", "author", password=PASSWORD)
    added = users.add_user(store, None, "ada", "admin")
    admin, generated = added.user, added.generated_password
    assert admin.role == "admin" and generated and len(generated) >= 12
    assert users.authenticate(store, "ada", generated).username == "ada"
    with pytest.raises(MissingActor, match="say who is acting"):  # once someone exists, adding needs an admin
        users.add_user(store, None, "eve", "admin", password=PASSWORD)


def test_passwords_are_hashed_with_argon2id_and_never_stored_plain(team):
    stored = team.password_hash("amy")
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert "password" not in team.get_user("amy").model_dump()
    assert all(PASSWORD not in str(h.after) for h in team.history())


def test_authentication_does_not_reveal_which_part_was_wrong(team):
    assert users.authenticate(team, " AMY ", PASSWORD).username == "amy"
    for name, password in (("amy", "wrong password"), ("nobody", PASSWORD)):
        with pytest.raises(AuthenticationFailed, match="^wrong username or password$"):
            users.authenticate(team, name, password)


def test_deactivated_users_cannot_sign_in(team):
    users.set_active(team, "ada", "amy", False, 1)
    with pytest.raises(AuthenticationFailed, match="deactivated"):
        users.authenticate(team, "amy", PASSWORD)


def test_weak_passwords_bad_names_and_unknown_roles_are_refused(team):
    with pytest.raises(InvalidInput, match="at least 10"):
        users.add_user(team, "ada", "bo", "author", password="short")
    with pytest.raises(InvalidInput, match="username 'b o' is not valid"):
        users.add_user(team, "ada", "b o", "author", password=PASSWORD)
    with pytest.raises(InvalidInput, match="role 'owner' is not one of"):
        users.add_user(team, "ada", "bo", "owner", password=PASSWORD)
    with pytest.raises(Conflict, match="already exists"):
        users.add_user(team, "ada", "AMY", "author", password=PASSWORD)


def test_role_changes_are_versioned_and_recorded(team):
    user = users.set_role(team, "ada", "amy", "reviewer", 1)
    assert (user.role, user.version) == ("reviewer", 2)
    entry = team.history("user", "amy")[-1]
    assert (entry.action, entry.actor, entry.before, entry.after) == ("set_role", "ada", {"role": "author"}, {"role": "reviewer"})
    with pytest.raises(Conflict):
        users.set_role(team, "ada", "amy", "lead", 1)


def test_the_last_admin_cannot_be_demoted_or_deactivated(team):
    before = dump(team)
    with pytest.raises(InvalidInput, match="last admin"):
        users.set_role(team, "ada", "ada", "lead", 1)
    with pytest.raises(InvalidInput, match="last admin"):
        users.set_active(team, "ada", "ada", False, 1)
    assert dump(team) == before
    users.set_role(team, "ada", "lee", "admin", 1)
    assert users.set_role(team, "lee", "ada", "lead", 1).role == "lead"


def test_people_change_their_own_password_admins_anyones(team):
    users.set_password(team, "amy", "amy", "a brand new secret")
    assert users.authenticate(team, "amy", "a brand new secret")
    with pytest.raises(PermissionDenied):
        users.set_password(team, "amy", "al", "takeover attempt!")
    users.set_password(team, "ada", "al", "reset by admin 1")
    assert users.authenticate(team, "al", "reset by admin 1")
    assert team.history("user", "al")[-1].after == {"password_hash": "(changed)"}


def test_who_can_be_assigned_authoring_work_is_one_rule(team):
    """Compare offered authors only (role == author) where the Dashboard offered anyone who writes: one rule now."""
    assert [u.username for u in users.assignable_authors(team)] == ["al", "amy", "lee"]  # authors and leads write examples
    users.set_active(team, "ada", "al", False, team.get_user("al").version)
    assert [u.username for u in users.assignable_authors(team)] == ["amy", "lee"]
    assert users.assignable_author(team, "lee").username == "lee"
    with pytest.raises(PermissionDenied, match="deactivated"):
        users.assignable_author(team, "al")
    with pytest.raises(PermissionDenied, match="cannot create example"):
        users.assignable_author(team, "rita")
