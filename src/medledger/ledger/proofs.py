"""Inclusion and consistency proofs answered from a store's perfect nodes.

The range arithmetic lives in :mod:`medledger.ledger.merkle` (shared with the
in-memory functions); here we only fetch the O(log n) stored nodes a proof
needs, in one batched read, so a proof costs the same on a ten-million-entry
log as the arithmetic says.
"""

from __future__ import annotations

from typing import Protocol

from medledger.errors import NotFoundError, ProofError
from medledger.ledger import merkle
from medledger.ledger.store import NodeId


class NodeReader(Protocol):
    def tree_nodes(self, ids: list[NodeId]) -> dict[NodeId, bytes]: ...


def _fetch(store: NodeReader, ranges: list[merkle.Range]) -> list[bytes]:
    ids = merkle.nodes_needed(ranges)
    nodes = store.tree_nodes(ids)
    if len(nodes) != len(set(ids)):
        raise NotFoundError(
            "the store lacks Merkle nodes this proof needs; run `medledger verify`", code="store-incomplete", status=500
        )
    return merkle.proof_from_nodes(ranges, nodes)


def inclusion_proof(store: NodeReader, leaf_index: int, tree_size: int, current_size: int) -> list[bytes]:
    """Audit path for ``leaf_index`` in the tree of ``tree_size`` (any size up to the current one)."""
    if not 0 < tree_size <= current_size:
        raise ProofError(
            f"tree_size must be between 1 and the current size {current_size}, got {tree_size}", code="bad-tree-size"
        )
    if leaf_index >= tree_size:
        raise ProofError(
            f"leaf {leaf_index} is not in a tree of size {tree_size}; ask for tree_size > {leaf_index}",
            code="bad-tree-size",
        )
    return _fetch(store, merkle.inclusion_ranges(leaf_index, tree_size))


def consistency_proof(store: NodeReader, first: int, second: int, current_size: int) -> list[bytes]:
    """Proof that the tree of size ``first`` is a prefix of the tree of size ``second``."""
    if not 0 < first <= second:
        raise ProofError(f"need 0 < first <= second, got first={first}, second={second}", code="bad-tree-size")
    if second > current_size:
        raise ProofError(f"second={second} is beyond the current tree size {current_size}", code="bad-tree-size")
    return _fetch(store, merkle.consistency_ranges(first, second))


def root_at(store: NodeReader, tree_size: int) -> bytes:
    """Root of any past tree size, from stored nodes."""
    if tree_size == 0:
        return merkle.EMPTY_ROOT
    ids = merkle.perfect_cover(0, tree_size)
    nodes = store.tree_nodes(ids)
    return merkle.range_hash(0, tree_size, lambda level, index: nodes[(level, index)])
