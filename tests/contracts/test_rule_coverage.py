"""The catalogue's ``applies_to`` is what the contracts run, and its ``reads`` name real state.

``applies_to`` is checked exactly. A real node (the embedded one of
:mod:`tx_province`, with the real registry) executes every registered
transaction type, accepted and, for the conditional paths, rejected, while a
watcher on the judge (``judge.WATCHERS``, fed by the ``rules.check`` binding)
records every rule each execution evaluated, passed or failed. Each type's
union must equal the rules whose ``applies_to`` names it, and the block-start
checks must equal those naming ``EVERY_BLOCK``.

``reads`` is checked only where it is observable, and this is not the whole
claim. A check is a pure function of the records its handler fetched: one
record often feeds several rules (``prac/<licence>`` serves DOC-LICENCE,
DOC-EXPERIENCE and DOC-SCOPE), some arguments are derived (a daily count, a
supply list filtered by date, a licence number taken out of ``staff/``), and
many reads serve structural refusals or writes, not a rule. Attributing a
state read to a rule would need state access to go through the rule binding,
so whether a rule reads exactly what it lists is not tested. What is tested:
every listed key layout exists on a ledger that ran every type (a misspelt or
retired layout fails), and a rule lists ``formulary`` exactly when one of its
checks is handed a formulary :class:`~medledger.contracts.formulary.Drug`.
"""

from __future__ import annotations

import importlib
import re
import typing
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from contracts_world import drug_for

from medledger.contracts import catalogue
from medledger.contracts.catalogue import EVERY_BLOCK, RULES, Rule
from medledger.contracts.formulary import Drug
from medledger.contracts.judge import WATCHERS
from medledger.contracts.rules import EVALUATORS
from medledger.contracts.types import registry
from medledger.ledger import envelope
from tx_province import Province, build_province, every_other_type, prescription_chain

TYPES = sorted(registry().types)


def _judged(tx_type: str) -> set[str]:
    return {r.id for r in RULES if tx_type in r.applies_to}


def _rejected_variants(p: Province) -> None:
    """Paths the accepted chain does not take: a gateway's own prescription (RX-NO-AI, no prescriber
    checks), an anonymous adverse event (no deadline), a consultation of a doctor with no licence."""
    drug = drug_for("I10")
    gw = p.signer("hosp/gw")
    receipt = p.submit(
        gw.prescription_issue(
            rx_id="rx-by-gw",
            consultation_id="c-cover",
            rxnorm=drug.rxnorm[0],
            daily_units=1,
            days=5,
            quantity=5,
            issued_at=p.now(),
        )
    )
    assert receipt.status == "REJECTED" and "RX-NO-AI" in receipt.codes, receipt.reason
    p.ok(
        gw.report_adverse_event(
            report_id="ae-anon",
            category="adverse-drug-reaction",
            seriousness="serious",
            occurred_at=p.now(),
            anonymous=True,
        )
    )
    p.new_member("hosp/admin", "hosp/dr-nolicence", "hosp", "doctor")
    receipt = p.submit(
        p.signer("hosp/dr-nolicence").consultation_open(
            consultation_id="c-nolicence",
            patient="0" * 64,
            specialty="cardiology",
            diagnosis="I10",
            started_at=p.now(),
        )
    )
    assert receipt.status == "REJECTED" and "DOC-LICENCE" in receipt.codes, receipt.codes


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Province, dict[str, set[str]]]]:
    """A province that executed every type, and the rules each type's executions evaluated."""
    seen: dict[str, set[str]] = defaultdict(set)

    def watch(tx_type: str, rules: Sequence[Rule]) -> None:
        seen[tx_type].update(r.id for r in rules)

    WATCHERS.append(watch)
    try:
        p = build_province(Path(tmp_path_factory.mktemp("rule-coverage")))
        try:
            prescription_chain(p, "cover")
            _rejected_variants(p)
            every_other_type(p)
            yield p, seen
        finally:
            p.w.close()
    finally:
        WATCHERS.remove(watch)


def test_every_registered_type_was_executed(run: tuple[Province, dict[str, set[str]]]) -> None:
    """Genesis included: the watcher is on before the province's ledger is created."""
    p, _ = run
    committed = {
        envelope.from_parts(tx.body, tx.signature).type for _, txs in p.w.node.store.iter_blocks() for tx in txs
    }
    assert set(TYPES) - committed == set()


@pytest.mark.parametrize("tx_type", [*TYPES, EVERY_BLOCK])
def test_a_type_evaluates_exactly_the_rules_the_catalogue_says_it_judges(
    run: tuple[Province, dict[str, set[str]]], tx_type: str
) -> None:
    _, seen = run
    evaluated = seen.get(tx_type, set())
    assert evaluated == _judged(tx_type), (
        f"{tx_type}: evaluated but not in applies_to {sorted(evaluated - _judged(tx_type))}, "
        f"in applies_to but never evaluated {sorted(_judged(tx_type) - evaluated)}"
    )


def test_applies_to_names_only_real_types() -> None:
    known = {*TYPES, EVERY_BLOCK}
    assert {r.id: [t for t in r.applies_to if t not in known] for r in RULES} == {r.id: [] for r in RULES}


def test_each_rule_is_the_catalogue_constant_named_after_its_id() -> None:
    """Checks bind rules by constant (``check(RX_LIMITS)``); the constant's name is the id's spelling."""
    constants = {name: value for name, value in vars(catalogue).items() if isinstance(value, Rule)}
    assert {name: rule.id.replace("-", "_") for name, rule in constants.items()} == {n: n for n in constants}
    assert list(constants.values()) == list(RULES)


def _pattern(layout: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".+" if part.startswith("<") else re.escape(part) for part in re.split(r"(<[^>]+>)", layout))
    )


def test_every_key_layout_a_rule_reads_exists_on_the_ledger(run: tuple[Province, dict[str, set[str]]]) -> None:
    p, _ = run
    store = p.w.node.store
    missing = []
    for rule in RULES:
        for layout in rule.reads:
            if layout == "formulary":  # the packaged table the rulebook pins, not a state key
                continue
            keys = [key for key, _ in store.state_range(layout.split("<", 1)[0], limit=1000)]
            if not any(_pattern(layout).fullmatch(key) for key in keys):
                missing.append(f"{rule.id}: {layout}")
    assert missing == []


def _takes_a_drug(qualified: str) -> bool:
    module, name = qualified.split(".")
    func = getattr(importlib.import_module(f"medledger.contracts.{module}"), name)
    hints = typing.get_type_hints(func)
    return any(Drug in (hint, *typing.get_args(hint)) for hint in hints.values())


def test_a_rule_reads_the_formulary_exactly_when_a_check_is_handed_a_drug() -> None:
    listed = {r.id for r in RULES if "formulary" in r.reads}
    handed = {rule for rule, checks in EVALUATORS.items() if any(_takes_a_drug(c) for c in checks)}
    assert listed == handed
