"""Rule parameters live on the ledger: only the regulator publishes them, version by version,
within each parameter's bounds; every outcome records the version it was judged under; and the
rulebook pins the formulary, so a node judging prescriptions against other drug data refuses."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from contracts_world import MIN, OK, Expect, World, hard, outcome, standard

from medledger.contracts import formulary
from medledger.contracts.catalogue import DEFAULT_PARAMS, PARAMS, Param
from medledger.errors import MedledgerError
from medledger.ledger.receipt import Receipt


@pytest.fixture
def w(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A fresh province per test: publishing changes the whole ledger's rules."""
    world = standard(tmp_path_factory.mktemp("rulebook"))
    try:
        yield world
    finally:
        world.close()


def _consult_after_auth(w: World, auth_before: int) -> Receipt:
    patient, prior = w.visit(w.name("rb"))
    w.authenticate("hosp/dr-li", 0)
    w.advance(auth_before)
    return w.consult("hosp/dr-li", w.name("c-rb"), patient, prior)


def test_publish_changes_a_parameter_and_outcomes_record_the_version(w: World) -> None:
    before = _consult_after_auth(w, 20 * MIN)
    assert outcome(before) == OK  # within the default 30 minutes
    assert w.outcome_json(before) == {"status": "ACCEPTED", "rulebook": 0}

    published = w.publish(1, {"realname_window_min": 10})
    assert outcome(published) == OK
    assert w.outcome_json(published)["rulebook"] == 0  # judged under the rules it replaces

    cases: list[tuple[int, Expect]] = [
        (10 * MIN, OK),
        (10 * MIN + 1, hard("DOC-REALNAME")),
        (20 * MIN, hard("DOC-REALNAME")),  # accepted under version 0, refused under version 1
    ]
    for auth_before, expected in cases:
        receipt = _consult_after_auth(w, auth_before)
        assert outcome(receipt) == expected, (auth_before, receipt.reason)
        committed = w.outcome_json(receipt)
        assert committed["rulebook"] == 1
        assert committed["status"] == expected[0] and tuple(committed.get("codes", ())) == expected[1]

    assert outcome(w.publish(2, {"rx_min_s": 30})) == OK
    rulebook = w.node.store.get_state("rulebook")
    assert rulebook["version"] == 2
    assert rulebook["params"] == DEFAULT_PARAMS | {"realname_window_min": 10, "rx_min_s": 30}  # carried over
    assert outcome(_consult_after_auth(w, 10 * MIN + 1)) == hard("DOC-REALNAME")


@pytest.mark.parametrize("signer", ["hosp/admin", "hosp/dr-li", "hosp/gw"])
def test_only_the_regulator_publishes(w: World, signer: str) -> None:
    height = w.node.tip.height
    with pytest.raises(MedledgerError) as refused:
        w.publish(1, {"realname_window_min": 10}, by=signer)
    assert refused.value.code == "wrong-role"
    assert w.node.tip.height == height  # refused at the gateway: never ordered
    assert w.node.store.get_state("rulebook") is None


def test_versions_follow_one_another(w: World) -> None:
    assert outcome(w.publish(2, {})) == hard("RULEBOOK-VERSION")  # a gap
    assert outcome(w.publish(1, {})) == OK
    assert outcome(w.publish(1, {"rx_min_s": 1})) == hard("RULEBOOK-VERSION")  # the same version again
    assert outcome(w.publish(3, {})) == hard("RULEBOOK-VERSION")
    assert outcome(w.publish(2, {})) == OK
    assert w.node.store.get_state("rulebook")["version"] == 2
    assert w.node.store.get_state("rulebook")["params"]["rx_min_s"] == DEFAULT_PARAMS["rx_min_s"]


@pytest.fixture(scope="module")
def bounds_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = standard(tmp_path_factory.mktemp("bounds"))
    try:
        yield world
    finally:
        world.close()


@pytest.mark.parametrize("spec", PARAMS, ids=[p.name for p in PARAMS])
def test_parameter_bounds(bounds_world: World, spec: Param) -> None:
    w = bounds_world

    def version() -> int:
        record = w.node.store.get_state("rulebook")
        return 0 if record is None else int(record["version"])

    for outside in (spec.minimum - 1, spec.maximum + 1):
        start = version()
        receipt = w.publish(start + 1, {spec.name: outside})
        assert outcome(receipt) == hard("RULEBOOK-PARAM"), (outside, receipt.reason)
        assert version() == start  # a refused publication changes nothing
    for inside in (spec.minimum, spec.maximum, spec.default):
        assert outcome(w.publish(version() + 1, {spec.name: inside})) == OK, inside
        assert w.node.store.get_state("rulebook")["params"][spec.name] == inside


def test_unknown_parameter(w: World) -> None:
    assert outcome(w.publish(1, {"max_consults_per_week": 5})) == hard("RULEBOOK-PARAM")


def test_formulary_digest_is_pinned(w: World) -> None:
    drug = formulary.default().by_rxnorm("17767")
    assert drug is not None
    rx = w.issued("pin", drug)
    dispensed = w.ok(
        "pharm/ph-zhao",
        "prescription.dispense",
        {"dispense_id": "d-pin", "rx_id": rx, "quantity": 5, "dispensed_at": w.t()},
    )
    assert dispensed

    assert outcome(w.publish(1, {}, "ab" * 32)) == OK  # the regulator pins other drug data
    visit = w.follow_up("pin-2")
    w.advance(2 * MIN)
    assert outcome(w.prescribe("rx-pin-2", visit.cid, drug)) == hard("FORMULARY-MISMATCH")
    assert outcome(w.claim("claim-pin", "d-pin", 5 * drug.unit_price_fen)) == hard("FORMULARY-MISMATCH")

    assert outcome(w.publish(2, {})) == OK  # back to the formulary this node ships
    assert outcome(w.prescribe("rx-pin-2", visit.cid, drug)) == OK
    assert outcome(w.claim("claim-pin", "d-pin", 5 * drug.unit_price_fen)) == OK
