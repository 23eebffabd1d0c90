"""The RFC 9162 §2.1 Merkle tree, computed from perfect subtrees.

RFC 9162 defines the tree hash (MTH), inclusion paths (PATH) and consistency
proofs (PROOF/SUBPROOF) recursively over a list of leaves. Every hash those
definitions ever need is the MTH of a leaf *range* ``[lo, hi)``, and every such
range is either a *perfect* subtree (``2**level`` leaves starting at a multiple
of ``2**level``) or the ragged right edge of the tree, which is the right fold
of a handful of perfect subtrees. Perfect subtrees never change once their last
leaf is appended, so a store can persist exactly those and answer any proof for
any past tree size without rebuilding anything.

This module therefore splits proof computation in two, and both the in-memory
list functions and a persistent store go through the same split:

1. *Which* ranges make up a proof: :func:`inclusion_ranges`,
   :func:`consistency_ranges` (pure integer arithmetic on sizes).
2. *What* those ranges hash to: :func:`perfect_cover` names the perfect nodes
   ``(level, index)`` a range folds from, :func:`nodes_needed` lists all of
   them for one proof (so a store fetches them in one batched query), and
   :func:`range_hash` / :func:`proof_from_nodes` fold them.

:class:`MerkleFrontier` is the write side: the right edge of the tree, which
emits each perfect node exactly once, at the moment it becomes complete.

Everything that fails raises :class:`~medledger.errors.ProofError`; verifiers
never return ``False``, so a forgotten ``if`` cannot turn into an acceptance.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Literal

from medledger.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleFrontier",
    "NodeId",
    "Range",
    "consistency_proof",
    "consistency_ranges",
    "inclusion_proof",
    "inclusion_ranges",
    "leaf_hash",
    "node_hash",
    "nodes_needed",
    "perfect_cover",
    "proof_from_nodes",
    "range_hash",
    "root",
    "verify_consistency",
    "verify_inclusion",
]

NodeId = tuple[int, int]
"""``(level, index)``: the perfect subtree over leaves ``[index << level, (index + 1) << level)``."""

Range = tuple[int, int]
"""Half-open leaf range ``[lo, hi)``."""

HASH_SIZE: Final = 32

_sha256 = hashlib.sha256

EMPTY_ROOT: Final[bytes] = _sha256(b"").digest()
"""MTH({}): the root of the empty tree (RFC 9162 §2.1.1)."""


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}); the 0x00 prefix keeps a leaf from ever passing as an interior node."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The interior-node hash; the 0x01 prefix is the second-preimage guard."""
    return _sha256(b"\x01" + left + right).digest()


# --------------------------------------------------------------------------
# Which ranges make up a proof.
# --------------------------------------------------------------------------


def _split(n: int) -> int:
    """k of RFC 9162: the largest power of two smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_ranges(index: int, tree_size: int) -> list[Range]:
    """Leaf ranges whose MTHs form PATH(index, D[tree_size]), in proof order.

    This is the §2.1.3.1 recursion unrolled top-down; the RFC appends on the way
    back up, so the list is reversed at the end to match its leaf-first order.
    """
    if not 0 <= index < tree_size:
        raise ProofError(
            f"leaf index {index} is not in a tree of size {tree_size}",
            index=index,
            tree_size=tree_size,
        )
    out: list[Range] = []
    lo, hi = 0, tree_size
    while hi - lo > 1:
        mid = lo + _split(hi - lo)
        if index < mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
    out.reverse()
    return out


def consistency_ranges(old_size: int, new_size: int) -> list[Range]:
    """Leaf ranges whose MTHs form PROOF(old_size, D[new_size]), in proof order.

    The §2.1.4.1 SUBPROOF recursion unrolled: the flag ``b`` stays true only
    while the old tree is a left-aligned prefix of the current subtree, in which
    case the verifier already knows that subtree's hash (it is the old root).
    """
    if old_size < 1:
        raise ProofError(
            f"a consistency proof from size {old_size} proves nothing; the old size must be at least 1",
            old_size=old_size,
            new_size=new_size,
        )
    if old_size > new_size:
        raise ProofError(
            f"old size {old_size} exceeds new size {new_size}; a log only grows",
            old_size=old_size,
            new_size=new_size,
        )
    out: list[Range] = []
    lo, hi = 0, new_size
    known = True
    while old_size != hi:
        mid = lo + _split(hi - lo)
        if old_size <= mid:
            out.append((mid, hi))
            hi = mid
        else:
            out.append((lo, mid))
            lo = mid
            known = False
    if not known:
        out.append((lo, hi))
    out.reverse()
    return out


# --------------------------------------------------------------------------
# What those ranges hash to.
# --------------------------------------------------------------------------


def perfect_cover(lo: int, hi: int) -> list[NodeId]:
    """The perfect nodes, left to right, whose right fold is MTH(D[lo:hi]).

    MTH puts the largest power of two strictly below the size on the left, so
    the cover follows the binary digits of ``hi - lo`` from the top. That is a
    subtree of the global tree only if ``lo`` is aligned to the largest piece,
    which holds for every range the proof functions (and ``[0, n)``) produce;
    anything else is refused rather than silently hashed in the wrong shape.
    """
    size = hi - lo
    if lo < 0 or size < 0:
        raise ProofError(f"leaf range [{lo}, {hi}) is not a range of leaves", lo=lo, hi=hi)
    if size == 0:
        return []
    top = size.bit_length() - 1
    if lo & ((1 << top) - 1):
        raise ProofError(
            f"leaf range [{lo}, {hi}) does not start on a multiple of {1 << top}, "
            "so it is not a subtree of any Merkle tree",
            lo=lo,
            hi=hi,
        )
    out: list[NodeId] = []
    pos = lo
    while size:
        level = size.bit_length() - 1
        out.append((level, pos >> level))
        pos += 1 << level
        size -= 1 << level
    return out


def range_hash(lo: int, hi: int, get: Callable[[int, int], bytes]) -> bytes:
    """MTH(D[lo:hi]) from perfect nodes, without touching a single leaf.

    ``get(level, index)`` is the only access to storage, so the same fold serves
    an in-memory list and a database alike.
    """
    cover = perfect_cover(lo, hi)
    if not cover:
        return EMPTY_ROOT
    level, index = cover[-1]
    acc = get(level, index)
    for i in range(len(cover) - 2, -1, -1):
        level, index = cover[i]
        acc = _sha256(b"\x01" + get(level, index) + acc).digest()
    return acc


def nodes_needed(ranges: Iterable[Range]) -> list[NodeId]:
    """Every perfect node a proof over ``ranges`` folds from, for one batched fetch."""
    return [node for lo, hi in ranges for node in perfect_cover(lo, hi)]


def _assemble(ranges: Iterable[Range], get: Callable[[int, int], bytes]) -> list[bytes]:
    """The single place a proof is turned from ranges into hashes."""
    return [range_hash(lo, hi, get) for lo, hi in ranges]


def proof_from_nodes(ranges: Iterable[Range], nodes: Mapping[NodeId, bytes]) -> list[bytes]:
    """Assemble a proof from perfect nodes a store has already fetched.

    Intended use: ``ranges = inclusion_ranges(i, n)``, fetch ``nodes_needed(ranges)``
    in one query, then call this. A missing node is a store that has fallen
    behind its own tree size, which must not be papered over.
    """

    def get(level: int, index: int) -> bytes:
        try:
            return nodes[(level, index)]
        except KeyError:
            raise ProofError(
                f"perfect node (level {level}, index {index}) needed for the proof is missing",
                level=level,
                index=index,
            ) from None

    return _assemble(ranges, get)


class _ListNodes:
    """Perfect nodes computed from an in-memory list of leaf hashes, for one call.

    A proof over n leaves needs about n hashes however it is sliced, so the
    levels are built whole, one comprehension per level, which keeps the
    interpreter's share of the work small. The pyramid lives for one call only:
    a list has no persistent node store, and caching across calls would go
    stale the moment the caller appends.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self._levels: list[Sequence[bytes]] = [leaves]

    def get(self, level: int, index: int) -> bytes:
        levels = self._levels
        sha = _sha256
        while len(levels) <= level:
            below = levels[-1]
            pairs = range(0, len(below) - 1, 2)
            levels.append([sha(b"\x01" + below[j] + below[j + 1]).digest() for j in pairs])
        return levels[level][index]


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH over already-hashed leaves (EMPTY_ROOT for none)."""
    return range_hash(0, len(leaf_hashes), _ListNodes(leaf_hashes).get)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(index, D[n]) of RFC 9162 §2.1.3.1 for the tree of all ``leaf_hashes``."""
    return _assemble(inclusion_ranges(index, len(leaf_hashes)), _ListNodes(leaf_hashes).get)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) of RFC 9162 §2.1.4.1 for the tree of all ``leaf_hashes``."""
    return _assemble(consistency_ranges(old_size, len(leaf_hashes)), _ListNodes(leaf_hashes).get)


# --------------------------------------------------------------------------
# Verification (RFC 9162 §2.1.3.2 and §2.1.4.2, step by step).
# --------------------------------------------------------------------------


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes; SHA-256 hashes are {HASH_SIZE}")


def _plural(n: int) -> str:
    return f"{n} hash" if n == 1 else f"{n} hashes"


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> Literal[True]:
    """Check that ``leaf_hash`` sits at ``index`` in the tree of ``tree_size`` with ``root``.

    The algorithm is §2.1.3.2 verbatim, because a verifier that is "equivalent"
    to the RFC is exactly where off-by-one acceptances hide. Only the error
    sentences go further than the RFC: they say what the proof should have been.
    """
    if index < 0:
        raise ProofError(f"leaf index {index} is negative", index=index, tree_size=tree_size)
    # 1. If leaf_index is greater than or equal to tree_size, then stop and fail.
    if index >= tree_size:
        raise ProofError(
            f"leaf index {index} is not in a tree of size {tree_size}", index=index, tree_size=tree_size
        )
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    for position, p in enumerate(proof):
        _check_hash(p, f"inclusion proof hash {position}")

    def wrong_length() -> ProofError:
        needed = len(inclusion_ranges(index, tree_size))
        return ProofError(
            f"inclusion proof has {_plural(len(proof))}; a tree of size {tree_size} "
            f"at index {index} needs {needed}",
            index=index,
            tree_size=tree_size,
        )

    sha = _sha256
    # 2. Set fn to leaf_index and sn to tree_size - 1.
    fn = index
    sn = tree_size - 1
    # 3. Set r to hash.
    r = leaf_hash
    # 4. For each value p in the inclusion_path array:
    for p in proof:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise wrong_length()
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set r to HASH(0x01 || p || r).
            r = sha(b"\x01" + p + r).digest()
            # ii. If LSB(fn) is not set, then right-shift both fn and sn equally
            #     until either LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # Otherwise: Set r to HASH(0x01 || r || p).
            r = sha(b"\x01" + r + p).digest()
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 5. Compare sn to 0. Compare r against the root hash.
    if sn != 0:
        raise wrong_length()
    if r != root:
        raise ProofError(
            f"inclusion proof for index {index} in a tree of size {tree_size} leads to root "
            f"{r.hex()}, not the claimed {root.hex()}",
            index=index,
            tree_size=tree_size,
        )
    return True


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> Literal[True]:
    """Check that the tree of ``new_size`` with ``new_root`` extends the one of ``old_size``.

    §2.1.4.2 verbatim for ``0 < old_size < new_size``. An empty old tree is
    refused rather than trivially accepted: "consistent with nothing" is never
    what a caller meant to ask, and accepting it would let a bug skip the check.
    """
    if old_size < 1:
        raise ProofError(
            f"a consistency proof from size {old_size} proves nothing; the old size must be at least 1",
            old_size=old_size,
            new_size=new_size,
        )
    if old_size > new_size:
        raise ProofError(
            f"old size {old_size} exceeds new size {new_size}; a log only grows",
            old_size=old_size,
            new_size=new_size,
        )
    _check_hash(old_root, "old root hash")
    _check_hash(new_root, "new root hash")
    for position, c in enumerate(proof):
        _check_hash(c, f"consistency proof hash {position}")

    if old_size == new_size:
        if proof:
            raise ProofError(
                f"consistency proof has {_plural(len(proof))}; a tree of size {new_size} "
                "is consistent with itself only through an empty proof",
                old_size=old_size,
                new_size=new_size,
            )
        if old_root != new_root:
            raise ProofError(
                f"two roots for the same tree size {new_size} differ: {old_root.hex()} and {new_root.hex()}",
                old_size=old_size,
                new_size=new_size,
            )
        return True

    def wrong_length() -> ProofError:
        needed = len(consistency_ranges(old_size, new_size))
        return ProofError(
            f"consistency proof has {_plural(len(proof))}; from size {old_size} "
            f"to size {new_size} it needs {needed}",
            old_size=old_size,
            new_size=new_size,
        )

    # 1. If consistency_path is an empty array, stop and fail.
    if not proof:
        raise wrong_length()
    # 2. If first is an exact power of 2, then prepend first_hash.
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    sha = _sha256
    # 3. Set fn to first - 1 and sn to second - 1.
    fn = old_size - 1
    sn = new_size - 1
    # 4. If LSB(fn) is set, then right-shift both fn and sn equally until LSB(fn) is not set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # 5. Set both fr and sr to the first value in the consistency_path array.
    fr = sr = path[0]
    # 6. For each subsequent value c in the consistency_path array:
    for c in path[1:]:
        # a. If sn is 0, then stop the iteration and fail the proof verification.
        if sn == 0:
            raise wrong_length()
        # b. If LSB(fn) is set, or if fn is equal to sn, then:
        if fn & 1 or fn == sn:
            # i. Set fr to HASH(0x01 || c || fr).
            fr = sha(b"\x01" + c + fr).digest()
            # ii. Set sr to HASH(0x01 || c || sr).
            sr = sha(b"\x01" + c + sr).digest()
            # iii. If LSB(fn) is not set, then right-shift both fn and sn equally
            #      until either LSB(fn) is set or fn is 0.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            # Otherwise: Set sr to HASH(0x01 || sr || c).
            sr = sha(b"\x01" + sr + c).digest()
        # c. Finally, right-shift both fn and sn one time.
        fn >>= 1
        sn >>= 1
    # 7. Verify fr == first_hash, sr == second_hash and sn == 0.
    if sn != 0:
        raise wrong_length()
    if fr != old_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} leads to old root "
            f"{fr.hex()}, not the claimed {old_root.hex()}",
            old_size=old_size,
            new_size=new_size,
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} leads to new root "
            f"{sr.hex()}, not the claimed {new_root.hex()}",
            old_size=old_size,
            new_size=new_size,
        )
    return True


# --------------------------------------------------------------------------
# The write side.
# --------------------------------------------------------------------------


class MerkleFrontier:
    """The right edge of the tree: one perfect subtree per set bit of the size.

    This is all that appending needs (cf. Trillian's compact ranges), so ingest
    costs O(1) amortised hashes per leaf and O(log n) memory, and a store can
    reload it from ``perfect_cover(0, size)`` without reading a single leaf.
    State is a plain list of hashes, largest subtree first; nodes are reported
    as tuples only because the store has to write them anyway.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self, size: int = 0, cover: Sequence[bytes] = ()) -> None:
        """Reload from ``size`` and the hashes of ``perfect_cover(0, size)``, in that order."""
        if size < 0:
            raise ProofError(f"a tree cannot have negative size {size}", tree_size=size)
        expected = size.bit_count()
        if len(cover) != expected:
            raise ProofError(
                f"a frontier of size {size} needs {_plural(expected)}, one per perfect subtree; "
                f"got {len(cover)}",
                tree_size=size,
            )
        for position, h in enumerate(cover):
            _check_hash(h, f"frontier hash {position}")
        self._size = size
        self._stack: list[bytes] = list(cover)

    @property
    def size(self) -> int:
        return self._size

    def append(self, leaf_hash: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf; return every perfect node ``(level, index, hash)`` it completes.

        The leaf itself comes first, then each parent it closes, bottom-up; that
        is exactly the set a node store must persist for this append.
        """
        if len(leaf_hash) != HASH_SIZE:
            raise ProofError(f"leaf hash is {len(leaf_hash)} bytes; SHA-256 hashes are {HASH_SIZE}")
        index = self._size
        out = [(0, index, leaf_hash)]
        stack = self._stack
        acc = leaf_hash
        level = 0
        i = index
        while i & 1:
            acc = _sha256(b"\x01" + stack.pop() + acc).digest()
            i >>= 1
            level += 1
            out.append((level, i, acc))
        stack.append(acc)
        self._size = index + 1
        return out

    def append_many(self, leaf_hashes: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """:meth:`append` for a batch, with the loop inlined for the ingest path.

        The batch is all-or-nothing: a malformed hash anywhere leaves the
        frontier untouched, so the caller never has to guess how far it got.
        """
        batch = leaf_hashes if isinstance(leaf_hashes, (list, tuple)) else list(leaf_hashes)
        for position, h in enumerate(batch):
            if len(h) != HASH_SIZE:
                raise ProofError(
                    f"leaf hash {position} of the batch is {len(h)} bytes; SHA-256 hashes are {HASH_SIZE}"
                )
        out: list[tuple[int, int, bytes]] = []
        emit = out.append
        stack = self._stack
        push = stack.append
        pop = stack.pop
        sha = _sha256
        index = self._size
        for acc in batch:
            emit((0, index, acc))
            level = 0
            i = index
            while i & 1:
                acc = sha(b"\x01" + pop() + acc).digest()
                i >>= 1
                level += 1
                emit((level, i, acc))
            push(acc)
            index += 1
        self._size = index
        return out

    def root(self) -> bytes:
        """MTH of the whole tree: the right fold of the frontier, O(log n)."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        acc = stack[-1]
        for i in range(len(stack) - 2, -1, -1):
            acc = _sha256(b"\x01" + stack[i] + acc).digest()
        return acc

    def cover(self) -> list[bytes]:
        """Hashes of ``perfect_cover(0, size)``: what a store needs to reload this frontier."""
        return list(self._stack)

    def __repr__(self) -> str:
        return f"MerkleFrontier(size={self._size}, root={self.root().hex()})"
