"""Index of the boundary tests: every catalogued rule is exercised at its limit.

The cases live by area (``test_rules_practice.py``, ``test_rules_prescriptions.py``,
``test_rules_pharmacy.py``, ``test_rules_reports.py``, ``test_rules_gateway_authors.py``, ``test_rulebook_params.py``,
``test_structural_refusals.py``); each pairs the last compliant value with the first violating
one and asserts the receipt's codes exactly. This module checks, from their source, that no rule
of the catalogue lacks a violating case with its catalogued severity, so a new rule cannot be
added without one.
"""

from __future__ import annotations

import ast
from pathlib import Path

from medledger.contracts.catalogue import RULES

HERE = Path(__file__).parent
AREAS = sorted(HERE.glob("test_rules_*.py")) + [HERE / "test_rulebook_params.py", HERE / "test_structural_refusals.py"]


def _expected_codes() -> dict[str, set[str]]:
    """Rule id -> severities that some case expects, from ``hard(...)`` / ``soft(...)`` calls
    (and ``AlertQuery(rule=...)`` for alerts a block raises rather than a transaction)."""
    found: dict[str, set[str]] = {}
    for path in AREAS:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id in ("hard", "soft"):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.setdefault(arg.value, set()).add(node.func.id)
            elif node.func.id == "AlertQuery":
                for kw in node.keywords:
                    if kw.arg == "rule" and isinstance(kw.value, ast.Constant):
                        found.setdefault(str(kw.value.value), set()).add("soft")
    return found


def test_every_rule_has_a_violating_case_of_its_severity() -> None:
    found = _expected_codes()
    missing = {r.id: set(r.severities) - found.get(r.id, set()) for r in RULES}
    assert {rule: sev for rule, sev in missing.items() if sev} == {}


def test_the_areas_exist() -> None:
    assert len(AREAS) == 7 and all(p.exists() for p in AREAS)
