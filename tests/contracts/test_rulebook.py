"""The rulebook document and the catalogue cannot drift, and every rule is evaluated somewhere."""

from __future__ import annotations

from pathlib import Path

from medledger.contracts.catalogue import PARAMS_BY_NAME, RULES, RULES_BY_ID
from medledger.contracts.rulebook_doc import render
from medledger.contracts.rules import EVALUATORS
from medledger.contracts.types import registry

DOC = Path(__file__).resolve().parents[2] / "docs" / "rulebook.md"
#: DESIGN.md §5, in its order
DESIGN_RULES = [
    "INST-LICENCE",
    "DOC-LICENCE",
    "DOC-SITE",
    "DOC-EXPERIENCE",
    "DOC-SCOPE",
    "DOC-REALNAME",
    "PAT-REALNAME",
    "NO-FIRST-VISIT",
    "CHILD-GUARDIAN",
    "RX-PRESCRIBER",
    "RX-NO-AI",
    "RX-PROHIBITED",
    "RX-LIMITS",
    "RX-INDICATION",
    "RX-DUPLICATE",
    "RX-EXPIRY",
    "PH-REVIEW",
    "PH-DISPENSE",
    "DELIVERY-TRACE",
    "CLAIM-MATCH",
    "LATE-REPORT",
    "VOLUME",
    "COMPLAINT-SLA",
    "APP-APPROVED",
]


def test_docs_rulebook_is_generated_from_the_catalogue() -> None:
    assert DOC.read_text() == render(), (
        "docs/rulebook.md is stale: run `python -m medledger.contracts.rulebook_doc > docs/rulebook.md`"
    )


def test_the_catalogue_is_design_section_5() -> None:
    assert [r.id for r in RULES] == DESIGN_RULES


def test_every_rule_has_an_evaluator_and_known_params() -> None:
    registry()  # importing the handlers registers every evaluator
    assert set(EVALUATORS) == set(RULES_BY_ID)
    for rule in RULES:
        assert all(p in PARAMS_BY_NAME for p in rule.params), rule.id
        assert rule.regulation and rule.sentence.endswith(".")
