"""A generalization hierarchy compiled to arrays: leaf codes, ancestors per level, common nodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.anonymize import HierarchySpec

UNKNOWN = -1  # the code of a null or a value that is not a leaf of the hierarchy


@dataclass
class Hierarchy:
    """`spec` compiled: leaves coded 0..n-1 in file order; `ancestor[level][leaf]` is the code
    of the leaf's node at that level (level 0 = the leaf itself); node names per level."""

    spec: HierarchySpec

    def __post_init__(self):
        rows = self.spec.rows
        self.leaves = pa.array([r[0] for r in rows], pa.string())
        self.levels = len(rows[0])
        self.names: list[list[str]] = []
        self.ancestor: list[np.ndarray] = []
        for level in range(self.levels):
            codes: dict[str, int] = {}
            self.ancestor.append(
                np.array([codes.setdefault(r[level], len(codes)) for r in rows], np.int64)
            )
            self.names.append(list(codes))
        self.size = len(rows)
        # leaves under each node, per level
        self.leaves_under = [
            np.bincount(a, minlength=len(n)) for a, n in zip(self.ancestor, self.names, strict=True)
        ]

    def encode(self, values: pa.Array) -> np.ndarray:
        """Leaf codes of `values` (UNKNOWN for nulls and values not in the hierarchy)."""
        if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
            values = pc.cast(values, pa.string())
        idx = pc.index_in(values, value_set=self.leaves)
        return pc.fill_null(idx, UNKNOWN).to_numpy(zero_copy_only=False).astype(np.int64)

    def common_level(self, present: np.ndarray) -> int:
        """The lowest level at which every leaf in `present` (codes, non-empty) shares a node."""
        for level in range(self.levels):
            nodes = self.ancestor[level][present]
            if (nodes == nodes[0]).all():
                return level
        return self.levels - 1

    def width(self, present: np.ndarray) -> float:
        """Normalized width of the common node of `present`: 0 for one leaf, 1 for the top
        (leaves under it - 1) / (all leaves - 1)."""
        if self.size <= 1:
            return 0.0
        level = self.common_level(present)
        under = self.leaves_under[level][self.ancestor[level][present[0]]]
        return (under - 1) / (self.size - 1)

    def node_name(self, present: np.ndarray) -> str:
        """The name of the lowest common node of `present` (leaf codes, non-empty)."""
        level = self.common_level(present)
        return self.names[level][self.ancestor[level][present[0]]]

    def child_groups(self, present: np.ndarray) -> tuple[int, np.ndarray]:
        """(level, child code per leaf) for the children of the common node of `present`:
        the level below it (leaves with level 0 have none: returns level -1)."""
        level = self.common_level(present)
        if level == 0:
            return -1, self.ancestor[0]
        return level - 1, self.ancestor[level - 1]
