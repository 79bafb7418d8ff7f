"""Union-find: turn pairs (duplicates, groups that must stay together) into connected groups."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

K = TypeVar("K", bound=Hashable)


def connected_components(keys: Sequence[K], pairs: Iterable[tuple[K, K]]) -> list[list[K]]:
    """Every key in exactly one group; keys joined by a pair share a group.

    Keys outside `keys` are ignored. Groups come back in the order of their first key in `keys`,
    each in `keys` order.
    """
    parent = {k: k for k in keys}

    def find(k: K) -> K:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    position = {k: i for i, k in enumerate(keys)}
    for a, b in pairs:
        if a in parent and b in parent:
            ra, rb = find(a), find(b)
            if ra != rb:
                # the root is always the key that comes first, so results do not depend on pair order
                first, second = (ra, rb) if position[ra] < position[rb] else (rb, ra)
                parent[second] = first
    groups: dict[K, list[K]] = {}
    for k in keys:
        groups.setdefault(find(k), []).append(k)
    return list(groups.values())
