"""How each rule of the catalogue gets violated, and which violation to inject next.

Every rule of :data:`medledger.contracts.catalogue.RULES` has at least one
:class:`Variant`: a change to an otherwise clean case that breaks exactly
that rule and nothing else (the transaction it breaks is the variant's
*trigger*). Downstream of a hard-rejected trigger the case stops, as it would
in life: a rejected prescription is never reviewed, a refused consultation is
never closed.

Some violations take time to show: an unanswered complaint is only late once
the regulator's deadline has passed, a prescription only expires after its
validity. :class:`Scheduler` knows each variant's *horizon* (how long after the
case starts its trigger happens) and front-loads the slow ones, so that a run
of a few simulated days still injects every rule about equally often; a
variant that cannot finish before the run ends is not started.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from medledger.contracts.catalogue import RULES

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True, slots=True)
class Variant:
    """One way to violate one rule."""

    rule: str
    name: str
    #: the step of the case that violates the rule: "open", "issue", "review", "dispense", "handover",
    #: "claim", "close", or a report kind: "complaint", "leak", "adverse"
    trigger: str
    #: a hard violation stops the case at its trigger
    hard: bool
    #: changes to the clean case (read by :mod:`medledger.sim.cases`)
    mods: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    note: str = ""

    @property
    def label(self) -> str:
        return f"{self.rule}/{self.name}"


def _v(rule: str, name: str, trigger: str, hard: bool = True, note: str = "", **mods: str) -> Variant:
    return Variant(rule, name, trigger, hard, MappingProxyType(dict(mods)), note)


VARIANTS: tuple[Variant, ...] = (
    _v(
        "INST-LICENCE",
        "suspended-institution",
        "open",
        doctor="inst-suspended",
        note="a consultation at a suspended Internet hospital, by an otherwise valid doctor",
    ),
    _v(
        "INST-LICENCE",
        "lapsed-licence",
        "open",
        doctor="inst-lapsed",
        note="the hospital's licence lapsed on 2026-01-31",
    ),
    _v(
        "INST-LICENCE",
        "no-internet-approval",
        "open",
        doctor="inst-unapproved",
        note="the hospital was never approved for Internet diagnosis",
    ),
    _v(
        "DOC-LICENCE",
        "revoked-elsewhere",
        "open",
        doctor="revoked",
        note="licence revoked by the regulator; consulting at the doctor's second hospital",
    ),
    _v("DOC-LICENCE", "suspended", "open", doctor="suspended", note="licence suspended by the regulator"),
    _v(
        "DOC-SITE",
        "no-filing",
        "open",
        doctor="no-site",
        note="a doctor filed at one hospital consults at another where no site is filed",
    ),
    _v("DOC-SITE", "expired-filing", "open", doctor="expired-site", note="the multi-site filing expired 2026-02-15"),
    _v("DOC-EXPERIENCE", "junior", "open", doctor="junior", note="independent practice since 2024-07-01"),
    _v(
        "DOC-SCOPE",
        "outside-scope",
        "open",
        scope="outside",
        note="consultation specialty outside the doctor's registered scope",
    ),
    _v(
        "DOC-REALNAME",
        "stale-authentication",
        "open",
        auth="stale",
        note="the doctor's last real-name check was more than the window before the consultation",
    ),
    _v(
        "DOC-REALNAME",
        "never-authenticated",
        "open",
        doctor="no-auth",
        auth="none",
        note="the doctor never passed a real-name check",
    ),
    _v(
        "PAT-REALNAME",
        "unverified-patient",
        "open",
        patient="unverified",
        note="the patient's identity was never verified",
    ),
    _v("NO-FIRST-VISIT", "no-prior", "open", prior="none", note="no prior offline diagnosis cited"),
    _v(
        "NO-FIRST-VISIT",
        "unknown-document",
        "open",
        prior="unknown",
        note="the cited diagnosis document is not on the ledger",
    ),
    _v(
        "NO-FIRST-VISIT",
        "other-condition",
        "open",
        prior="other-condition",
        note="the prior diagnosis is of another ICD-10 category than the condition treated",
    ),
    _v(
        "CHILD-GUARDIAN",
        "no-guardian",
        "open",
        patient="child",
        guardian="none",
        note="a child under the guardian age with no guardian",
    ),
    _v(
        "CHILD-GUARDIAN",
        "unverified-guardian",
        "open",
        patient="child",
        guardian="unverified",
        note="the guardian's identity was never verified",
    ),
    _v(
        "CHILD-GUARDIAN",
        "minor-guardian",
        "open",
        patient="child",
        guardian="minor",
        note="the guardian is a verified minor",
    ),
    _v(
        "RX-PRESCRIBER",
        "other-doctor",
        "issue",
        rx_signer="other-doctor",
        note="another doctor of the same hospital signs the consultation's prescription",
    ),
    _v(
        "RX-PRESCRIBER",
        "after-window",
        "issue",
        rx_time="late",
        note="prescription issued after the window following the consultation",
    ),
    _v(
        "RX-NO-AI",
        "gateway-signed",
        "issue",
        rx_signer="gateway",
        note="the hospital gateway (a system key) signs the prescription",
    ),
    _v(
        "RX-NO-AI",
        "instant",
        "issue",
        hard=False,
        rx_time="instant",
        note="prescription issued seconds after the consultation opened",
    ),
    _v(
        "RX-PROHIBITED",
        "special-drug",
        "issue",
        patient="prohibitable",
        drug="prohibited",
        note="a special-management drug indicated for the diagnosis, prescribed online",
    ),
    _v("RX-LIMITS", "days", "issue", drug="limits-days", note="days of supply over the formulary maximum"),
    _v("RX-LIMITS", "daily-units", "issue", drug="limits-daily", note="units a day over the formulary maximum"),
    _v("RX-LIMITS", "quantity", "issue", drug="limits-quantity", note="quantity above units a day times days"),
    _v(
        "RX-INDICATION",
        "not-indicated",
        "issue",
        hard=False,
        drug="not-indicated",
        note="an ordinary drug not indicated for the diagnosis",
    ),
    _v(
        "RX-DUPLICATE",
        "doctor-shopping",
        "issue",
        hard=False,
        patient="holder",
        drug="same-group",
        note="same patient, same group, overlapping supply, prescribed at another hospital",
    ),
    _v(
        "RX-EXPIRY",
        "dispensed-late",
        "dispense",
        dispense="expired",
        note="dispensed after the prescription's validity",
    ),
    _v(
        "PH-REVIEW",
        "prescriber-reviews",
        "review",
        review="by-prescriber",
        note="the prescribing doctor reviews their own prescription",
    ),
    _v("PH-REVIEW", "no-review", "dispense", review="none", note="dispensed with no pharmacist review"),
    _v(
        "PH-REVIEW",
        "suspended-pharmacist",
        "review",
        review="suspended-pharmacist",
        note="reviewed by a pharmacist whose licence is suspended",
    ),
    _v("PH-DISPENSE", "over-quantity", "dispense", dispense="over", note="dispensing more than remains"),
    _v(
        "PH-DISPENSE",
        "after-rejection",
        "dispense",
        review="rejected",
        note="dispensed although the pharmacist rejected the prescription",
    ),
    _v(
        "PH-DISPENSE",
        "not-a-pharmacy",
        "dispense",
        dispense="non-pharmacy",
        note="dispensed by the hospital's own pharmacist: the hospital is not a registered pharmacy",
    ),
    _v(
        "DELIVERY-TRACE",
        "skipped-seq",
        "handover",
        hard=False,
        delivery="skip",
        note="the first hand-over recorded is number 2",
    ),
    _v(
        "DELIVERY-TRACE",
        "wrong-recipient",
        "handover",
        hard=False,
        delivery="wrong-recipient",
        note="the parcel is handed to someone other than the prescription's patient",
    ),
    _v(
        "DELIVERY-TRACE",
        "after-delivery",
        "handover",
        hard=False,
        delivery="after-delivered",
        note="a hand-over after the parcel reached the patient",
    ),
    _v("CLAIM-MATCH", "inflated", "claim", claim="inflated", note="amount 20% over price times quantity"),
    _v("CLAIM-MATCH", "double-claim", "claim", claim="double", note="a second claim for the same dispense"),
    _v("CLAIM-MATCH", "unknown-dispense", "claim", claim="unknown", note="a claim citing no dispense on the ledger"),
    _v("LATE-REPORT", "late-leak", "leak", hard=False, note="a data leak reported after its deadline"),
    _v(
        "LATE-REPORT",
        "late-adverse",
        "adverse",
        hard=False,
        note="an adverse event reported by the institution after its deadline",
    ),
    _v(
        "LATE-REPORT",
        "late-close",
        "close",
        hard=False,
        close="late",
        note="a consultation's close reaches the ledger hours after it happened",
    ),
    _v("VOLUME", "too-short", "close", hard=False, close="short", note="a consultation closed within seconds"),
    _v("VOLUME", "too-long", "close", hard=False, close="long", note="a consultation left open for hours"),
    _v("COMPLAINT-SLA", "unanswered", "complaint", hard=False, note="a public complaint the regulator never answers"),
    _v("APP-APPROVED", "rejected-app", "open", app="rejected", note="through an app whose review was rejected"),
    _v("APP-APPROVED", "pending-app", "open", app="pending", note="through an app still awaiting review"),
    _v("APP-APPROVED", "unregistered-app", "open", app="unregistered", note="through an app never registered"),
)

BY_RULE: dict[str, tuple[Variant, ...]] = {r.id: tuple(v for v in VARIANTS if v.rule == r.id) for r in RULES}


def horizon_ms(variant: Variant, params: Mapping[str, int]) -> int:
    """A generous bound on how long after a case starts its trigger is submitted."""
    consult = 45 * MINUTE  # queueing for the doctor, authentication, opening
    issue = consult + 35 * MINUTE
    review = issue + 50 * MINUTE
    dispense = review + 4 * HOUR + 10 * MINUTE
    handover = dispense + 4 * HOUR
    claim = dispense + 7 * HOUR
    m = variant.mods
    if variant.trigger == "complaint":
        return params["complaint_sla_d"] * DAY + 15 * MINUTE
    if variant.trigger in ("leak", "adverse"):
        return 5 * SECOND
    if variant.trigger == "open":
        return consult + (60 * MINUTE if m.get("auth") == "stale" else 0)
    if variant.trigger == "close":
        if m.get("close") == "long":
            return consult + params["max_consult_s"] * SECOND + 70 * MINUTE
        if m.get("close") == "late":
            return consult + 45 * MINUTE + params["report_deadline_h"] * HOUR + 60 * MINUTE
        return consult + 5 * MINUTE
    if variant.trigger == "issue":
        if m.get("rx_time") == "late":
            return consult + params["rx_window_h"] * HOUR + 70 * MINUTE
        return issue
    if variant.trigger == "review":
        return review
    if variant.trigger == "dispense":
        if m.get("dispense") == "expired":
            return review + params["rx_validity_h"] * HOUR + 130 * MINUTE
        return dispense
    if variant.trigger == "handover":
        return handover + 3 * HOUR
    return claim + HOUR


@dataclass
class Scheduler:
    """Chooses the next violation so that every rule is injected about equally often.

    Plain round-robin would starve slow rules near the end of a run (a
    complaint filed in the last simulated day cannot become overdue). So each
    rule has a *target* that grows with elapsed time, reaching the expected
    per-rule count at the last moment one of its variants can still start
    and finish before ``end_ms``; the rule furthest behind its target goes
    next, among those with a variant that still fits.
    """

    start_ms: int
    end_ms: int
    params: Mapping[str, int]
    expected_per_rule: float
    #: whether a variant can be built now (e.g. RX-DUPLICATE needs a patient already holding supply)
    available: Callable[[Variant, int], bool] = lambda variant, at: True
    counts: dict[str, int] = field(default_factory=dict)
    variant_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rules = [r.id for r in RULES]
        self._horizons = {v.label: horizon_ms(v, self.params) for v in VARIANTS}
        span = max(1, self.end_ms - self.start_ms)
        self._window = {
            rule: max(1, span - min(self._horizons[v.label] for v in BY_RULE[rule])) for rule in self._rules
        }

    def _fits(self, variant: Variant, at: int) -> bool:
        return at + self._horizons[variant.label] < self.end_ms and self.available(variant, at)

    def pick(self, at: int) -> Variant | None:
        """The variant to inject into a case starting at ``at``, or None if nothing fits any more."""
        elapsed = at - self.start_ms
        best: tuple[float, int, str] | None = None
        choices: dict[str, list[Variant]] = {}
        for index, rule in enumerate(self._rules):
            fitting = [v for v in BY_RULE[rule] if self._fits(v, at)]
            if not fitting:
                continue
            choices[rule] = fitting
            target = self.expected_per_rule * min(1.0, elapsed / self._window[rule])
            behind = target - self.counts.get(rule, 0)
            key = (-behind, index, rule)
            if best is None or key < best:
                best = key
        if best is None:
            return None
        rule = best[2]
        fitting = choices[rule]
        variant = min(fitting, key=lambda v: (self.variant_counts.get(v.label, 0), BY_RULE[rule].index(v)))
        self.counts[rule] = self.counts.get(rule, 0) + 1
        self.variant_counts[variant.label] = self.variant_counts.get(variant.label, 0) + 1
        return variant

    def release(self, variant: Variant) -> None:
        """Un-count a picked variant whose case could not be planned (no doctor, no patient fits)."""
        self.counts[variant.rule] -= 1
        self.variant_counts[variant.label] -= 1
