"""The split: deterministic, stratified by category, and never splits a group."""

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curation.datasets.split import split
from curation.errors import InvalidInput

items_strategy = st.lists(st.sampled_from(["claims", "billing", None, "roadside"]), min_size=2, max_size=120).map(
    lambda cats: [(i + 1, c) for i, c in enumerate(cats)]
)


@settings(max_examples=200, deadline=None)
@given(items=items_strategy, fraction=st.floats(0, 0.9), seed=st.integers(0, 10**6), data=st.data())
def test_every_example_lands_once_groups_stay_together_and_it_is_deterministic(items, fraction, seed, data):
    ids = [i for i, _ in items]
    groups = data.draw(st.lists(st.lists(st.sampled_from(ids), min_size=2, max_size=5), max_size=6))
    train, evaluation = split(items, fraction, seed, groups)
    assert sorted(train + evaluation) == ids and not set(train) & set(evaluation)
    for group in groups:
        assert set(group) <= set(train) or set(group) <= set(evaluation)
    assert (train, evaluation) == split(list(reversed(items)), fraction, seed, [list(reversed(g)) for g in reversed(groups)])
    if fraction > 0 and len(ids) >= 2 and not groups:
        assert evaluation and train


def test_each_category_is_held_out_in_proportion():
    items = [(i, cat) for i, cat in enumerate(["claims"] * 200 + ["billing"] * 50 + ["roadside"] * 10)]
    train, evaluation = split(items, 0.2, seed=3)
    held = Counter(dict(items)[i] for i in evaluation)
    assert held == {"claims": 40, "billing": 10, "roadside": 2}


def test_the_seed_changes_the_split_and_new_examples_do_not_reshuffle_old_ones():
    items = [(i, "claims") for i in range(100)]
    assert split(items, 0.1, 1) != split(items, 0.1, 2)
    _, before = split(items, 0.1, 7)
    _, after = split(items + [(i, "claims") for i in range(100, 110)], 0.1, 7)
    assert len(set(before) & set(after)) >= 8  # mostly the same examples stay held out


def test_fraction_must_be_below_one():
    with pytest.raises(InvalidInput, match=r"\[0, 1\)"):
        split([(1, None)], 1.0, 0)
