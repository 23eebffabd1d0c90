"""The typed Python client: a light client in the manner of a CT monitor.

A receipt from a medledger node is only worth something if the holder can
check it without trusting the node that issued it. So this client trusts
nothing a node says except what it can check against state it already holds:

* It keeps the **last tree head it trusted** (in memory and, if asked, in a
  small JSON state file that survives restarts). Every tree head it meets,
  from ``GET /v1/tree-head``, inside a receipt, or handed to :meth:`Client.observe`,
  must be signed (by one of ``trusted_node_keys`` when given) and provably
  consistent with that trusted head: an RFC 9162 consistency proof from the
  smaller tree to the larger one must verify against the two *signed* roots.
  Only a larger head that passes becomes the new trusted head, so trust only
  ever moves forward along one history.
* Two validly signed heads of the same size with different roots are a
  **fork**: the node has shown two histories. That is the one misbehaviour a
  log cannot explain away, and the client raises with both heads attached as
  evidence.
* :meth:`Client.verify_receipt` proves that the exact signed envelope sits at
  the receipt's leaf index under the receipt's signed tree head, then moves
  trust forward to that head.

Without ``trusted_node_keys`` and without a state file, the first head seen is
trusted on first use (as SSH does); from then on every head must extend it.
Give both for a client that accepts nothing it cannot tie to a known key.

The ``*_offline`` functions do the same checks on JSON someone saved
(``medledger proof verify``), with no network at all.

Every failure raises a :mod:`medledger.errors` type: :class:`ProofError` for a
proof or a receipt that does not check out, :class:`SignatureError` for a bad
or untrusted signature, :class:`EncodingError` for a malformed response, and
:class:`MedledgerError` carrying the server's ``code``, ``status`` and
``detail`` for a refusal by the server.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final

import httpx

from medledger.errors import EncodingError, MedledgerError, NotFoundError, ProofError, SignatureError, TrustError
from medledger.ledger import envelope as envelope_mod
from medledger.ledger import keys, merkle
from medledger.ledger.block import TreeHead
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.receipt import Receipt
from medledger.ledger.receipt import bad_json as _bad
from medledger.ledger.receipt import json_field as _field
from medledger.ledger.receipt import json_hash as _hex
from medledger.ledger.receipt import json_hashes as _hex_list
from medledger.ledger.receipt import json_int as _int
from medledger.ledger.receipt import json_object as _obj
from medledger.ledger.receipt import json_str as _str
from medledger.ledger.receipt import json_tree_head as _head
from medledger.ledger.timefmt import now_ms, parse_ms

__all__ = [
    "STATE_FORMAT",
    "Client",
    "ConsistencyProof",
    "InclusionProof",
    "Receipt",
    "Trace",
    "TraceStep",
    "Transaction",
    "check_receipt_offline",
    "check_tree_head",
    "problem_error",
    "verify_consistency_offline",
    "verify_inclusion_offline",
    "verify_receipt_offline",
    "verify_trace_offline",
    "verify_tree_head_offline",
]

STATE_FORMAT: Final = "medledger-client-state/1"
"""Tag in the state file, so a future layout is never misread as this one."""

_hex64 = re.compile(r"[0-9a-f]{64}")
_rx_id = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,79}")
_VERIFIED_CACHE_LIMIT = 4096
#: how long one reading of the node's clock is extrapolated before it is read again (seconds): a node on
#: the wall clock only drifts, a sped-up one (the demo's province) can stall when its simulator falls behind
_WALL_CLOCK_RESYNC_S = 60.0
_FAST_CLOCK_RESYNC_S = 1.0




def _wire(value: Any, what: str) -> SignedEnvelope:
    """Decode and signature-check an envelope's wire form, or the ``GET /v1/transactions/{id}`` answer holding it.

    Offline checks take what a user saved from the API as it is: the answer of
    the transaction route carries the wire form under ``wire`` (its readable
    ``envelope`` object is not what was signed, so it is never used).
    """
    if isinstance(value, dict) and "wire" in value:
        value = value["wire"]
    try:
        return envelope_mod.from_wire(value, check_signature=True)
    except SignatureError as exc:
        raise SignatureError(f"{what}: {exc.message}", code=exc.code) from None
    except EncodingError as exc:
        raise EncodingError(f"{what}: {exc.message}", code=exc.code) from None


# --------------------------------------------------------------------------
# Typed responses.
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """``GET /v1/proofs/inclusion/{tx_id}``: an audit path, as claimed by the node."""

    tx_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    root_hash: bytes
    tree_head: TreeHead | None = None

    @classmethod
    def from_json(cls, value: Any) -> InclusionProof:
        obj = _obj(value, "inclusion proof")
        what = "inclusion proof"
        tx_id = _str(obj, "tx_id", what)
        _hex(tx_id, "inclusion proof tx_id")
        head_json = obj.get("tree_head")
        return cls(
            tx_id,
            _int(obj, "leaf_index", what),
            _int(obj, "tree_size", what),
            _hex(_field(obj, "leaf_hash", what), "inclusion proof leaf_hash"),
            _hex_list(_field(obj, "proof", what), "inclusion proof proof"),
            _hex(_field(obj, "root_hash", what), "inclusion proof root_hash"),
            None if head_json is None else _head(head_json, "inclusion proof tree_head"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "tx_id": self.tx_id,
            "leaf_index": self.leaf_index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [p.hex() for p in self.proof],
            "tree_head": None if self.tree_head is None else self.tree_head.to_json(),
            "root_hash": self.root_hash.hex(),
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    """``GET /v1/proofs/consistency``: the node's claim that one tree extends another."""

    first: int
    second: int
    first_root: bytes
    second_root: bytes
    proof: tuple[bytes, ...]

    @classmethod
    def from_json(cls, value: Any) -> ConsistencyProof:
        obj = _obj(value, "consistency proof")
        what = "consistency proof"
        return cls(
            _int(obj, "first", what),
            _int(obj, "second", what),
            _hex(_field(obj, "first_root", what), "consistency proof first_root"),
            _hex(_field(obj, "second_root", what), "consistency proof second_root"),
            _hex_list(_field(obj, "proof", what), "consistency proof proof"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "second": self.second,
            "first_root": self.first_root.hex(),
            "second_root": self.second_root.hex(),
            "proof": [p.hex() for p in self.proof],
        }


@dataclass(frozen=True, slots=True)
class Transaction:
    """``GET /v1/transactions/{tx_id}``, with the envelope decoded from its exact bytes.

    The readable ``envelope`` object of the response is not used: the wire
    bytes are what was signed and logged, so they are what the client checks.
    """

    tx_id: str
    envelope: SignedEnvelope
    outcome: dict[str, Any]
    height: int
    leaf_index: int
    block_hash: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @classmethod
    def from_json(cls, value: Any) -> Transaction:
        obj = _obj(value, "transaction")
        what = "transaction"
        tx_id = _str(obj, "tx_id", what)
        env = _wire(_field(obj, "wire", what), "transaction wire")
        if env.tx_id != tx_id:
            raise ProofError(
                f"the node's transaction {tx_id} carries an envelope whose bytes hash to {env.tx_id}",
                code="receipt-mismatch",
            )
        outcome = _obj(_field(obj, "outcome", what), "transaction outcome")
        block_hash = _str(obj, "block_hash", what)
        _hex(block_hash, "transaction block_hash")
        return cls(
            tx_id,
            env,
            dict(outcome),
            _int(obj, "height", what),
            _int(obj, "leaf_index", what),
            block_hash,
            dict(obj),
        )


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One step of a prescription's trace: a committed transaction and its audit path to the trace's head."""

    step: str
    tx_id: str
    type: str
    status: str
    height: int
    leaf_index: int
    leaf_hash: bytes
    proof: tuple[bytes, ...]
    codes: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, value: Any, what: str = "trace step") -> TraceStep:
        obj = _obj(value, what)
        tx_id = _str(obj, "tx_id", what)
        _hex(tx_id, f"{what} tx_id")
        codes = obj.get("codes", [])
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise _bad(f"{what} codes must be a list of strings")
        return cls(
            _str(obj, "step", what),
            tx_id,
            _str(obj, "type", what),
            _str(obj, "status", what),
            _int(obj, "height", what),
            _int(obj, "leaf_index", what),
            _hex(_field(obj, "leaf_hash", what), f"{what} leaf_hash"),
            _hex_list(_field(obj, "proof", what), f"{what} proof"),
            tuple(codes),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "step": self.step,
            "tx_id": self.tx_id,
            "type": self.type,
            "status": self.status,
            "height": self.height,
            "leaf_index": self.leaf_index,
            "leaf_hash": self.leaf_hash.hex(),
            "proof": [p.hex() for p in self.proof],
        }
        if self.codes:
            out["codes"] = list(self.codes)
        return out


@dataclass(frozen=True, slots=True)
class Trace:
    """``GET /v1/prescriptions/{rx_id}/trace``: every step of a prescription, each provable under one head.

    Once :func:`verify_trace_offline` or :meth:`Client.trace` has checked it,
    every step's leaf hash is proven to sit at its leaf index under the signed
    ``tree_head``. The step names, types and statuses are the node's labels
    unless the steps' envelopes were checked too (they then match their leaves).
    """

    rx_id: str
    tree_head: TreeHead
    steps: tuple[TraceStep, ...]

    @classmethod
    def from_json(cls, value: Any) -> Trace:
        obj = _obj(value, "trace")
        steps = _field(obj, "steps", "trace")
        if not isinstance(steps, list):
            raise _bad("trace steps must be a list")
        return cls(
            _str(obj, "rx_id", "trace"),
            _head(_field(obj, "tree_head", "trace"), "trace tree_head"),
            tuple(TraceStep.from_json(s, f"trace step {i}") for i, s in enumerate(steps)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "rx_id": self.rx_id,
            "tree_head": self.tree_head.to_json(),
            "steps": [s.to_json() for s in self.steps],
        }


# --------------------------------------------------------------------------
# The checks, shared by the online client and the offline functions.
# --------------------------------------------------------------------------


def check_tree_head(head: TreeHead, trusted_keys: Iterable[str] | None = None) -> bytes:
    """Check a tree head's signer and signature; return its root as bytes.

    The signer is checked against ``trusted_keys`` first: a perfectly valid
    signature by a key nobody trusts proves nothing, and saying "untrusted"
    is more useful than checking the maths of a stranger's signature.
    """
    root = _hex(head.root_hash, "tree head root_hash")
    if trusted_keys is not None and head.signer not in frozenset(trusted_keys):
        raise SignatureError(
            f"tree head of size {head.tree_size} is signed by {head.signer}, which is not a trusted node key",
            code="untrusted-signer",
            signer=head.signer,
        )
    head.verify_signature()
    return root


def _check_envelope_signature(env: SignedEnvelope) -> None:
    """The leaf commits to the signature too; a forged one must not be 'proven' logged."""
    keys.verify(keys.ENVELOPE_DOMAIN, keys.public_key_bytes(env.signer), env.body, env.signature)


def _verify_inclusion(
    proof: InclusionProof,
    head: TreeHead,
    head_root: bytes,
    *,
    tx_id: str | None,
    leaf: bytes | None,
    leaf_index: int | None,
) -> None:
    """Tie an inclusion proof to a signed head, then check the audit path.

    Every number the Merkle check uses comes from the signed head or from the
    caller (receipt, envelope), never only from the proof, so a node cannot
    steer the check by answering for a different size, leaf or index.
    """
    if tx_id is not None and proof.tx_id != tx_id:
        raise ProofError(f"the proof is for transaction {proof.tx_id}, not {tx_id}", code="receipt-mismatch")
    if proof.tree_size != head.tree_size:
        raise ProofError(
            f"the proof is for a tree of size {proof.tree_size}, the signed tree head is of size "
            f"{head.tree_size}; fetch the proof with ?tree_size={head.tree_size}",
            tree_size=head.tree_size,
        )
    if proof.root_hash != head_root:
        raise ProofError(
            f"the proof's root {proof.root_hash.hex()} is not the signed root {head.root_hash} "
            f"of the tree of size {head.tree_size}",
            tree_size=head.tree_size,
        )
    if leaf_index is not None and proof.leaf_index != leaf_index:
        raise ProofError(
            f"the receipt places transaction {proof.tx_id} at leaf {leaf_index}; the ledger has it at "
            f"leaf {proof.leaf_index}",
            code="receipt-mismatch",
            leaf_index=leaf_index,
        )
    if leaf is not None and proof.leaf_hash != leaf:
        raise ProofError(
            f"the ledger's leaf for transaction {proof.tx_id} hashes to {proof.leaf_hash.hex()}, but the "
            f"envelope and signature given hash to {leaf.hex()}",
            code="receipt-mismatch",
        )
    merkle.verify_inclusion(
        proof.leaf_hash if leaf is None else leaf,
        proof.leaf_index if leaf_index is None else leaf_index,
        head.tree_size,
        proof.proof,
        head_root,
    )


def _check_receipt_envelope(receipt: Receipt, env: SignedEnvelope) -> None:
    if receipt.tx_id != env.tx_id:
        raise ProofError(
            f"the receipt is for transaction {receipt.tx_id}, the envelope given is {env.tx_id}",
            code="receipt-mismatch",
        )
    _check_envelope_signature(env)


def _verify_trace(trace: Trace, root: bytes, envelopes: Iterable[SignedEnvelope] = ()) -> None:
    """Prove every step of a trace under its (already signature-checked) head, then tie any envelopes given.

    An envelope ties its step's transaction id, type and leaf to the signed
    statement itself; without envelopes only the leaf hashes are proven.
    """
    if not trace.steps:
        raise ProofError(f"the trace of prescription {trace.rx_id!r} has no steps", code="bad-trace")
    size = trace.tree_head.tree_size
    by_tx: dict[str, tuple[int, TraceStep]] = {}
    for i, step in enumerate(trace.steps):
        where = f"step {i} ({step.step}, transaction {step.tx_id}, leaf {step.leaf_index})"
        try:
            merkle.verify_inclusion(step.leaf_hash, step.leaf_index, size, step.proof, root)
        except ProofError as exc:
            raise ProofError(
                f"{where} is not proven in the signed tree of size {size}: {exc.message}",
                code=exc.code,
                step=i,
                tx_id=step.tx_id,
            ) from None
        by_tx.setdefault(step.tx_id, (i, step))
    for env in envelopes:
        found = by_tx.get(env.tx_id)
        if found is None:
            raise ProofError(f"envelope {env.tx_id} is not a step of this trace", code="receipt-mismatch")
        i, step = found
        where = f"step {i} ({step.step}, transaction {step.tx_id})"
        _check_envelope_signature(env)
        leaf = merkle.leaf_hash(env.leaf_data())
        if leaf != step.leaf_hash:
            raise ProofError(
                f"{where}: the trace's leaf hash {step.leaf_hash.hex()} is not the envelope's {leaf.hex()}",
                code="receipt-mismatch",
            )
        if env.type != step.type:
            raise ProofError(
                f"{where}: the trace calls it {step.type}, the envelope is {env.type}", code="receipt-mismatch"
            )
        rx_id = env.payload.get("rx_id")
        if rx_id is not None and rx_id != trace.rx_id:
            raise ProofError(
                f"{where}: the envelope is about prescription {rx_id!r}, not {trace.rx_id!r}", code="receipt-mismatch"
            )


def _fork(trusted: TreeHead, seen: TreeHead) -> ProofError:
    return ProofError(
        f"fork: two signed tree heads of size {seen.tree_size} with different roots "
        f"({trusted.root_hash} and {seen.root_hash}); the log has shown two histories",
        code="fork",
        trusted=trusted.to_json(),
        seen=seen.to_json(),
    )


# --------------------------------------------------------------------------
# Offline verification (no network): what `medledger proof verify` runs.
# --------------------------------------------------------------------------


def _parse(parser: Any, value: Any, what: str) -> Any:
    """Turn ``bad-response`` into ``malformed``: offline input is a file, not a server reply."""
    try:
        return parser(value)
    except EncodingError as exc:
        if exc.code == "bad-response":
            raise EncodingError(f"{what}: {exc.message}", code="malformed") from None
        raise


def verify_inclusion_offline(
    proof_json: dict[str, Any],
    tree_head_json: dict[str, Any],
    envelope_wire: dict[str, Any] | None = None,
    trusted_keys: Iterable[str] | None = None,
) -> None:
    """Check a saved inclusion proof against a saved signed tree head.

    With ``envelope_wire`` the leaf is recomputed from the envelope's own bytes
    and signature (both checked), which proves *that statement* was logged;
    without it the proof's ``leaf_hash`` is taken as given, which proves only
    that some leaf with that hash was.
    """
    proof: InclusionProof = _parse(InclusionProof.from_json, proof_json, "inclusion proof")
    head: TreeHead = _parse(lambda v: _head(v, "tree head"), tree_head_json, "tree head")
    root = check_tree_head(head, trusted_keys)
    leaf = None
    tx_id = None
    if envelope_wire is not None:
        env = _wire(envelope_wire, "envelope")
        tx_id = env.tx_id
        leaf = merkle.leaf_hash(env.leaf_data())
    _verify_inclusion(proof, head, root, tx_id=tx_id, leaf=leaf, leaf_index=None)


def verify_consistency_offline(
    proof_json: dict[str, Any],
    old_head_json: dict[str, Any],
    new_head_json: dict[str, Any],
    trusted_keys: Iterable[str] | None = None,
) -> None:
    """Check that a saved newer signed head extends a saved older one.

    Same-size heads need no proof: equal roots are consistent, different roots
    are a fork (raised with both heads as evidence).
    """
    proof: ConsistencyProof = _parse(ConsistencyProof.from_json, proof_json, "consistency proof")
    old: TreeHead = _parse(lambda v: _head(v, "old tree head"), old_head_json, "old tree head")
    new: TreeHead = _parse(lambda v: _head(v, "new tree head"), new_head_json, "new tree head")
    old_root = check_tree_head(old, trusted_keys)
    new_root = check_tree_head(new, trusted_keys)
    _verify_consistency(proof, old, old_root, new, new_root)


def _verify_consistency(
    proof: ConsistencyProof, old: TreeHead, old_root: bytes, new: TreeHead, new_root: bytes
) -> None:
    if old.tree_size == new.tree_size and old_root != new_root:
        raise _fork(old, new)
    if (proof.first, proof.second) != (old.tree_size, new.tree_size):
        raise ProofError(
            f"the proof is from size {proof.first} to {proof.second}; the signed heads are of sizes "
            f"{old.tree_size} and {new.tree_size}",
            old_size=old.tree_size,
            new_size=new.tree_size,
        )
    if (proof.first_root, proof.second_root) != (old_root, new_root):
        raise ProofError(
            "the proof's roots are not the signed roots of the two tree heads",
            old_size=old.tree_size,
            new_size=new.tree_size,
        )
    merkle.verify_consistency(old.tree_size, new.tree_size, old_root, new_root, proof.proof)


def verify_receipt_offline(
    receipt_json: dict[str, Any],
    proof_json: dict[str, Any],
    envelope_wire: dict[str, Any],
    trusted_keys: Iterable[str] | None = None,
) -> Receipt:
    """Check a saved receipt: its envelope, its signed head and an inclusion proof at that head's size.

    This is what a patient or auditor holding only a receipt line (receipt +
    envelope wire form) and a proof fetched later can check on their own.
    """
    receipt: Receipt = _parse(Receipt.from_json, receipt_json, "receipt")
    proof: InclusionProof = _parse(InclusionProof.from_json, proof_json, "inclusion proof")
    env = _wire(envelope_wire, "envelope")
    _check_receipt_envelope(receipt, env)
    root = check_tree_head(receipt.tree_head, trusted_keys)
    _verify_inclusion(
        proof,
        receipt.tree_head,
        root,
        tx_id=env.tx_id,
        leaf=merkle.leaf_hash(env.leaf_data()),
        leaf_index=receipt.leaf_index,
    )
    return receipt


def check_receipt_offline(
    receipt_json: dict[str, Any],
    envelope_wire: dict[str, Any],
    trusted_keys: Iterable[str] | None = None,
) -> Receipt:
    """Check what a receipt can show without a proof; this does NOT prove inclusion.

    The receipt must name this envelope, the envelope's signature must hold,
    its tree head must be signed (by a trusted key when given) and its leaf
    index must lie inside that tree. Only an inclusion proof at the head's
    size (:func:`verify_receipt_offline`) shows the envelope is in the log.
    """
    receipt: Receipt = _parse(Receipt.from_json, receipt_json, "receipt")
    env = _wire(envelope_wire, "envelope")
    _check_receipt_envelope(receipt, env)
    check_tree_head(receipt.tree_head, trusted_keys)
    if receipt.leaf_index >= receipt.tree_head.tree_size:
        raise ProofError(
            f"the receipt places transaction {receipt.tx_id} at leaf {receipt.leaf_index}, outside its signed "
            f"tree of size {receipt.tree_head.tree_size}",
            code="receipt-mismatch",
        )
    return receipt


def verify_tree_head_offline(tree_head_json: dict[str, Any], trusted_keys: Iterable[str]) -> TreeHead:
    """Check a saved signed tree head: its signer is one of ``trusted_keys`` and its signature holds.

    A head is only worth something signed by a key the checker already trusts,
    so ``trusted_keys`` is required and may not be empty.
    """
    trusted = frozenset(trusted_keys)
    if not trusted:
        raise SignatureError(
            "a tree head alone proves nothing without a trusted node key to check its signer against",
            code="untrusted-signer",
        )
    head: TreeHead = _parse(lambda v: _head(v, "tree head"), tree_head_json, "tree head")
    check_tree_head(head, trusted)
    return head


def verify_trace_offline(
    trace_json: dict[str, Any],
    trusted_keys: Iterable[str] | None = None,
    envelopes: Iterable[Any] | None = None,
) -> Trace:
    """Check a saved ``GET /v1/prescriptions/{rx_id}/trace``: every step's inclusion under the trace's head.

    The trace's tree head must be signed (by a trusted key when given) and
    each step's audit path must lead from its leaf hash at its leaf index to
    that head's root. ``envelopes`` (wire forms, or ``GET /v1/transactions``
    answers carrying ``wire``) are each matched to their step: the signature,
    leaf hash, type and prescription id must agree.
    """
    trace: Trace = _parse(Trace.from_json, trace_json, "trace")
    root = check_tree_head(trace.tree_head, trusted_keys)
    decoded = []
    for i, item in enumerate(envelopes or ()):
        decoded.append(_wire(item, f"envelope {i}"))
    _verify_trace(trace, root, decoded)
    return trace


# --------------------------------------------------------------------------
# The online client.
# --------------------------------------------------------------------------


def problem_error(response: httpx.Response) -> MedledgerError:
    """The server's problem+json as a :class:`MedledgerError` with its code, status and detail.

    404 becomes :class:`NotFoundError` so callers can catch "not there (yet)"
    by type; everything else stays a plain :class:`MedledgerError`, because
    mapping a server's code onto a local class (say ``bad-proof`` onto
    :class:`ProofError`) would claim a local verification failed when it was
    the server refusing a query.
    """
    status = response.status_code
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        text = response.text.strip()[:200]
        message = f"HTTP {status} from {response.request.method} {response.request.url.path}"
        return MedledgerError(message + (f": {text}" if text else ""), code="http-error", status=status)
    code = problem.get("code")
    detail = problem.get("detail")
    extra = {k: v for k, v in problem.items() if k not in {"code", "status", "detail", "type", "title", "message"}}
    cls = NotFoundError if status == 404 else MedledgerError
    return cls(
        detail if isinstance(detail, str) else f"HTTP {status}",
        code=code if isinstance(code, str) else "http-error",
        status=status,
        **extra,
    )


def _check_tx_id(tx_id: str) -> None:
    """A tx_id goes into a URL path; only the one hex spelling may, so nothing else can be addressed."""
    if not isinstance(tx_id, str) or _hex64.fullmatch(tx_id) is None:
        raise EncodingError(f"a tx_id is 64 lowercase hex digits, got {tx_id!r}", code="malformed")


class Client:
    """A light client for one medledger node.

    Thread-safe: trust updates are serialised, so concurrent callers cannot
    both advance from the same head and leave it pointing at the wrong one.
    """

    def __init__(
        self,
        url: str,
        *,
        trusted_node_keys: Iterable[str] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        timeout: float = 60,
        transport: httpx.BaseTransport | None = None,
        token: str | None = None,
    ) -> None:
        """``transport`` swaps the HTTP transport (custom TLS, proxies, or an in-memory log in tests).

        ``token`` is a member credential (``medledger credentials issue``), sent
        as ``Authorization: Bearer <token>`` on every request; the node's
        member-only read routes need one, proofs and tree heads do not.
        """
        headers = {"accept": "application/json"}
        if token is not None:
            if not isinstance(token, str) or not token or any(c.isspace() or not c.isprintable() for c in token):
                raise EncodingError("a bearer token is a non-empty string without spaces", code="bad-argument")
            headers["authorization"] = f"Bearer {token}"
        self.url = url.rstrip("/")
        self.trusted_node_keys: frozenset[str] | None = (
            None if trusted_node_keys is None else frozenset(trusted_node_keys)
        )
        self.state_file = None if state_file is None else Path(state_file)
        self._lock = threading.Lock()
        # size -> a head of that size proven consistent with the trusted one;
        # receipts of one block share a head, so most need no second proof.
        self._verified: dict[int, TreeHead] = {}
        self._trusted: TreeHead | None = None
        self._clock_lock = threading.Lock()
        self._clock_reading: tuple[int, float, float] | None = None
        if self.state_file is not None and self.state_file.exists():
            self._trusted = self._load_state(self.state_file)
            self._verified[self._trusted.tree_size] = self._trusted
        # Last, so a bad state file leaves no open connection pool behind.
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers, transport=transport)

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- HTTP -------------------------------------------------------------------

    def _unreachable(self, exc: Exception) -> MedledgerError:
        return MedledgerError(f"cannot reach the node at {self.url}: {exc}", code="unreachable", status=503)

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise problem_error(response)
        try:
            return response.json()
        except ValueError:
            raise _bad(f"{method} {path} answered {response.status_code} with a body that is not JSON") from None

    # -- readiness and the node's clock ---------------------------------------------

    def wait_ready(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the node to answer ``GET /healthz``.

        Only a connection that fails (nobody listening yet, as right after
        ``medledger serve ... &``) is tried again; any answer ends the wait, so
        a wrong URL or a refusing node is reported by the next call at once,
        not after the timeout.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._http.get("/healthz")
                return
            except httpx.ConnectError as exc:
                if time.monotonic() >= deadline:
                    raise MedledgerError(
                        f"no medledger node answered at {self.url} within {timeout:g} s ({exc}); is `medledger "
                        "serve` running there?",
                        code="unreachable",
                        status=503,
                    ) from None
                time.sleep(0.1)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._unreachable(exc) from None

    def clock(self) -> int:
        """The node's time now, epoch milliseconds: stamp envelopes with it (``TxBuilder(key, clock=client.clock)``).

        The node refuses an envelope whose ``created_at`` is minutes from its
        own clock. That clock is normally the wall clock, but the demo's node
        runs on its simulated province's time, a day a minute, where a wall
        clock reading is months off. ``GET /healthz`` publishes the node's
        ``time`` and ``clock_rate``; one reading is extrapolated at that rate
        and read again after a while. A node that publishes no time gives the
        local wall clock.
        """
        with self._clock_lock:
            reading = self._clock_reading
            resync = _WALL_CLOCK_RESYNC_S if reading is not None and reading[1] == 1.0 else _FAST_CLOCK_RESYNC_S
            if reading is None or time.monotonic() - reading[2] > resync:
                reading = self._clock_reading = self._read_clock()
        node_ms, rate, at = reading
        return node_ms + round(rate * (time.monotonic() - at) * 1000)

    def _read_clock(self) -> tuple[int, float, float]:
        """(node ms, rate, local monotonic seconds) of one ``GET /healthz``, timed at the middle of the round trip."""
        sent = time.monotonic()
        health = self._request("GET", "/healthz")
        middle = (sent + time.monotonic()) / 2
        if not isinstance(health, dict) or not isinstance(health.get("time"), str):
            return now_ms(), 1.0, middle
        try:
            node_ms = parse_ms(health["time"])
        except MedledgerError:
            raise _bad(f"GET /healthz answered a time that is not one: {str(health['time'])[:40]!r}") from None
        rate = health.get("clock_rate", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise _bad(f"GET /healthz answered a clock_rate that is not a positive number: {rate!r}")
        return node_ms, float(rate), middle

    # -- API calls --------------------------------------------------------------

    def submit(self, envelopes: SignedEnvelope | Sequence[SignedEnvelope], *, verify: bool = False) -> list[Receipt]:
        """Submit one envelope or a batch; return receipts in the same order.

        With a trusted head (a state file's, or one seen earlier), the node's
        current head is tied to it first, and nothing is sent if it cannot be
        (:class:`TrustError`, ``committed=False``). The node answers only once
        the block is durable, so a returned receipt means "on disk". The tree
        heads inside the receipts are checked and trust moves forward to the
        newest; if that fails the envelopes are committed all the same, and
        the :class:`TrustError` says so (``committed=True``). With
        ``verify=True`` each receipt's inclusion is proven too (one more
        request per receipt).
        """
        single = isinstance(envelopes, SignedEnvelope)
        batch: list[SignedEnvelope] = [envelopes] if isinstance(envelopes, SignedEnvelope) else list(envelopes)
        if not batch:
            raise EncodingError("no envelopes to submit", code="empty-batch")
        self._check_trust_before_submit()
        body: Any = batch[0].to_wire() if single else [e.to_wire() for e in batch]
        answer = self._request("POST", "/v1/transactions", json=body)
        try:
            return self._check_receipts(answer, batch, single=single, verify=verify)
        except MedledgerError as exc:
            if exc.code == "receipt-mismatch" or isinstance(exc, TrustError):
                raise
            ids = ", ".join(e.tx_id for e in batch[:3]) + (f" and {len(batch) - 3} more" if len(batch) > 3 else "")
            raise TrustError(
                f"the node committed transaction{'s' if len(batch) > 1 else ''} {ids} (do not submit "
                f"{'them' if len(batch) > 1 else 'it'} again), but its receipt could not be tied to the tree head "
                f"trusted in {self._trust_source()}: {exc.message}",
                code="fork" if exc.code == "fork" else None,
                committed=True,
                tx_ids=[e.tx_id for e in batch],
                reason=exc.code,
            ) from None

    def _check_receipts(
        self, answer: Any, batch: list[SignedEnvelope], *, single: bool, verify: bool
    ) -> list[Receipt]:
        """Receipts of a submission, each tied to its envelope, their heads to the trusted one."""
        if single:
            receipts_json: Any = [answer]
        else:
            receipts_json = _field(_obj(answer, "submit response"), "receipts", "submit response")
            if not isinstance(receipts_json, list):
                raise _bad("submit response receipts must be a list")
        receipts = [Receipt.from_json(r) for r in receipts_json]
        if len(receipts) != len(batch):
            raise _bad(f"{len(batch)} envelopes submitted but {len(receipts)} receipts returned")
        for receipt, env in zip(receipts, batch, strict=True):
            if receipt.tx_id != env.tx_id:
                raise ProofError(
                    f"receipt for {receipt.tx_id} returned where {env.tx_id} was submitted",
                    code="receipt-mismatch",
                )
        if verify:
            for receipt, env in zip(receipts, batch, strict=True):
                self.verify_receipt(receipt, env)
        else:
            heads = {(r.tree_head.tree_size, r.tree_head.root_hash): r.tree_head for r in receipts}
            for key in sorted(heads):
                self._observe(heads[key], allow_older=True)
        return receipts

    def tree_head(self) -> TreeHead:
        """The node's current signed tree head, checked and made the trusted head.

        A head smaller than the trusted one is refused: a node serving an
        older view than it already showed this client is rolling back.
        """
        head = _head(self._request("GET", "/v1/tree-head"), "tree head")
        self._observe(head, allow_older=False)
        return head

    def tree_head_at(self, tree_size: int) -> TreeHead:
        """The node's signed head of ``tree_size`` (a block boundary), checked against the trusted head.

        An older head is accepted if consistent with the trusted one; it does not move trust back.
        """
        head = _head(self._request("GET", "/v1/tree-head", params={"tree_size": tree_size}), "tree head")
        if head.tree_size != tree_size:
            raise ProofError(f"asked for the tree head of size {tree_size}; the node answered size {head.tree_size}")
        self._observe(head, allow_older=True)
        return head

    def get_transaction(self, tx_id: str) -> Transaction:
        """A committed transaction, its envelope decoded from (and checked against) its signed bytes."""
        _check_tx_id(tx_id)
        tx = Transaction.from_json(self._request("GET", f"/v1/transactions/{tx_id}"))
        if tx.tx_id != tx_id:
            raise ProofError(f"asked for transaction {tx_id}, the node answered {tx.tx_id}", code="receipt-mismatch")
        return tx

    def inclusion_proof(self, tx_id: str, tree_size: int) -> InclusionProof:
        """The node's audit path for ``tx_id`` in the tree of ``tree_size`` (unverified: see verify_receipt)."""
        _check_tx_id(tx_id)
        proof = InclusionProof.from_json(
            self._request("GET", f"/v1/proofs/inclusion/{tx_id}", params={"tree_size": tree_size})
        )
        if proof.tx_id != tx_id or proof.tree_size != tree_size:
            raise ProofError(
                f"asked for {tx_id} at size {tree_size}; the node answered {proof.tx_id} at size {proof.tree_size}",
                code="receipt-mismatch",
            )
        return proof

    def consistency_proof(self, first: int, second: int) -> ConsistencyProof:
        """The node's consistency proof between two sizes (unverified: the roots it names are its claim)."""
        proof = ConsistencyProof.from_json(
            self._request("GET", "/v1/proofs/consistency", params={"first": first, "second": second})
        )
        if (proof.first, proof.second) != (first, second):
            raise ProofError(
                f"asked for a proof from {first} to {second}; the node answered {proof.first} to {proof.second}"
            )
        return proof

    def trace(self, rx_id: str, *, check_envelopes: bool = False) -> Trace:
        """A prescription's trace, every step proven under the trace's head, which then advances trust.

        With ``check_envelopes`` each step's transaction is fetched too and
        tied to its leaf (signature, type, prescription id), one request per
        step. Needs a member ``token`` on nodes that guard the trace route.
        """
        if not isinstance(rx_id, str) or _rx_id.fullmatch(rx_id) is None:
            raise EncodingError(f"{rx_id!r} is not a prescription id", code="malformed")
        trace = Trace.from_json(self._request("GET", f"/v1/prescriptions/{rx_id}/trace"))
        if trace.rx_id != rx_id:
            raise ProofError(f"asked for the trace of {rx_id!r}; the node answered {trace.rx_id!r}", code="bad-trace")
        root = check_tree_head(trace.tree_head, self.trusted_node_keys)
        envelopes = [self.get_transaction(s.tx_id).envelope for s in trace.steps] if check_envelopes else []
        _verify_trace(trace, root, envelopes)
        self._observe(trace.tree_head, allow_older=True)
        return trace

    # -- trust ------------------------------------------------------------------

    def _trust_source(self) -> str:
        return str(self.state_file) if self.state_file is not None else "this client's memory"

    def _check_trust_before_submit(self) -> None:
        """Tie the node's current head to the trusted one before anything is sent.

        Without this a client holding the state of another log (a ledger
        re-initialised at the same URL, a node that rolled back) would only
        find out from the receipt, after its envelopes were committed, and a
        retry would submit them twice.
        """
        trusted = self._trusted
        if trusted is None:
            return
        head = _head(self._request("GET", "/v1/tree-head"), "tree head")
        try:
            self._observe(head, allow_older=False)
        except MedledgerError as exc:
            other_key = (
                ""
                if head.signer == trusted.signer
                else f", and it signs with node key {head.signer}, not {trusted.signer} (a re-initialised ledger?)"
            )
            hint = (
                f"; if that ledger was replaced on purpose, move {self.state_file} aside to trust the new one"
                if self.state_file is not None
                else ""
            )
            raise TrustError(
                f"nothing was submitted: the node at {self.url} cannot show that its log extends the tree head of "
                f"size {trusted.tree_size} trusted in {self._trust_source()}{other_key}: {exc.message}{hint}",
                code="fork" if exc.code == "fork" else None,
                committed=False,
                state_file=None if self.state_file is None else str(self.state_file),
                reason=exc.code,
            ) from None

    @property
    def trusted_head(self) -> TreeHead | None:
        """The newest tree head this client has proven consistent with everything it trusted before."""
        return self._trusted

    def verify_receipt(self, receipt: Receipt, envelope: SignedEnvelope) -> None:
        """Prove that ``envelope`` is in the log where ``receipt`` says, then advance trust.

        Checks, in order: the receipt names this envelope and the envelope's
        signature holds; the receipt's tree head is signed by a trusted key;
        the node's audit path at that head's size leads from the envelope's
        leaf, at the receipt's index, to the signed root; and that head is
        consistent with the trusted head.
        """
        _check_receipt_envelope(receipt, envelope)
        head = receipt.tree_head
        root = check_tree_head(head, self.trusted_node_keys)
        proof = self.inclusion_proof(receipt.tx_id, head.tree_size)
        _verify_inclusion(
            proof,
            head,
            root,
            tx_id=envelope.tx_id,
            leaf=merkle.leaf_hash(envelope.leaf_data()),
            leaf_index=receipt.leaf_index,
        )
        self._observe(head, allow_older=True)

    def observe(self, head: TreeHead) -> None:
        """Check a tree head learnt elsewhere (another node, gossip, a saved receipt).

        It must be signed by a trusted key and consistent with the trusted
        head; a larger one becomes the trusted head, an older one is proven a
        prefix of it. A different root at a size already seen raises a fork.
        """
        self._observe(head, allow_older=True)

    def _observe(self, head: TreeHead, *, allow_older: bool) -> None:
        check_tree_head(head, self.trusted_node_keys)
        with self._lock:
            trusted = self._trusted
            if trusted is None:
                # Trust on first use: nothing to be consistent with yet.
                self._advance(head)
                return
            known = self._verified.get(head.tree_size)
            if known is not None and known.root_hash != head.root_hash:
                raise _fork(known, head)
            if head.tree_size < trusted.tree_size and not allow_older:
                raise ProofError(
                    f"the node serves a tree head of size {head.tree_size}, smaller than the size "
                    f"{trusted.tree_size} it already signed for this client: a log never shrinks",
                    code="tree-head-rollback",
                    trusted=trusted.to_json(),
                    seen=head.to_json(),
                )
            if known is not None:
                return
            if head.tree_size < trusted.tree_size:
                self._prove_consistent(head, trusted)
                self._remember(head)
                return
            self._prove_consistent(trusted, head)
            self._advance(head)

    def _prove_consistent(self, old: TreeHead, new: TreeHead) -> None:
        """Fetch and check the proof that ``new`` extends ``old`` (both already signature-checked)."""
        old_root = bytes.fromhex(old.root_hash)
        if old.tree_size == 0:
            if old_root != merkle.EMPTY_ROOT:
                raise ProofError("a signed head of size 0 must carry the empty tree's root", tree_size=0)
            return
        proof = self.consistency_proof(old.tree_size, new.tree_size)
        _verify_consistency(proof, old, old_root, new, bytes.fromhex(new.root_hash))

    def _remember(self, head: TreeHead) -> None:
        if len(self._verified) >= _VERIFIED_CACHE_LIMIT:
            self._verified.clear()
            if self._trusted is not None:
                self._verified[self._trusted.tree_size] = self._trusted
        self._verified[head.tree_size] = head

    def _advance(self, head: TreeHead) -> None:
        """Make ``head`` the trusted head; persist it before anyone can rely on it."""
        if self.state_file is not None:
            self._save_state(self.state_file, head)
        self._trusted = head
        self._remember(head)

    # -- state file -------------------------------------------------------------

    def _load_state(self, path: Path) -> TreeHead:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise EncodingError(f"cannot read client state file {path}: {exc}", code="bad-state-file") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise EncodingError(f"{path} is not a {STATE_FORMAT} state file", code="bad-state-file")
        try:
            head = TreeHead.from_json(data.get("tree_head"))
        except EncodingError as exc:
            raise EncodingError(f"{path}: {exc.message}", code="bad-state-file") from None
        # A state file is local and could have been edited; hold it to the same
        # rules as a head fresh from the network.
        check_tree_head(head, self.trusted_node_keys)
        return head

    def _save_state(self, path: Path, head: TreeHead) -> None:
        """Write atomically (temp file, fsync, rename, fsync dir).

        A crash at any instant leaves the old head or the new one, never half
        a file, and a head is on disk before the client acts on it.
        """
        text = json.dumps({"format": STATE_FORMAT, "url": self.url, "tree_head": head.to_json()}, indent=2) + "\n"
        directory = path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
