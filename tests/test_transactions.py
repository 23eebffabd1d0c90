"""medledger.transactions: one typed builder per registered type, held to the registry, accepted by a real node."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal

import httpx
import pytest

from ledger_factory import regulator_headers
from medledger._serving import BackgroundServer
from medledger.client import Client
from medledger.contracts.types import registry
from medledger.errors import EncodingError, MedledgerError, NotFoundError
from medledger.ledger.keys import SigningKey
from medledger.transactions import PAYLOAD_MODELS, TxBuilder, method_name
from tx_province import Province, build_province, every_other_type, prescription_chain
from tx_samples import SAMPLES, P

TYPES = sorted(set(registry().types) - {"genesis"})
def _literals(tp: Any) -> set[Any]:
    """Every value a Literal anywhere inside a type admits (through unions, Annotated, Optional)."""
    if typing.get_origin(tp) is Literal:
        return set(typing.get_args(tp))
    found: set[Any] = set()
    for arg in typing.get_args(tp):
        found |= _literals(arg)
    return found


# -- drift: the builders are the registry ----------------------------------------------------------------------


def test_every_registered_type_has_exactly_one_builder() -> None:
    methods = {name for name, value in vars(TxBuilder).items() if inspect.isfunction(value) and not name.startswith("_")}
    assert methods - {"sign"} == {method_name(t) for t in TYPES}
    assert set(PAYLOAD_MODELS) == set(TYPES)
    assert set(SAMPLES) == set(TYPES)


@pytest.mark.parametrize("type_name", TYPES)
def test_builder_parameters_are_the_model_fields(type_name: str) -> None:
    model = PAYLOAD_MODELS[type_name]
    method = getattr(TxBuilder, method_name(type_name))
    params = dict(inspect.signature(method).parameters)
    params.pop("self")
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params.values()), "keyword-only arguments"
    assert list(params) == list(model.model_fields), "same fields, in the model's order"
    hints = typing.get_type_hints(method)
    for name, info in model.model_fields.items():
        if info.is_required():
            assert params[name].default is inspect.Parameter.empty, f"{name} is required by the model"
        else:
            assert info.default is None and params[name].default is None, f"{name} is optional (None) in both"
        assert _literals(hints[name]) == _literals(info.annotation), f"{name}: allowed values differ from the model"


@pytest.mark.parametrize("type_name", TYPES)
def test_builders_validate_with_the_gateways_own_model(type_name: str) -> None:
    """The node's validator for the type accepts the payload and parses it into the builder's model."""
    env = getattr(TxBuilder(SigningKey.generate()), method_name(type_name))(**SAMPLES[type_name])
    assert env.type == type_name
    parsed = registry().get(type_name).validate(env.payload)
    assert type(parsed) is PAYLOAD_MODELS[type_name]
    assert parsed.model_dump(mode="json", exclude_none=True) == env.payload


# -- invalid arguments: a sentence naming the field, nothing signed --------------------------------------------


@dataclass(frozen=True)
class SpyKey(SigningKey):
    """A key that records every signature it makes."""

    def sign(self, domain: bytes, message: bytes) -> bytes:
        SIGNED.append(message)
        return super().sign(domain, message)


SIGNED: list[bytes] = []


@pytest.mark.parametrize(
    ("type_name", "change", "field"),
    [
        ("prescription.issue", {"quantity": 0}, "quantity"),
        ("prescription.issue", {"rxnorm": "not-a-code"}, "rxnorm"),
        ("prescription.issue", {"issued_at": "yesterday"}, "issued_at"),
        ("prescription.issue", {"issued_at": datetime(2026, 3, 2, 8)}, "issued_at"),  # naive
        ("prescription.issue", {"rx_id": "rx-13912345678"}, "rx_id"),  # a phone number in an id
        ("prescription.issue", {"days": True}, "days"),  # strict: a bool is not a count
        ("institution.admit", {"licence": {"number": "LIC-H", "valid_from": "2020-01-01"}}, "licence.valid_until"),
        ("institution.admit", {"kind": "spa"}, "kind"),
        ("delivery.handover", {"to": "patient"}, "recipient"),
        ("practitioner.register", {"specialties": "cardiology"}, "specialties"),
        ("member.register", {"key": "short"}, "key"),
    ],
)
def test_invalid_argument_is_refused_before_signing(type_name: str, change: dict[str, Any], field: str) -> None:
    nonces: list[str] = []

    def nonce() -> str:
        nonces.append("n")
        return "nonce-0001"

    signer = TxBuilder(SpyKey(b"\x01" * 32), nonce=nonce)
    SIGNED.clear()
    with pytest.raises(MedledgerError) as caught:
        getattr(signer, method_name(type_name))(**{**SAMPLES[type_name], **change})
    assert isinstance(caught.value, EncodingError) and caught.value.code == "invalid-payload"
    message = caught.value.message
    assert message.startswith(f"invalid {type_name} payload: ") and field in message, message
    assert "\n" not in message
    assert SIGNED == [] and nonces == [], "nothing may be signed (or a nonce spent) for an invalid payload"
    # the same key signs once the argument is fixed
    getattr(signer, method_name(type_name))(**SAMPLES[type_name])
    assert len(SIGNED) == 1


def test_unknown_type_and_extra_fields_are_refused() -> None:
    signer = TxBuilder(SigningKey.generate())
    with pytest.raises(EncodingError, match=r"unknown transaction type 'prescription\.cancel'"):
        signer.sign("prescription.cancel", {"rx_id": "rx-1"})
    with pytest.raises(EncodingError, match="patient_name: Extra inputs are not permitted"):
        signer.sign("prescription.issue", {**SAMPLES["prescription.issue"], "patient_name": "Zhang San"})
    with pytest.raises(TypeError):
        signer.prescription_issue(**SAMPLES["prescription.issue"], patient_name="Zhang San")  # type: ignore[call-arg]


def test_conveniences_become_the_ledgers_spelling() -> None:
    signer = TxBuilder(SigningKey.generate(), clock=lambda: 1_700_000_000_123, nonce=lambda: "fixed-nonce-1")
    beijing = timezone(timedelta(hours=8))
    env = signer.delivery_handover(
        dispense_id="d-1", seq=1, to="courier", recipient=None, at=datetime(2026, 3, 2, 16, 0, 0, 123_999, beijing)
    )
    assert env.payload == {"dispense_id": "d-1", "seq": 1, "to": "courier", "at": "2026-03-02T08:00:00.123Z"}
    assert env.nonce == "fixed-nonce-1" and env.created_at == "2023-11-14T22:13:20.123Z"
    assert env.signer == signer.key_id
    env = signer.institution_admit(
        org="hosp",
        name="hosp",
        kind="hospital",
        physical=True,
        licence={"number": "LIC-H", "valid_from": datetime(2020, 1, 1, tzinfo=UTC).date(), "valid_until": "2030-01-01"},
    )
    assert env.payload["licence"] == {"number": "LIC-H", "valid_from": "2020-01-01", "valid_until": "2030-01-01"}


# -- a real node accepts what the builders build ---------------------------------------------------------------


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Province]:
    p = build_province(tmp_path_factory.mktemp("tx-province"))
    try:
        yield p
    finally:
        p.w.close()


def test_a_whole_prescription_chain_built_by_the_builders_is_accepted(province: Province) -> None:
    steps = prescription_chain(province, "chain-a")
    assert list(steps) == [
        "patient.verify",
        "encounter.record",
        "doctor.authenticate",
        "consultation.open",
        "prescription.issue",
        "consultation.close",
        "prescription.review",
        "prescription.dispense",
        "delivery.handover",
        "delivery.handover/courier",
        "claim.submit",
    ]
    assert all(r.status == "ACCEPTED" and r.codes == () for r in steps.values())
    state = province.w.node.store.get_state("rx/rx-chain-a")
    assert state is not None and state["dispenses"] == ["d-chain-a"]


def test_every_builder_is_accepted_by_a_real_node(province: Province) -> None:
    """The province and the chain covered the clinical types; the rest, in an order the rules accept."""
    p = province
    if not any(t == "claim.submit" for t, _, _ in p.log):
        prescription_chain(p, "chain-b")
    every_other_type(p)
    accepted = {t for t, _, r in p.log if r.status == "ACCEPTED"}
    assert accepted == set(TYPES), f"never accepted: {sorted(set(TYPES) - accepted)}"


# -- the client: bearer token, traces, submit(..., verify=True) --------------------------------------------------


def test_client_sends_the_bearer_token_on_every_request() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"code": "not-found", "status": 404, "detail": "no such thing"})

    env = TxBuilder(SigningKey.generate()).anchor_record(label="test/x", sha256=P)
    with Client("http://node.invalid", token="mlt_secret-token", transport=httpx.MockTransport(answer)) as client:
        with pytest.raises(NotFoundError):
            client.get_transaction("0" * 64)
        with pytest.raises(NotFoundError):
            client.submit(env)
        with pytest.raises(NotFoundError):
            client.trace("rx-1")
    assert [r.headers.get("authorization") for r in seen] == ["Bearer mlt_secret-token"] * 3
    with Client("http://node.invalid", transport=httpx.MockTransport(answer)) as client, pytest.raises(NotFoundError):
        client.tree_head()
    assert "authorization" not in seen[-1].headers
    for bad in ("", "two words", "line\nbreak"):
        with pytest.raises(EncodingError, match="bearer token"):
            Client("http://node.invalid", token=bad)


def test_client_submits_builder_envelopes_and_proves_a_trace(province: Province) -> None:
    p = province
    if not any(t == "claim.submit" for t, _, _ in p.log):
        prescription_chain(p, "chain-c")
    rx_id = next(env.payload["rx_id"] for t, env, _ in p.log if t == "prescription.issue")
    node_key = SigningKey.from_file(p.w.data / "keys" / "node.key").key_id
    token = regulator_headers(p.w.data)["authorization"].removeprefix("Bearer ")
    with BackgroundServer(p.w.node) as server, Client(server.url, token=token, trusted_node_keys=[node_key]) as client:
        [receipt] = client.submit(p.signer("regulator").anchor_record(label="test/trace", sha256=P), verify=True)
        assert receipt.status == "ACCEPTED"
        trace = client.trace(rx_id, check_envelopes=True)
        assert trace.rx_id == rx_id
        assert [s.step for s in trace.steps][:5] == [
            "offline-diagnosis",
            "doctor-real-name",
            "consultation",
            "prescription",
            "review",
        ]
        assert {s.type for s in trace.steps} >= {"prescription.issue", "claim.submit", "delivery.handover"}
        assert client.trusted_head == trace.tree_head
        assert trace.tree_head.tree_size >= receipt.tree_head.tree_size
        with pytest.raises(NotFoundError):
            client.trace("rx-never-issued")
