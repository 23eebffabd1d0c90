"""RFC 9162 §2.1 Merkle tree: list path, store path and frontier against a naive reference.

The reference below is written straight from the RFC's recursive definitions and
shares no code with :mod:`medledger.ledger.merkle`; its only concession to speed
is memoising MTH over (lo, hi) offsets of one fixed leaf list, which changes no
result. Every tree in the exhaustive tests is a prefix of that list.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medledger.errors import ProofError
from medledger.ledger.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    NodeId,
    consistency_proof,
    consistency_ranges,
    inclusion_proof,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    nodes_needed,
    perfect_cover,
    proof_from_nodes,
    range_hash,
    root,
    verify_consistency,
    verify_inclusion,
)

# ---------------------------------------------------------------------------
# Independent reference: RFC 9162 §2.1, recursive, deliberately naive.
# ---------------------------------------------------------------------------


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


class RefTree:
    """MTH, PATH and PROOF/SUBPROOF over D = ``data``; ranges are D[lo:hi]."""

    def __init__(self, data: Sequence[bytes]) -> None:
        self.data = data
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, lo: int, hi: int) -> bytes:
        key = (lo, hi)
        if key not in self._mth:
            n = hi - lo
            if n == 0:
                value = _sha(b"")
            elif n == 1:
                value = _sha(b"\x00" + self.data[lo])
            else:
                k = _k(n)
                value = _sha(b"\x01" + self.mth(lo, lo + k) + self.mth(lo + k, hi))
            self._mth[key] = value
        return self._mth[key]

    def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        """PATH(m, D[lo:hi])."""
        n = hi - lo
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def subproof(self, m: int, lo: int, hi: int, b: bool) -> list[bytes]:
        """SUBPROOF(m, D[lo:hi], b)."""
        n = hi - lo
        if m == n:
            return [] if b else [self.mth(lo, hi)]
        k = _k(n)
        if m <= k:
            return self.subproof(m, lo, lo + k, b) + [self.mth(lo + k, hi)]
        return self.subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]

    def proof(self, m: int, n: int) -> list[bytes]:
        """PROOF(m, D[n])."""
        return self.subproof(m, 0, n, True)


MAX_LEAVES = 2000
DATA: list[bytes] = [b"leaf %d " % i * (i % 4) for i in range(MAX_LEAVES)]  # includes b""
REF = RefTree(DATA)
LEAVES: list[bytes] = [leaf_hash(d) for d in DATA]


def _full_store() -> dict[NodeId, bytes]:
    frontier = MerkleFrontier()
    return {(level, index): h for level, index, h in frontier.append_many(LEAVES)}


STORE = _full_store()  # every perfect node of every prefix up to MAX_LEAVES


def store_get(level: int, index: int) -> bytes:
    return STORE[(level, index)]


def store_proof(ranges: list[tuple[int, int]], store: dict[NodeId, bytes]) -> list[bytes]:
    """What a persistent store does: one batched fetch of exactly the needed nodes."""
    needed = nodes_needed(ranges)
    fetched = {node: store[node] for node in needed}
    return proof_from_nodes(ranges, fetched)


def assert_rejected(fn: Callable[..., Any], *args: Any) -> None:
    """ProofError and nothing else: not a return value, not some other exception."""
    try:
        result = fn(*args)
    except ProofError:
        return
    pytest.fail(f"{fn.__name__} accepted {args!r} and returned {result!r}")


# ---------------------------------------------------------------------------
# Basics.
# ---------------------------------------------------------------------------


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == _sha(b"")
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert leaf_hash(b"abc") == _sha(b"\x00abc")
    left, right = _sha(b"l"), _sha(b"r")
    assert node_hash(left, right) == _sha(b"\x01" + left + right)
    assert root([]) == EMPTY_ROOT == MerkleFrontier().root()
    assert root([LEAVES[0]]) == LEAVES[0]


def test_perfect_cover_shapes() -> None:
    assert perfect_cover(0, 0) == []
    assert perfect_cover(0, 1) == [(0, 0)]
    assert perfect_cover(0, 8) == [(3, 0)]
    assert perfect_cover(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert perfect_cover(8, 13) == [(2, 2), (0, 12)]
    assert perfect_cover(16, 23) == [(2, 4), (1, 10), (0, 22)]
    for lo, hi in [(1, 3), (2, 6), (4, 12), (-1, 0), (3, 2)]:
        assert_rejected(perfect_cover, lo, hi)


def test_list_functions_refuse_impossible_requests() -> None:
    assert_rejected(inclusion_proof, LEAVES[:5], 5)
    assert_rejected(inclusion_proof, LEAVES[:5], -1)
    assert_rejected(inclusion_proof, [], 0)
    assert_rejected(consistency_proof, LEAVES[:5], 0)
    assert_rejected(consistency_proof, LEAVES[:5], 6)
    assert_rejected(consistency_proof, LEAVES[:5], -1)
    assert consistency_proof(LEAVES[:5], 5) == []
    assert consistency_ranges(5, 5) == []
    assert inclusion_ranges(0, 1) == []


# ---------------------------------------------------------------------------
# Exhaustive agreement with the reference, sizes 0..300.
# ---------------------------------------------------------------------------

N_EXHAUSTIVE = 300


def test_roots_agree() -> None:
    for n in range(N_EXHAUSTIVE + 1):
        want = REF.mth(0, n)
        assert root(LEAVES[:n]) == want, n
        assert range_hash(0, n, store_get) == want, n


def test_inclusion_exhaustive() -> None:
    for n in range(1, N_EXHAUSTIVE + 1):
        tree = LEAVES[:n]
        tree_root = REF.mth(0, n)
        for i in range(n):
            want = REF.path(i, 0, n)
            assert inclusion_proof(tree, i) == want, (n, i)
            assert verify_inclusion(tree[i], i, n, want, tree_root) is True


def test_consistency_exhaustive() -> None:
    for n in range(1, N_EXHAUSTIVE + 1):
        tree = LEAVES[:n]
        new_root = REF.mth(0, n)
        for m in range(1, n + 1):
            want = REF.proof(m, n)
            assert consistency_proof(tree, m) == want, (m, n)
            assert verify_consistency(m, n, REF.mth(0, m), new_root, want) is True


def test_frontier_and_store_path_equal_list_path() -> None:
    """Grow a frontier leaf by leaf; at every size the nodes emitted so far must answer every proof."""
    frontier = MerkleFrontier()
    emitted: dict[NodeId, bytes] = {}
    for n in range(1, N_EXHAUSTIVE + 1):
        new_nodes = frontier.append(LEAVES[n - 1])
        # Exactly the perfect nodes whose last leaf is n - 1, leaf first, each with the right hash.
        want_ids = [(level, (n >> level) - 1) for level in range(n.bit_length()) if n % (1 << level) == 0]
        assert [(level, index) for level, index, _ in new_nodes] == want_ids
        for level, index, h in new_nodes:
            assert h == REF.mth(index << level, (index + 1) << level)
            assert (level, index) not in emitted
            emitted[(level, index)] = h

        assert frontier.size == n
        tree_root = REF.mth(0, n)
        assert frontier.root() == tree_root
        assert frontier.cover() == [emitted[node] for node in perfect_cover(0, n)]
        assert range_hash(0, n, lambda lv, ix: emitted[(lv, ix)]) == tree_root

        for i in range(n):
            ranges = inclusion_ranges(i, n)
            proof = store_proof(ranges, emitted)
            assert proof == REF.path(i, 0, n), (n, i)
            for (lo, hi), h in zip(ranges, proof, strict=True):
                assert REF.mth(lo, hi) == h
        for m in range(1, n + 1):
            ranges = consistency_ranges(m, n)
            proof = store_proof(ranges, emitted)
            assert proof == REF.proof(m, n), (m, n)
            for (lo, hi), h in zip(ranges, proof, strict=True):
                assert REF.mth(lo, hi) == h


def test_frontier_reload_and_batches() -> None:
    """A frontier reloaded from (size, cover) continues exactly like the original."""
    whole = MerkleFrontier()
    whole_nodes = whole.append_many(LEAVES[:777])
    assert whole.root() == REF.mth(0, 777)
    for cut in [0, 1, 2, 3, 64, 100, 511, 512, 513, 776, 777]:
        first = MerkleFrontier()
        nodes = first.append_many(LEAVES[:cut])
        reloaded = MerkleFrontier(cut, [STORE[node] for node in perfect_cover(0, cut)])
        assert reloaded.cover() == first.cover()
        assert reloaded.root() == first.root() == REF.mth(0, cut)
        nodes += reloaded.append_many(iter(LEAVES[cut:777]))  # any iterable, not just lists
        assert nodes == whole_nodes
        assert reloaded.root() == whole.root()


def test_frontier_refuses_bad_input() -> None:
    assert_rejected(MerkleFrontier, 3, [LEAVES[0]])  # size 3 needs two cover hashes
    assert_rejected(MerkleFrontier, 4, [LEAVES[0], LEAVES[1]])
    assert_rejected(MerkleFrontier, -1, [])
    assert_rejected(MerkleFrontier, 1, [LEAVES[0][:31]])
    frontier = MerkleFrontier()
    assert_rejected(frontier.append, LEAVES[0][:31])
    assert_rejected(frontier.append_many, [LEAVES[0], LEAVES[1] + b"\x00"])
    assert frontier.size == 0  # a refused batch changes nothing
    assert_rejected(proof_from_nodes, inclusion_ranges(0, 8), {})


# ---------------------------------------------------------------------------
# Published Certificate Transparency vectors.
#
# Source: Google's Certificate Transparency / Trillian Merkle test data, as kept
# in github.com/transparency-dev/merkle, proof/verify_test.go (`leaves`,
# `roots`, `inclusionProofs`, `consistencyProofs`). Their inclusion vectors use
# 1-based leaf numbers; the indices below are 0-based.
# ---------------------------------------------------------------------------

CT_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = {
    1: "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    2: "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    3: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    4: "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    5: "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    6: "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    7: "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    8: "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
}
# (index, tree_size, proof)
CT_INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# (old_size, new_size, proof)
CT_CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]


def test_ct_vectors() -> None:
    hashes = [leaf_hash(d) for d in CT_LEAVES]
    ref = RefTree(CT_LEAVES)
    frontier = MerkleFrontier()
    for n in range(1, 9):
        frontier.append(hashes[n - 1])
        want = bytes.fromhex(CT_ROOTS[n])
        assert root(hashes[:n]) == want == ref.mth(0, n) == frontier.root()
    assert root(hashes).hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"

    for index, size, hex_proof in CT_INCLUSION:
        proof = [bytes.fromhex(h) for h in hex_proof]
        assert inclusion_proof(hashes[:size], index) == proof == ref.path(index, 0, size)
        assert verify_inclusion(hashes[index], index, size, proof, bytes.fromhex(CT_ROOTS[size])) is True

    for old, new, hex_proof in CT_CONSISTENCY:
        proof = [bytes.fromhex(h) for h in hex_proof]
        assert consistency_proof(hashes[:new], old) == proof == ref.proof(old, new)
        old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
        assert verify_consistency(old, new, old_root, new_root, proof) is True


# ---------------------------------------------------------------------------
# Rejections.
# ---------------------------------------------------------------------------


def _put(proof: list[bytes], position: int, value: bytes) -> list[bytes]:
    """A copy of ``proof`` with one hash replaced."""
    out = list(proof)
    out[position] = value
    return out


def _flips(value: bytes) -> list[bytes]:
    """Every single-bit corruption of ``value``."""
    out = []
    for bit in range(len(value) * 8):
        corrupted = bytearray(value)
        corrupted[bit // 8] ^= 1 << (bit % 8)
        out.append(bytes(corrupted))
    return out


def _sampled_pairs(rng: random.Random, limit: int, count: int, *, strict: bool) -> list[tuple[int, int]]:
    """(a, b) pairs with 0 <= a < b (inclusion) or 1 <= a < b (consistency), edges always in."""
    pairs: set[tuple[int, int]] = set()
    for b in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64]:
        low = 1 if strict else 0
        for a in {low, b - 1, b // 2, (b - 1) // 2 + 1}:
            if low <= a < b:
                pairs.add((a, b))
    while len(pairs) < count:
        b = rng.randint(2, limit)
        a = rng.randint(1 if strict else 0, b - 1)
        pairs.add((a, b))
    return sorted(pairs)


def test_inclusion_rejections() -> None:
    rng = random.Random(9162)
    for index, size in _sampled_pairs(rng, 64, 100, strict=False):
        leaf, tree_root = LEAVES[index], REF.mth(0, size)
        proof = REF.path(index, 0, size)
        assert verify_inclusion(leaf, index, size, proof, tree_root) is True

        for position, h in enumerate(proof):
            for bad in _flips(h):
                assert_rejected(verify_inclusion, leaf, index, size, _put(proof, position, bad), tree_root)
        for bad in _flips(leaf)[::7]:  # a spread of bits; proof hashes get every bit
            assert_rejected(verify_inclusion, bad, index, size, proof, tree_root)
        for bad in _flips(tree_root)[::7]:
            assert_rejected(verify_inclusion, leaf, index, size, proof, bad)

        if proof:
            assert_rejected(verify_inclusion, leaf, index, size, proof[:-1], tree_root)
            assert_rejected(verify_inclusion, leaf, index, size, proof[1:], tree_root)
            assert_rejected(verify_inclusion, leaf, index, size, [proof[0][:31], *proof[1:]], tree_root)
            assert_rejected(verify_inclusion, leaf, index, size, _put(proof, 0, proof[0] + b"!"), tree_root)
        assert_rejected(verify_inclusion, leaf, index, size, [*proof, tree_root], tree_root)
        assert_rejected(verify_inclusion, leaf, index, size, [leaf, *proof], tree_root)
        assert_rejected(verify_inclusion, leaf, index, size, [*proof, EMPTY_ROOT], tree_root)

        # A tree of another size has another root; the proof must not carry over to it.
        for other in (size - 1, size + 1):
            assert_rejected(verify_inclusion, leaf, index, other, proof, REF.mth(0, other))
        for other in (index - 1, index + 1, index ^ 2):
            assert_rejected(verify_inclusion, leaf, other, size, proof, tree_root)
        assert_rejected(verify_inclusion, LEAVES[index + 1], index, size, proof, tree_root)

        assert_rejected(verify_inclusion, leaf[:31], index, size, proof, tree_root)
        assert_rejected(verify_inclusion, leaf, index, size, proof, tree_root[:31])
        if size > 1:
            assert_rejected(verify_inclusion, tree_root, index, size, proof, leaf)  # swapped
        assert_rejected(verify_inclusion, leaf, index, size, proof, EMPTY_ROOT)


def test_consistency_rejections() -> None:
    rng = random.Random(6962)
    for old, new in _sampled_pairs(rng, 64, 100, strict=True):
        old_root, new_root = REF.mth(0, old), REF.mth(0, new)
        proof = REF.proof(old, new)
        assert proof
        assert verify_consistency(old, new, old_root, new_root, proof) is True

        for position, h in enumerate(proof):
            for bad in _flips(h):
                assert_rejected(verify_consistency, old, new, old_root, new_root, _put(proof, position, bad))
        for bad in _flips(old_root)[::7]:  # a spread of bits; proof hashes get every bit
            assert_rejected(verify_consistency, old, new, bad, new_root, proof)
        for bad in _flips(new_root)[::7]:
            assert_rejected(verify_consistency, old, new, old_root, bad, proof)

        assert_rejected(verify_consistency, old, new, old_root, new_root, [])
        assert_rejected(verify_consistency, old, new, old_root, new_root, proof[:-1])
        assert_rejected(verify_consistency, old, new, old_root, new_root, proof[1:])
        assert_rejected(verify_consistency, old, new, old_root, new_root, [*proof, new_root])
        assert_rejected(verify_consistency, old, new, old_root, new_root, [*proof, old_root])
        assert_rejected(verify_consistency, old, new, old_root, new_root, [old_root, *proof])
        assert_rejected(verify_consistency, old, new, old_root, new_root, [proof[0], *proof])
        assert_rejected(verify_consistency, old, new, old_root, new_root, [proof[0][:31], *proof[1:]])

        for other_old in (old - 1, old + 1, old ^ 2):
            if other_old <= new:
                other_root = REF.mth(0, max(other_old, 0))
                assert_rejected(verify_consistency, other_old, new, other_root, new_root, proof)
            assert_rejected(verify_consistency, other_old, new, old_root, new_root, proof)
        for other_new in (new - 1, new + 1, new * 2):
            assert_rejected(verify_consistency, old, other_new, old_root, REF.mth(0, other_new), proof)
        # With the *original* new root, a neighbouring size can share the proof's shape and verify
        # (the RFC binds size to root only through the signed tree head), so only a far size is tested.
        assert_rejected(verify_consistency, old, new * 2, old_root, new_root, proof)

        assert_rejected(verify_consistency, old, new, old_root[:31], new_root, proof)
        assert_rejected(verify_consistency, old, new, old_root, new_root[:31], proof)
        assert_rejected(verify_consistency, old, new, new_root, old_root, proof)  # swapped
        assert_rejected(verify_consistency, new, old, old_root, new_root, proof)  # sizes swapped


def test_consistency_edge_cases() -> None:
    r5, r8 = REF.mth(0, 5), REF.mth(0, 8)
    assert verify_consistency(5, 5, r5, r5, []) is True
    assert_rejected(verify_consistency, 5, 5, r5, r8, [])
    assert_rejected(verify_consistency, 5, 5, r5, r5, [r5])
    assert_rejected(verify_consistency, 0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert_rejected(verify_consistency, 0, 5, EMPTY_ROOT, r5, [])
    assert_rejected(verify_consistency, 8, 5, r8, r5, [])
    assert_rejected(verify_consistency, -1, 5, r5, r5, [])


def test_inclusion_edge_cases() -> None:
    leaf = LEAVES[0]
    assert verify_inclusion(leaf, 0, 1, [], leaf) is True
    assert_rejected(verify_inclusion, leaf, 0, 0, [], EMPTY_ROOT)
    assert_rejected(verify_inclusion, leaf, 1, 1, [], leaf)
    assert_rejected(verify_inclusion, leaf, -1, 1, [], leaf)
    assert_rejected(verify_inclusion, leaf, 0, 1, [leaf], leaf)
    assert_rejected(verify_inclusion, b"", 0, 1, [], b"")


def test_error_sentences_say_what_was_expected() -> None:
    proof = REF.path(4, 0, 5)
    assert len(proof) == 1
    padded = [*proof, proof[0], proof[0]]
    too_many = r"^inclusion proof has 3 hashes; a tree of size 5 at index 4 needs 1$"
    with pytest.raises(ProofError, match=too_many):
        verify_inclusion(LEAVES[4], 4, 5, padded, REF.mth(0, 5))
    too_few = r"^inclusion proof has 0 hashes; a tree of size 8 at index 3 needs 3$"
    with pytest.raises(ProofError, match=too_few):
        verify_inclusion(LEAVES[3], 3, 8, [], REF.mth(0, 8))
    with pytest.raises(ProofError, match=r"^consistency proof has 1 hash; from size 3 to size 8 it needs 4$"):
        verify_consistency(3, 8, REF.mth(0, 3), REF.mth(0, 8), REF.proof(3, 8)[:1])
    with pytest.raises(ProofError, match=r"inclusion proof hash 0 is 31 bytes; SHA-256 hashes are 32"):
        verify_inclusion(LEAVES[4], 4, 5, [proof[0][:31]], REF.mth(0, 5))
    with pytest.raises(ProofError) as info:
        verify_inclusion(LEAVES[4], 4, 5, proof, REF.mth(0, 6))
    assert info.value.code == "bad-proof"
    assert info.value.detail == {"index": 4, "tree_size": 5}


# ---------------------------------------------------------------------------
# Property test over larger trees.
# ---------------------------------------------------------------------------


@st.composite
def _tree_case(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    size = draw(st.integers(min_value=1, max_value=MAX_LEAVES))
    index = draw(st.integers(min_value=0, max_value=size - 1))
    old = draw(st.integers(min_value=1, max_value=size))
    salt = draw(st.integers(min_value=0, max_value=2**16))
    bit = draw(st.integers(min_value=0, max_value=255))
    return size, index, old, salt, bit


@settings(max_examples=150, deadline=None)
@given(_tree_case())
def test_property_large_trees(case: tuple[int, int, int, int, int]) -> None:
    size, index, old, salt, bit = case
    tree = LEAVES[:size]
    tree_root = REF.mth(0, size)
    old_root = REF.mth(0, old)

    inc = inclusion_proof(tree, index)
    assert inc == REF.path(index, 0, size) == store_proof(inclusion_ranges(index, size), STORE)
    assert verify_inclusion(tree[index], index, size, inc, tree_root) is True

    con = consistency_proof(tree, old)
    assert con == REF.proof(old, size) == store_proof(consistency_ranges(old, size), STORE)
    assert verify_consistency(old, size, old_root, tree_root, con) is True

    assert root(tree) == tree_root == range_hash(0, size, store_get)

    if inc:
        position = salt % len(inc)
        bad = bytearray(inc[position])
        bad[bit // 8] ^= 1 << (bit % 8)
        leaf = tree[index]
        assert_rejected(verify_inclusion, leaf, index, size, _put(inc, position, bytes(bad)), tree_root)
        assert_rejected(verify_inclusion, tree[index], index, size, inc[:-1], tree_root)
    assert_rejected(verify_inclusion, tree[index], index, size, [*inc, tree_root], tree_root)
    if size < MAX_LEAVES:
        assert_rejected(verify_inclusion, tree[index], index, size + 1, inc, REF.mth(0, size + 1))
    if con:
        position = salt % len(con)
        bad = bytearray(con[position])
        bad[bit // 8] ^= 1 << (bit % 8)
        assert_rejected(verify_consistency, old, size, old_root, tree_root, _put(con, position, bytes(bad)))
        assert_rejected(verify_consistency, old, size, old_root, tree_root, con[:-1])
        assert_rejected(verify_consistency, old, size, tree_root, old_root, con)
        if old > 1:
            assert_rejected(verify_consistency, old - 1, size, REF.mth(0, old - 1), tree_root, con)
