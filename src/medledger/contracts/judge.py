"""Turning rule violations into one deterministic outcome.

A handler collects every violation a transaction commits, not just the
first: the regulator sees the whole picture, and a case injected for one
rule is never hidden behind another. One alert per violation; any hard
violation makes the transaction REJECTED (committed as evidence, no state
change), soft ones make it ACCEPTED_WITH_ALERTS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medledger.contracts.catalogue import Rule
from medledger.ledger.txtypes import ACCEPTED, ACCEPTED_WITH_ALERTS, REJECTED, Outcome, TxContext

_OK_BY_VERSION: dict[int, Outcome] = {}

#: Called with a transaction type (or ``catalogue.EVERY_BLOCK``) and the rules its execution evaluated.
#: Empty in production (one truth test per transaction); a test appends a watcher to prove that the
#: catalogue's ``applies_to`` is what the handlers actually run.
WATCHERS: list[Callable[[str, Sequence[Rule]], None]] = []


def notify(tx_type: str, evaluated: Sequence[Rule]) -> None:
    """Tell every watcher which rules one execution of ``tx_type`` evaluated."""
    for watcher in WATCHERS:
        watcher(tx_type, evaluated)


def accepted(version: int) -> Outcome:
    """The plain ACCEPTED outcome under a rulebook version (one shared object per version)."""
    outcome = _OK_BY_VERSION.get(version)
    if outcome is None:
        outcome = _OK_BY_VERSION[version] = Outcome(ACCEPTED, rulebook=version)
    return outcome


def refused(code: str, reason: str, version: int) -> Outcome:
    """A structural refusal (unknown reference, duplicate id...): not a rule of the catalogue, so no alert."""
    return Outcome(REJECTED, (code,), reason, rulebook=version)


@dataclass(slots=True)
class Judge:
    """The violations of one transaction, under one rulebook version."""

    ctx: TxContext
    params: dict[str, int]
    version: int
    #: SHA-256 of the formulary the rulebook in force pins
    formulary: str = ""
    institution: str | None = None
    practitioner: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    #: every rule evaluated so far, passed or failed, in order: a bound check appends its rule on entry
    #: (see ``rules.check``), so the last one is the rule a :meth:`fail` reports
    evaluated: list[Rule] = field(default_factory=list)

    def fail(
        self,
        why: str,
        *,
        hard: bool | None = None,
        evidence: Iterable[str | None] = (),
        subject: tuple[str, str] | None = None,
        institution: str | None = None,
        practitioner: str | None = None,
    ) -> None:
        """Record one violation of the rule whose check is running (only a bound check may call this)."""
        rule = self.evaluated[-1]
        alert: dict[str, Any] = {"rule": rule.id, "severity": rule.severity(hard), "why": why}
        inst = institution or self.institution
        prac = practitioner or self.practitioner
        if inst:
            alert["institution"] = inst
        if prac:
            alert["practitioner"] = prac
        if subject is not None:
            alert["subject"] = {"kind": subject[0], "id": subject[1]}
        cited = sorted({e for e in evidence if e and e != self.ctx.envelope.tx_id})
        if cited:
            alert["evidence"] = cited
        self.alerts.append(alert)

    @property
    def hard(self) -> bool:
        return any(a["severity"] == "hard" for a in self.alerts)

    def outcome(self) -> Outcome:
        if not self.alerts:
            return accepted(self.version)
        codes = tuple(sorted({a["rule"] for a in self.alerts}))
        if self.hard:
            reason = "; ".join(f"{a['rule']}: {a['why']}" for a in self.alerts if a["severity"] == "hard")
            return Outcome(REJECTED, codes, reason, tuple(self.alerts), rulebook=self.version)
        return Outcome(ACCEPTED_WITH_ALERTS, codes, "", tuple(self.alerts), rulebook=self.version)
