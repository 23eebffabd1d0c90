"""No native transaction type has a string field a phone, an ID number, a name or free text can travel in.

Issue 12 found ``anchor.record`` committing the label
``patient/13899990000/ZZCANARYNAME/110101199003077777``. Here every string
field of every native type (and of the public desk's forms) is given each
canary in turn, submitted over real HTTP by a member whose role may sign that
type, and must be refused 422 ``invalid-payload`` with a sentence naming the
field. Then every byte the node left on disk (``ledger.sqlite``, its ``-wal``
and ``-shm``, the FHIR projection, everything in the data directory) is
scanned for the canaries: there must be none. A control label committed the
same way proves the scan sees what the node writes.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest
from api_support import ApiLedger, body
from pydantic import BaseModel

from medledger.contracts.types import DOCTOR, GATEWAY, INSURER, PHARMACIST, registry
from medledger.errors import EncodingError
from medledger.ledger import envelope
from medledger.ledger.identity import ADMIN, REGULATOR, Genesis
from medledger.ledger.keys import SigningKey
from medledger.node.bootstrap import DEMO_ADMIN, DEMO_ORG
from medledger.transactions import PAYLOAD_MODELS, TxBuilder
from tx_samples import SAMPLES

CANARIES = {
    "phone": "13899990000",
    "phone-spaced": "138-9999-0000",
    "id-number": "110101199003077777",
    "name-token": "ZZCANARYNAME",
    "name": "Zhang San",
    "address": "No.5 Chang'an Avenue, Dongcheng, Beijing",
    "free-text": "patient said the pills made her dizzy",
}
#: what the scan looks for: the canaries' distinctive bytes, in the spellings a refusal could have let through
NEEDLES = (b"13899990000", b"9999-0000", b"110101199003077777", b"ZZCANARYNAME", b"Zhang San", b"Chang'an", b"dizzy")
#: a regulator's genesis: refused later as GENESIS-EXISTS, but a committed REJECTED carries its payload for ever
GENESIS = {
    "consortium": "demo-consortium",
    "regulator": {"member": "regulator", "key": "A" * 43},
    "nodes": [{"member": "node", "key": "B" * 43}],
}
#: the optional fields the samples leave out, so every string field a payload can hold gets its canaries
OPTIONAL = {
    "consultation.open": {
        "doctor": "hosp/x",
        "guardian": "cd" * 32,
        "prior": {"document": "ef" * 32, "org": "hosp", "date": "2026-01-01", "diagnosis": "I10"},
        "app": "app",
    },
    "prescription.issue": {
        "prescriber": {"member": "hosp/x", "key": "A" * 43, "resource_sha256": "ef" * 32, "signature": "A" * 86}
    },
    "delivery.handover": {"to": "patient", "recipient": "cd" * 32},
    "complaint.file": {"complainant": "cd" * 32},
    "report.adverse-event": {"org": "hosp", "rxnorm": "123"},
}
#: a signer of each role: the types' own roles, so a refusal can only be about the payload
ROLES = (REGULATOR, ADMIN, DOCTOR, PHARMACIST, GATEWAY, INSURER)


def _string_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a payload a string sits: values, list items, and the keys of free-form maps."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            if path and path[-1] == "params":  # rulebook parameter names are strings too
                yield (*path, ("key", key))
            yield from _string_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _string_paths(item, (*path, i))


def _planted(payload: Any, path: tuple[Any, ...], canary: str) -> Any:
    """``payload`` with ``canary`` in place of the string at ``path`` (a ``("key", k)`` step renames key k)."""
    if not path:
        return canary
    step, rest = path[0], path[1:]
    if isinstance(step, tuple):
        return {(canary if k == step[1] else k): v for k, v in payload.items()}
    if isinstance(payload, list):
        return [(_planted(v, rest, canary) if i == step else v) for i, v in enumerate(payload)]
    return {k: (_planted(v, rest, canary) if k == step else v) for k, v in payload.items()}


SAMPLE = {**{t: {**p, **OPTIONAL.get(t, {})} for t, p in SAMPLES.items()}, "genesis": GENESIS}
CASES = [(type_, path) for type_ in sorted(SAMPLE) for path in _string_paths(SAMPLE[type_])]


def _model_strings(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every string-holding field of a payload model, as ``a.b``, ``a.[]`` (list items), ``a.<key>`` (map keys)."""
    return {leaf for name, info in model.model_fields.items() for leaf in _leaves(info.annotation, prefix + name)}


def _leaves(tp: Any, name: str) -> set[str]:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return _model_strings(tp, name + ".")
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str or (origin is Literal and all(isinstance(a, str) for a in args)):
        return {name}
    if origin is dict:
        return {f"{name}.<key>"} | _leaves(args[1], f"{name}.<key>")
    if origin is list:
        return _leaves(args[0], f"{name}.[]")
    return set().union(*(_leaves(a, name) for a in args)) if args else set()


def _spelt(path: tuple[Any, ...]) -> str:
    return ".".join("<key>" if isinstance(p, tuple) else "[]" if isinstance(p, int) else str(p) for p in path)


def test_the_canaries_reach_every_string_field_of_every_native_type() -> None:
    """The sweep below is complete: a new type, or a new string field, without a sample fails here."""
    models = {**PAYLOAD_MODELS, "genesis": Genesis}
    assert set(models) == set(registry().types), "every native type has a payload model here"
    for type_, model in models.items():
        assert {_spelt(p) for t, p in CASES if t == type_} == _model_strings(model), type_


@pytest.fixture(scope="module")
def signers(live: ApiLedger) -> dict[str, SigningKey]:
    """A key of every role, registered over HTTP at the demo institution (the regulator's own for its types)."""
    keys = {REGULATOR: live.keys.regulator, ADMIN: live.keys.demo_admin}
    for role in (DOCTOR, PHARMACIST, GATEWAY, INSURER):
        key = SigningKey.generate()
        payload = {"member": f"{DEMO_ORG}/canary-{role}", "org": DEMO_ORG, "role": role, "key": key.key_id}
        live.submit(envelope.build(live.keys.demo_admin, "member.register", payload))
        keys[role] = key
    assert DEMO_ADMIN.startswith(DEMO_ORG + "/")
    return keys


def _signer(type_: str, signers: dict[str, SigningKey]) -> SigningKey:
    roles = registry().types[type_].roles
    return next(signers[role] for role in ROLES if roles is None or role in roles)


def _field(path: tuple[Any, ...]) -> str:
    return str(path[0][1] if isinstance(path[0], tuple) else path[0])


@pytest.mark.parametrize(("type_", "path"), CASES, ids=[f"{t}:{'.'.join(map(str, p))}" for t, p in CASES])
def test_every_string_field_refuses_every_canary(
    live: ApiLedger, signers: dict[str, SigningKey], type_: str, path: tuple[Any, ...]
) -> None:
    sample = SAMPLE[type_]
    key = _signer(type_, signers)
    for name, canary in CANARIES.items():
        env = envelope.build(key, type_, _planted(sample, path, canary))
        r = live.post(body([env.to_wire()]))
        assert r.status_code == 422, (name, r.status_code, r.text)
        problem = r.json()
        detail = " ".join([problem["detail"], *(e.get("detail", "") for e in problem.get("errors", []))])
        assert "invalid-payload" in (problem["code"], *(e.get("code") for e in problem.get("errors", []))), problem
        assert _field(path) in detail, (name, detail)


@pytest.mark.parametrize(
    ("route", "field", "base"),
    [
        ("/v1/public/complaints", "about", {"category": "billing"}),
        ("/v1/public/adverse-events", "org", {"category": "fall", "seriousness": "non-serious"}),
        ("/v1/public/adverse-events", "rxnorm", {"category": "fall", "seriousness": "non-serious"}),
        ("/v1/public/adverse-events", "occurred_at", {"category": "fall", "seriousness": "non-serious"}),
    ],
)
def test_the_public_desk_refuses_every_canary(live: ApiLedger, route: str, field: str, base: dict[str, str]) -> None:
    form = {"occurred_at": "2026-01-01T00:00:00.000Z", **base}
    for name, canary in CANARIES.items():
        r = live.http.post(route, json={**form, field: canary})
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)


def test_the_label_of_issue_12_is_refused_with_the_rule_it_broke(live: ApiLedger) -> None:
    label = "patient/13899990000/ZZCANARYNAME/110101199003077777"
    env = envelope.build(live.keys.demo_admin, "anchor.record", {"label": label, "sha256": "ab" * 32})
    r = live.post(body([env.to_wire()]))
    assert r.status_code == 422, r.text
    assert "label" in r.text and "capital letter" in r.text
    digits = {"label": "patient/13899990000/visit", "sha256": "ab" * 32}
    r = live.post(body([envelope.build(live.keys.demo_admin, "anchor.record", digits).to_wire()]))
    assert r.status_code == 422, r.text
    assert "label: a run of 11 digits could be a phone or ID number" in r.text, r.text


def test_nothing_of_any_canary_is_on_disk(live: ApiLedger, signers: dict[str, SigningKey]) -> None:
    """Runs after the refusals (file order): the whole data directory, byte by byte."""
    control = "canary-control/anchor/2026-11-24"
    live.submit(envelope.build(live.keys.demo_admin, "anchor.record", {"label": control, "sha256": "cd" * 32}))
    files = [p for p in Path(live.data_dir).rglob("*") if p.is_file()]
    assert any(p.name.startswith("ledger.sqlite") for p in files)
    blobs = {p: p.read_bytes() for p in files}
    assert any(control.encode() in blob for blob in blobs.values()), "the scan sees committed payloads"
    hits = [(p.name, needle) for p, blob in blobs.items() for needle in NEEDLES if needle in blob]
    assert hits == []


@pytest.mark.parametrize(
    ("label", "rule"),
    [
        ("his/daily-export/2026-11-24", None),
        ("his/export-2026-11/batch-3", None),
        ("fhir/consent/qwertyuiopasdfghjklzxcvb", None),
        ("bench/ingest/999999", None),
        ("bench/ingest/1m234567", None),
        ("bench/ingest/1234567", "a run of 7 digits could be a phone or ID number"),
        ("his/phone/138-9999-0000", "a run of 11 digits"),
        ("his/id/110101-1990-03-07-7777", "a run of 18 digits"),
        ("his/day/2026-13-45", "a run of 8 digits"),
        ("his/ZZCANARYNAME", "a label may not hold a capital letter"),
        ("his/zhang san", "a label may not hold a space"),
        ("his/张三", "a label may not hold a non-ASCII character"),
        ("patient", "a label must be namespace/kind"),
        ("2026/export", "a label must be namespace/kind"),
    ],
)
def test_the_builder_refuses_a_label_before_signing_with_the_rule_it_broke(label: str, rule: str | None) -> None:
    """The library applies the gateway's own syntax: the same sentence, without a round trip."""
    builder = TxBuilder(SigningKey.generate())
    if rule is None:
        assert builder.anchor_record(label=label, sha256="ab" * 32).payload["label"] == label
        return
    with pytest.raises(EncodingError) as caught:
        builder.anchor_record(label=label, sha256="ab" * 32)
    assert caught.value.code == "invalid-payload"
    assert f"label: {rule}" in caught.value.message, caught.value.message
