"""Identity and the generic transaction types every medledger ledger has.

No identity lives outside the ledger: the genesis block names the regulator,
the consortium's nodes and the initial parameters; every other key is
registered, rotated and revoked by transactions, and a signature counts only
if its key is active in world state at that block.

State keys written here:

* ``consortium``: genesis facts (name, regulator member id).
* ``params``: ledger parameters (clock skew allowed, ...).
* ``member/<id>``: ``{org, role, key, status, registered}``.
* ``key/<kid>``: ``{member, status, since, until}`` (``until`` once inactive).

``anchor.record`` writes no state: the log entry is the record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medledger.errors import EncodingError
from medledger.ledger.canonical import b64d
from medledger.ledger.state import BlockState
from medledger.ledger.syntax import KeyId, Label, MemberId, Role, Sha256Hex, Slug, Title
from medledger.ledger.txtypes import (
    OK,
    Outcome,
    Registry,
    Signer,
    TxContext,
    TxType,
    rejected,
)

REGULATOR = "regulator"
NODE = "node"
ADMIN = "admin"
#: a consortium auditor: replicates and reads everything, writes nothing of its own
AUDITOR = "auditor"
#: Roles only the regulator may grant (an institution granting itself auditor would read every institution).
PRIVILEGED_ROLES = frozenset({REGULATOR, NODE, ADMIN, AUDITOR})
DEFAULT_MAX_SKEW_MS = 5 * 60 * 1000



class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MemberRef(_Payload):
    member: MemberId
    key: KeyId


class Params(_Payload):
    max_clock_skew_ms: int = Field(DEFAULT_MAX_SKEW_MS, ge=1000, le=24 * 3600 * 1000)


class Genesis(_Payload):
    consortium: Title
    regulator: MemberRef
    nodes: list[MemberRef] = Field(min_length=1, max_length=32)
    params: Params = Params()


class Register(_Payload):
    member: MemberId
    org: Slug
    role: Role
    key: KeyId


class Rotate(_Payload):
    member: MemberId
    new_key: KeyId


class Revoke(_Payload):
    member: MemberId
    reason: Literal["key-compromise", "left-organisation", "superseded", "misconduct", "other"]


class Anchor(_Payload):
    label: Label
    sha256: Sha256Hex


def explain(exc: ValidationError, whole: str = "payload") -> str:
    """The first faults of a validation, each named by its field path (not pydantic's internals)."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or whole}: {err['msg']}" for err in exc.errors()[:5])


def validator(model: type[_Payload]) -> Callable[[dict[str, Any]], Any]:
    """Turn a payload model into a gateway validator that explains every fault."""

    def validate(payload: dict[str, Any]) -> Any:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise EncodingError(f"invalid {model.__name__} payload: {explain(exc)}", code="invalid-payload") from None

    return validate


def _check_key(kid: str) -> None:
    b64d(kid, what="key", length=32)


def signer_of(get: Callable[[str], Any], kid: str) -> Signer | None:
    """Resolve a key to its member through any state reader (a block overlay
    during execution, the committed store at admission)."""
    key = get("key/" + kid)
    if key is None:
        return None
    member = get("member/" + key["member"])
    if member is None:
        return None
    active = key["status"] == "active" and member["status"] == "active"
    return Signer(kid, key["member"], member["org"], member["role"], active)


def _add_member(state: BlockState, member: str, org: str, role: str, kid: str, height: int) -> None:
    state.put("member/" + member, {"org": org, "role": role, "key": kid, "status": "active", "registered": height})
    state.put("key/" + kid, {"member": member, "status": "active", "since": height})


def _genesis(ctx: TxContext) -> Outcome:
    g: Genesis = ctx.payload
    state = ctx.state
    if state.get("consortium") is not None:
        return rejected("GENESIS-EXISTS", "this ledger already has a genesis")
    state.put("consortium", {"name": g.consortium, "regulator": g.regulator.member})
    state.put("params", g.params.model_dump())
    _add_member(state, g.regulator.member, REGULATOR, REGULATOR, g.regulator.key, ctx.height)
    for node in g.nodes:
        _add_member(state, node.member, REGULATOR, NODE, node.key, ctx.height)
    return OK


def _may_manage(signer: Signer, member_org: str, role: str | None) -> bool:
    if signer.role == REGULATOR:
        return True
    if signer.role != ADMIN or signer.org != member_org:
        return False
    return role is None or role not in PRIVILEGED_ROLES


def _register(ctx: TxContext) -> Outcome:
    p: Register = ctx.payload
    _check_key(p.key)
    if not p.member.startswith(p.org + "/") and ctx.signer.role != REGULATOR:
        return rejected("MEMBER-ID", f"member id {p.member!r} must start with its organisation {p.org!r}/")
    if not _may_manage(ctx.signer, p.org, p.role):
        return rejected(
            "NOT-AUTHORISED",
            f"a {ctx.signer.role} of {ctx.signer.org!r} may not register a {p.role} of {p.org!r}",
        )
    if ctx.state.get("member/" + p.member) is not None:
        return rejected("MEMBER-EXISTS", f"member {p.member!r} is already registered")
    if ctx.state.get("key/" + p.key) is not None:
        return rejected("KEY-REUSED", "that key is or was already registered to a member")
    _add_member(ctx.state, p.member, p.org, p.role, p.key, ctx.height)
    return OK


def _retire_key(state: BlockState, kid: str, status: str, height: int) -> None:
    record = state.get("key/" + kid)
    if record is not None:
        state.put("key/" + kid, {**record, "status": status, "until": height})


def _rotate(ctx: TxContext) -> Outcome:
    p: Rotate = ctx.payload
    _check_key(p.new_key)
    member = ctx.state.get("member/" + p.member)
    if member is None or member["status"] != "active":
        return rejected("UNKNOWN-MEMBER", f"no active member {p.member!r}")
    if ctx.signer.member != p.member and not _may_manage(ctx.signer, member["org"], None):
        return rejected("NOT-AUTHORISED", f"{ctx.signer.member!r} may not rotate the key of {p.member!r}")
    if ctx.state.get("key/" + p.new_key) is not None:
        return rejected("KEY-REUSED", "the new key is or was already registered")
    _retire_key(ctx.state, member["key"], "rotated", ctx.height)
    ctx.state.put("member/" + p.member, {**member, "key": p.new_key})
    ctx.state.put("key/" + p.new_key, {"member": p.member, "status": "active", "since": ctx.height})
    return OK


def _revoke(ctx: TxContext) -> Outcome:
    p: Revoke = ctx.payload
    member = ctx.state.get("member/" + p.member)
    if member is None or member["status"] != "active":
        return rejected("UNKNOWN-MEMBER", f"no active member {p.member!r}")
    if member["role"] == REGULATOR:
        return rejected("NOT-AUTHORISED", "the regulator cannot be revoked; rotate its key instead")
    if ctx.signer.member != p.member and not _may_manage(ctx.signer, member["org"], None):
        return rejected("NOT-AUTHORISED", f"{ctx.signer.member!r} may not revoke {p.member!r}")
    _retire_key(ctx.state, member["key"], "revoked", ctx.height)
    ctx.state.put("member/" + p.member, {**member, "status": "revoked", "revoked": ctx.height, "reason": p.reason})
    return OK


def _anchor(ctx: TxContext) -> Outcome:
    """An anchor is evidence, not state: the log entry and its inclusion proof are
    the proof that this member committed this digest at this time. Anchoring the
    same digest again is allowed (a re-sent export is a fact worth logging too)."""
    return OK


GENESIS = TxType(
    "genesis", frozenset({REGULATOR}), validator(Genesis), _genesis, "names the consortium, regulator and nodes"
)
CORE_TYPES = (
    TxType(
        "member.register",
        frozenset({REGULATOR, ADMIN}),
        validator(Register),
        _register,
        "registers a member's key with its organisation and role",
    ),
    TxType(
        "member.rotate",
        None,
        validator(Rotate),
        _rotate,
        "replaces a member's key; the old key stops counting from this block",
    ),
    TxType(
        "member.revoke",
        None,
        validator(Revoke),
        _revoke,
        "revokes a member and its key; its signatures stop counting from this block",
    ),
    TxType(
        "anchor.record", None, validator(Anchor), _anchor, "commits the SHA-256 of an external document under a label"
    ),
)


def core_registry() -> Registry:
    """A registry holding the generic ledger types (contracts add theirs)."""
    registry = Registry()
    registry.register(GENESIS)
    for tx_type in CORE_TYPES:
        registry.register(tx_type)
    return registry
