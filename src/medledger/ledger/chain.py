"""Executing envelopes and cutting blocks: the one code path shared by the
node (which commits blocks) and ``verify`` (which re-derives them).

Because both run exactly this code, a block that verifies is a block the node
would have produced from the same envelopes and timestamp, and nothing a
store holds can differ from what execution implies without verify noticing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medledger.errors import MedledgerError
from medledger.ledger import keys, merkle
from medledger.ledger.block import BlockHeader, TreeHead, results_hash
from medledger.ledger.canonical import canonical_bytes
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.identity import DEFAULT_MAX_SKEW_MS, signer_of
from medledger.ledger.state import BlockState, StateReader, encode_writes, next_state_root
from medledger.ledger.store import NewBlock
from medledger.ledger.timefmt import format_ms
from medledger.ledger.txtypes import REJECTED, Outcome, Registry, Signer, TxContext, rejected

_UNSEEN: Any = object()


def max_skew_ms(get: Callable[[str], Any]) -> int:
    """The clock-skew window in force, from any state reader."""
    params = get("params")
    return DEFAULT_MAX_SKEW_MS if params is None else int(params["max_clock_skew_ms"])


def execute_tx(
    registry: Registry,
    state: BlockState,
    env: SignedEnvelope,
    payload: Any | None,
    *,
    height: int,
    block_ms: int,
    leaf_index: int,
    skew_ms: int,
    signers: dict[str, Any] | None = None,
) -> Outcome:
    """Run one envelope's checks and handler against the block overlay.

    Gateway checks are repeated here because admission happened against an
    older state: a key revoked earlier in this block must not count.
    """
    if env.type == "genesis":
        if height != 0 or leaf_index != 0:
            return rejected("GENESIS-LATE", "a genesis transaction is only valid as the first entry of block 0")
        try:
            parsed = registry.get("genesis").validate(env.payload)
        except MedledgerError as exc:
            return rejected("INVALID-PAYLOAD", exc.message)
        if parsed.regulator.key != env.signer:
            return rejected("GENESIS-SIGNER", "the genesis must be signed by the regulator key it names")
        signer = Signer(env.signer, parsed.regulator.member, "regulator", "regulator", True)
        ctx = TxContext(env, parsed, signer, state, height, block_ms, leaf_index)
        outcome = registry.get("genesis").execute(ctx)
        state.commit_tx() if outcome.status != REJECTED else state.rollback_tx()
        return outcome
    if height == 0:
        return rejected("NO-GENESIS", "block 0 holds only the genesis")
    maybe_signer = signers.get(env.signer, _UNSEEN) if signers is not None else _UNSEEN
    if maybe_signer is _UNSEEN:
        maybe_signer = signer_of(state.get, env.signer)
        if signers is not None:
            signers[env.signer] = maybe_signer
    if maybe_signer is None:
        return rejected("UNKNOWN-SIGNER", "the signing key is not registered on this ledger")
    if not maybe_signer.active:
        return rejected("SIGNER-INACTIVE", f"the key of {maybe_signer.member} was revoked or rotated before this block")
    tx_type = registry.types.get(env.type)
    if tx_type is None:
        return rejected("UNKNOWN-TYPE", f"no transaction type {env.type!r}")
    if tx_type.roles is not None and maybe_signer.role not in tx_type.roles:
        return rejected("WRONG-ROLE", f"a {maybe_signer.role} may not sign {env.type}")
    if abs(env.created_ms - block_ms) > skew_ms:
        return rejected(
            "CLOCK-SKEW",
            f"created_at {env.created_at} is more than {skew_ms} ms from the block time {format_ms(block_ms)}",
        )
    if payload is None:
        try:
            payload = tx_type.validate(env.payload)
        except MedledgerError as exc:
            return rejected("INVALID-PAYLOAD", exc.message)
    outcome = tx_type.execute(TxContext(env, payload, maybe_signer, state, height, block_ms, leaf_index))
    if outcome.status == REJECTED:
        state.rollback_tx()
    else:
        state.commit_tx()
    return outcome


@dataclass(frozen=True, slots=True)
class Tip:
    """What the next block builds on."""

    height: int  # height of the last block; -1 before genesis
    block_hash: str
    state_root: str
    block_ms: int


@dataclass(frozen=True)
class BuiltBlock:
    block: NewBlock
    outcomes: list[Outcome]
    frontier: merkle.MerkleFrontier
    tip: Tip
    #: the write set as values (``block.writes`` holds their canonical bytes)
    writes: dict[str, Any | None]


def _alert_row(
    seq: int, leaf_index: int | None, alert: Mapping[str, Any], block_ms: int, tx_id: str | None
) -> tuple[int, int | None, str, str, str | None, str | None, int, bytes]:
    """One alert as the store indexes it: by rule, institution, practitioner and block time."""
    body = dict(alert)
    if tx_id is not None:
        body["tx_id"] = tx_id
    return (
        seq,
        leaf_index,
        str(alert["rule"]),
        str(alert["severity"]),
        alert.get("institution"),
        alert.get("practitioner"),
        block_ms,
        canonical_bytes(body),
    )


def _prefetch(registry: Registry, state: BlockState, envelopes: Sequence[SignedEnvelope]) -> None:
    """One batched read for what the whole block will consult."""
    signers = {"key/" + e.signer for e in envelopes}
    state.prefetch(["params", *signers])
    members = {"member/" + rec["member"] for k in signers if (rec := state.get(k)) is not None}
    wanted: list[str] = list(members)
    derived: list[SignedEnvelope] = []
    for env in envelopes:
        tx_type = registry.types.get(env.type)
        if tx_type is not None and tx_type.reads is not None:
            wanted.extend(tx_type.reads(env.payload))
        if tx_type is not None and tx_type.derived_reads is not None:
            derived.append(env)
    state.prefetch(wanted)
    if derived:
        more: list[str] = []
        for env in derived:
            hint = registry.types[env.type].derived_reads
            assert hint is not None
            more.extend(hint(env.payload, state.get))
        state.prefetch(more)


def build_block(
    registry: Registry,
    base: StateReader,
    tip: Tip,
    frontier: merkle.MerkleFrontier,
    envelopes: Sequence[SignedEnvelope],
    payloads: Sequence[Any | None] | None,
    *,
    block_ms: int,
    proposer: str,
    node_key: keys.SigningKey | None,
    ordering: dict[str, Any],
) -> BuiltBlock:
    """Execute envelopes in order and produce the block to commit.

    ``frontier`` is not modified; the returned one replaces it only after the
    store has committed, so a failed commit leaves the node's view intact.
    ``node_key`` is None when ``verify`` replays a block: it then compares the
    stored signatures instead of making new ones.
    """
    height = tip.height + 1
    state = BlockState(base)
    _prefetch(registry, state, envelopes)
    skew = max_skew_ms(state.get)
    first_leaf = frontier.size
    new_frontier = merkle.MerkleFrontier(frontier.size, frontier.cover())
    outcomes: list[Outcome] = []
    txs: list[tuple[int, str, str, str, bytes, bytes, bytes]] = []
    leaf_hashes: list[bytes] = []
    outcome_bytes: list[bytes] = []
    sha256 = hashlib.sha256
    signers: dict[str, Any] = {}
    alerts: list[tuple[int, int | None, str, str, str | None, str | None, int, bytes]] = []
    if height > 0:
        for hook in registry.on_block:
            for alert in hook(state, height, block_ms):
                alerts.append(_alert_row(len(alerts), None, alert, block_ms, None))
        state.commit_tx()
    identity_version = state.identity_version
    for offset, env in enumerate(envelopes):
        leaf_index = first_leaf + offset
        if state.identity_version != identity_version:
            signers.clear()
            identity_version = state.identity_version
        outcome = execute_tx(
            registry,
            state,
            env,
            None if payloads is None else payloads[offset],
            height=height,
            block_ms=block_ms,
            leaf_index=leaf_index,
            skew_ms=skew,
            signers=signers,
        )
        if height == 0:
            skew = max_skew_ms(state.get)
        encoded = outcome.to_bytes()
        for alert in outcome.alerts:
            alerts.append(_alert_row(len(alerts), leaf_index, alert, block_ms, env.tx_id))
        outcomes.append(outcome)
        outcome_bytes.append(encoded)
        leaf_hashes.append(sha256(b"\x00" + env.leaf_data()).digest())
        txs.append((leaf_index, env.tx_id, env.signer, env.nonce, env.body, env.signature, encoded))
    nodes = new_frontier.append_many(leaf_hashes)
    tree_root = new_frontier.root().hex()
    writes = state.writes
    encoded_writes = encode_writes(writes)
    state_root = next_state_root(tip.state_root, encoded_writes)
    timestamp = format_ms(block_ms)
    header = BlockHeader(
        height=height,
        prev_hash=tip.block_hash,
        tx_root=merkle.root(leaf_hashes).hex(),
        tx_count=len(envelopes),
        results_hash=results_hash(outcome_bytes),
        state_root=state_root,
        tree_size=new_frontier.size,
        tree_root=tree_root,
        timestamp=timestamp,
        proposer=proposer,
        ordering=ordering,
    )
    header_bytes = header.to_bytes()
    block_hash = hashlib.sha256(header_bytes).hexdigest()
    tree_head = TreeHead(new_frontier.size, tree_root, timestamp, proposer)
    signature = b""
    if node_key is not None:
        tree_head = tree_head.sign(node_key)
        signature = node_key.sign(keys.BLOCK_DOMAIN, header_bytes)
    block = NewBlock(header, header_bytes, block_hash, signature, tree_head, txs, nodes, encoded_writes, alerts)
    return BuiltBlock(block, outcomes, new_frontier, Tip(height, block_hash, state_root, block_ms), dict(writes))
