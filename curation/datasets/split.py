"""A deterministic train/eval split, stratified by category, that never splits a group.

Groups (near-duplicate clusters, from the curation engine) go to one side whole, so no eval
example has a near-copy in train. Each unit's place in the order comes from a hash of the seed
and its smallest id, so adding examples does not reshuffle the ones already there.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence

from curation.errors import InvalidInput
from curation.similarity.groups import connected_components


def _units(ids: Sequence[int], groups: Iterable[Iterable[int]]) -> list[list[int]]:
    """Groups joined where they share ids; ids in no group are units of one."""
    sorted_ids = sorted(ids)
    pairs = ((members[0], other) for members in (list(g) for g in groups) if members for other in members[1:])
    return connected_components(sorted_ids, pairs)


def split(
    items: Sequence[tuple[int, str | None]],
    eval_fraction: float,
    seed: int,
    groups: Iterable[Iterable[int]] = (),
) -> tuple[list[int], list[int]]:
    """Split (id, category) items into sorted train and eval id lists.

    Args:
        items: each example's id and category (None for untagged).
        eval_fraction: the share of each category that goes to eval, in [0, 1).
        seed: the same items, groups and seed always give the same split.
        groups: ids that must stay on one side together.
    """
    if not 0 <= eval_fraction < 1:
        raise InvalidInput(f"eval fraction must be in [0, 1), got {eval_fraction}")
    category = dict(items)
    by_category: dict[str, list[list[int]]] = defaultdict(list)
    for unit in _units([i for i, _ in items], groups):
        # A mixed group counts under its most common category (ties: the name that sorts first).
        cats = sorted((category[i] or "" for i in unit), key=lambda c: (-sum(category[i] == (c or None) for i in unit), c))
        by_category[cats[0]].append(unit)

    def order(unit: list[int]) -> str:
        return hashlib.sha256(f"{seed}:{unit[0]}".encode()).hexdigest()

    evaluation: list[int] = []
    for cat in sorted(by_category):
        units = sorted(by_category[cat], key=order)
        size = sum(len(u) for u in units)
        target = min(round(eval_fraction * size), size - 1)  # every category keeps at least one training example
        taken = 0
        for unit in units:
            if taken + len(unit) <= target:
                evaluation += unit
                taken += len(unit)
    if eval_fraction > 0 and not evaluation:  # tiny sets: still hold out the first unit that leaves train non-empty
        units = sorted((u for us in by_category.values() for u in us), key=order)
        if len(units) > 1:
            evaluation = units[0]
    held = set(evaluation)
    return sorted(i for i, _ in items if i not in held), sorted(held)
