"""Rule evaluation: one function per check, bound to the catalogue rule it enforces.

Each check reads only what it is handed (state records, the block time, the
published parameters, the formulary) and reports violations to a
:class:`~medledger.contracts.judge.Judge`. No check reads the wall clock, a
random source or a file: the same blocks give the same outcomes everywhere.
The handlers in :mod:`medledger.contracts.handlers` decide which checks a
transaction type runs; ``EVALUATORS`` lets a test prove every catalogued rule
has at least one.

A check names its rule once, by the catalogue constant in :func:`check`; its
``j.fail(why)`` reports under that rule, so a rule id is spelled only in the
catalogue and a misspelt one is an ``ImportError``, not an unknown alert code.
The binding also records every rule evaluated on the judge, which is how a
test proves that the catalogue's ``applies_to`` is what each transaction type
really runs.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Concatenate, ParamSpec

from medledger.contracts.catalogue import (
    APP_APPROVED,
    CHILD_GUARDIAN,
    CLAIM_MATCH,
    DELIVERY_TRACE,
    DOC_EXPERIENCE,
    DOC_LICENCE,
    DOC_REALNAME,
    DOC_SCOPE,
    DOC_SITE,
    EVERY_BLOCK,
    INST_LICENCE,
    LATE_REPORT,
    NO_FIRST_VISIT,
    PAT_REALNAME,
    PH_DISPENSE,
    PH_REVIEW,
    RX_DUPLICATE,
    RX_EXPIRY,
    RX_INDICATION,
    RX_LIMITS,
    RX_NO_AI,
    RX_PRESCRIBER,
    RX_PROHIBITED,
    VOLUME,
    Rule,
)
from medledger.contracts.formulary import Drug
from medledger.contracts.judge import WATCHERS, Judge, notify
from medledger.contracts.world import DAY_MS, HOUR_MS, local_ms, months_between
from medledger.ledger.state import BlockState
from medledger.ledger.timefmt import format_ms
from medledger.ledger.txtypes import BlockHook

P = ParamSpec("P")
#: rule id -> the checks that evaluate it (``module.function``), for the rulebook and its tests
EVALUATORS: dict[str, list[str]] = {}
#: a block-start check: (state, height, block time) -> its alerts, without rule and severity
BlockCheck = Callable[[BlockState, int, int], Iterable[Mapping[str, Any]]]


def _register(rule: Rule, func: Callable[..., Any]) -> None:
    EVALUATORS.setdefault(rule.id, []).append(f"{func.__module__.rsplit('.', 1)[-1]}.{func.__name__}")


def check(rule: Rule) -> Callable[[Callable[Concatenate[Judge, P], None]], Callable[Concatenate[Judge, P], None]]:
    """Bind a check to its catalogue rule: on each call the rule is recorded as evaluated on the
    judge, and the check's ``j.fail`` reports under it."""

    def bind(func: Callable[Concatenate[Judge, P], None]) -> Callable[Concatenate[Judge, P], None]:
        _register(rule, func)

        @functools.wraps(func)
        def run(j: Judge, /, *args: P.args, **kwargs: P.kwargs) -> None:
            j.evaluated.append(rule)
            func(j, *args, **kwargs)

        return run

    return bind


def every_block(rule: Rule) -> Callable[[BlockCheck], BlockHook]:
    """Bind a check run at the start of every block (``Registry.on_block``) to its catalogue rule.

    The check returns each alert's body; the binding adds the rule and its severity, and tells the
    judge's watchers that a block evaluated the rule (as the pseudo type ``EVERY_BLOCK``).
    """
    severity = rule.severity()

    def bind(func: BlockCheck) -> BlockHook:
        _register(rule, func)

        @functools.wraps(func)
        def run(state: BlockState, height: int, block_ms: int) -> list[Mapping[str, Any]]:
            if WATCHERS:
                notify(EVERY_BLOCK, (rule,))
            return [{"rule": rule.id, "severity": severity, **body} for body in func(state, height, block_ms)]

        return run

    return bind


def _day(ms: int) -> str:
    """The calendar date of an instant already shifted to province time (see ``world.local_ms``)."""
    return format_ms(ms)[:10]


@check(INST_LICENCE)
def institution_licensed(j: Judge, org: str, inst: dict[str, Any] | None, at_ms: int, *, online: bool) -> None:
    if inst is None:
        j.fail(f"institution {org!r} was never admitted", subject=("institution", org))
        return
    if inst["status"] != "active":
        j.fail(
            f"institution {org!r} is {inst['status']}",
            subject=("institution", org),
            evidence=[inst.get("status_tx")],
        )
        return
    local = local_ms(at_ms, j.params)
    lic = inst["licence"]
    if not lic["from"] <= local < lic["until"] + DAY_MS:
        j.fail(
            f"licence {lic['number']} of {org!r} is not valid on {_day(local)}",
            subject=("institution", org),
        )
    if online:
        approval = inst.get("internet")
        if approval is None:
            j.fail(f"{org!r} has no Internet-diagnosis approval", subject=("institution", org))
        elif not approval["from"] <= local < approval["until"] + DAY_MS:
            j.fail(
                f"the Internet-diagnosis approval of {org!r} is not in force on {_day(local)}",
                subject=("institution", org),
            )


@check(DOC_LICENCE)
def practitioner_licensed(j: Judge, member: str, licence_no: str | None, prac: dict[str, Any] | None) -> None:
    if licence_no is None or prac is None:
        j.fail(f"{member} has no registered practitioner licence", subject=("member", member))
        return
    if prac["status"] != "active":
        j.fail(
            f"licence {licence_no} is {prac['status']} (by {prac.get('status_org', 'the regulator')})",
            subject=("practitioner", licence_no),
            evidence=[prac.get("status_tx")],
        )


@check(DOC_SITE)
def practice_site(j: Judge, licence_no: str, org: str, site: dict[str, Any] | None, at_ms: int) -> None:
    if site is None:
        j.fail(
            f"licence {licence_no} has no practice registration at {org!r}",
            subject=("practitioner", licence_no),
        )
    elif not site["from"] <= local_ms(at_ms, j.params) < site["until"] + DAY_MS:
        j.fail(
            f"the {site['filing']} registration of {licence_no} at {org!r} is not valid on "
            f"{_day(local_ms(at_ms, j.params))}",
            subject=("practitioner", licence_no),
            evidence=[site["tx"]],
        )


@check(DOC_EXPERIENCE)
def experience(j: Judge, licence_no: str, prac: dict[str, Any], at_ms: int, params: dict[str, int]) -> None:
    years = params["experience_years"]
    first = prac["first_practice"]
    # calendar years: the anniversary of the first practice date, years later
    year = int(first[:4]) + years
    anniversary = f"{year:04d}{first[4:]}"
    if first[4:] == "-02-29" and not calendar.isleap(year):
        anniversary = f"{year:04d}-03-01"  # a leap-day start completes its years on 1 March in common years
    if _day(local_ms(at_ms, params)) < anniversary:
        j.fail(
            f"licence {licence_no} has practised since {first}, less than {years} years",
            subject=("practitioner", licence_no),
            evidence=[prac["tx"]],
        )


@check(DOC_SCOPE)
def scope(j: Judge, licence_no: str, prac: dict[str, Any], specialty: str) -> None:
    if specialty not in prac["specialties"]:
        j.fail(
            f"specialty {specialty!r} is outside the registered scope "
            f"{', '.join(prac['specialties']) or '(none)'} of {licence_no}",
            subject=("practitioner", licence_no),
        )


@check(DOC_REALNAME)
def doctor_realname(j: Judge, member: str, auth: dict[str, Any] | None, at_ms: int, params: dict[str, int]) -> None:
    window = params["realname_window_min"]
    if auth is None:
        j.fail(f"{member} never passed a real-name authentication", subject=("member", member))
    elif not at_ms - window * 60_000 <= auth["at"] <= at_ms:
        j.fail(
            f"the last real-name authentication of {member} at {format_ms(auth['at'])} is not "
            f"within the {window} minutes before the consultation",
            subject=("member", member),
            evidence=[auth["tx"]],
        )


@check(PAT_REALNAME)
def patient_realname(j: Judge, pseudonym: str, patient: dict[str, Any] | None) -> None:
    if patient is None:
        j.fail("the patient's identity was never verified", subject=("patient", pseudonym))


@check(NO_FIRST_VISIT)
def prior_diagnosis(
    j: Judge,
    pseudonym: str,
    diagnosis: str,
    prior: Any | None,
    record: dict[str, Any] | None,
    prior_inst: dict[str, Any] | None,
    at_ms: int,
) -> None:
    if prior is None:
        j.fail(
            "an online consultation without a prior offline diagnosis (a first visit)",
            subject=("patient", pseudonym),
        )
        return
    if record is None:
        j.fail(
            f"the cited diagnosis document {prior.document[:12]}... is not on the ledger",
            subject=("patient", pseudonym),
        )
        return
    problems = []
    if record["patient"] != pseudonym:
        problems.append("it is another patient's")
    if (record["org"], record["date"], record["diagnosis"]) != (prior.org, prior.date, prior.diagnosis):
        problems.append("the institution, date or code cited differ from the recorded encounter")
    if prior_inst is None or not prior_inst["physical"]:
        problems.append(f"{record['org']!r} is not a physical institution")
    if record["diagnosis"][:3] != diagnosis[:3]:
        problems.append(f"it diagnosed {record['diagnosis']}, not the condition {diagnosis} treated now")
    if record["date_ms"] > local_ms(at_ms, j.params):
        problems.append("it is dated after the consultation")
    if problems:
        j.fail(
            "the cited offline diagnosis does not qualify: " + "; ".join(problems),
            subject=("patient", pseudonym),
            evidence=[record["tx"]],
        )


@check(CHILD_GUARDIAN)
def guardian(
    j: Judge,
    pseudonym: str,
    patient: dict[str, Any],
    guardian_id: str | None,
    guardian_rec: dict[str, Any] | None,
    at_ms: int,
    params: dict[str, int],
) -> None:
    years = params["guardian_age_years"]
    if months_between(patient["birth_month"], local_ms(at_ms, params)) > years * 12:
        return
    if guardian_id is None:
        j.fail(
            f"the patient (born {patient['birth_month']}) is under {years} and no guardian is identified",
            subject=("patient", pseudonym),
        )
    elif guardian_rec is None or guardian_id == pseudonym:
        j.fail("the guardian's identity was never verified", subject=("patient", pseudonym))
    elif months_between(guardian_rec["birth_month"], local_ms(at_ms, params)) <= 18 * 12:
        # the month a guardian turns 18 may still be before the birthday: like the child's age, err to caution
        j.fail("the guardian is a minor", subject=("patient", pseudonym))


@check(APP_APPROVED)
def app_approved(j: Judge, org: str, app: str, record: dict[str, Any] | None) -> None:
    if record is None:
        j.fail(f"app {app!r} of {org!r} was never registered", subject=("app", f"{org}/{app}"))
    elif record["status"] != "approved":
        j.fail(
            f"app {app!r} of {org!r} is {record['status']}, not approved",
            subject=("app", f"{org}/{app}"),
            evidence=[record.get("review_tx")],
        )


@check(VOLUME)
def daily_volume(j: Judge, licence_no: str, count: int, params: dict[str, int]) -> None:
    limit = params["max_consults_per_day"]
    if count > limit:
        j.fail(
            f"consultation {count} of the day for {licence_no}; at most {limit} are plausible",
            subject=("practitioner", licence_no),
        )


@check(VOLUME)
def duration(j: Judge, consult_id: str, seconds: int, params: dict[str, int]) -> None:
    low, high = params["min_consult_s"], params["max_consult_s"]
    if not low <= seconds <= high:
        j.fail(
            f"consultation lasted {seconds} s, outside the plausible {low}-{high} s",
            subject=("consultation", consult_id),
        )


@check(LATE_REPORT)
def late(j: Judge, what: str, event_ms: int, block_ms: int, deadline_ms: int, deadline_text: str) -> None:
    if block_ms - event_ms > deadline_ms:
        hours = (block_ms - event_ms) // HOUR_MS
        j.fail(
            f"{what} of {format_ms(event_ms)} reached the ledger {hours} h later; the deadline is {deadline_text}",
        )


@check(RX_NO_AI)
def written_by_doctor(j: Judge, role: str, member: str, why_not: str = "") -> None:
    if role != "doctor":
        j.fail(
            f"signed by {member}, a {role} key, not a doctor's own key" + (f" ({why_not})" if why_not else ""),
            hard=True,
            subject=("member", member),
        )


@check(RX_NO_AI)
def not_instant(j: Judge, rx_id: str, seconds: int, consult_tx: str, params: dict[str, int]) -> None:
    if seconds < params["rx_min_s"]:
        j.fail(
            f"issued {seconds} s after the consultation opened, faster than a doctor writes",
            hard=False,
            subject=("prescription", rx_id),
            evidence=[consult_tx],
        )


@check(RX_PRESCRIBER)
def prescriber(
    j: Judge,
    rx_id: str,
    member: str,
    consult: dict[str, Any] | None,
    consult_id: str,
    issued_ms: int,
    params: dict[str, int],
) -> None:
    if consult is None:
        j.fail(
            f"consultation {consult_id!r} is not an accepted consultation on the ledger",
            subject=("prescription", rx_id),
        )
        return
    if consult["member"] != member:
        j.fail(
            f"signed by {member}, but consultation {consult_id!r} was held by {consult['member']}",
            subject=("prescription", rx_id),
            evidence=[consult["tx"]],
        )
    window = params["rx_window_h"]
    if not consult["started"] <= issued_ms <= consult["started"] + window * HOUR_MS:
        j.fail(
            f"issued at {format_ms(issued_ms)}, not within {window} h after the consultation "
            f"opened at {format_ms(consult['started'])}",
            subject=("prescription", rx_id),
            evidence=[consult["tx"]],
        )


@check(RX_PROHIBITED)
def prohibited(j: Judge, rx_id: str, drug: Drug) -> None:
    if drug.drug_class != "ordinary":
        j.fail(
            f"{drug.name} is a {drug.drug_class} drug and may not be prescribed online",
            subject=("prescription", rx_id),
        )


@check(RX_LIMITS)
def limits(j: Judge, rx_id: str, drug: Drug, daily_units: int, days: int, quantity: int) -> None:
    problems = []
    if daily_units > drug.max_daily_units:
        problems.append(f"{daily_units} units a day exceeds the maximum {drug.max_daily_units}")
    if days > drug.max_days:
        problems.append(f"{days} days of supply exceeds the maximum {drug.max_days}")
    if quantity > daily_units * days:
        problems.append(f"quantity {quantity} exceeds {daily_units} a day for {days} days")
    if problems:
        j.fail(f"{drug.name}: " + "; ".join(problems), subject=("prescription", rx_id))


@check(RX_INDICATION)
def indication(j: Judge, rx_id: str, drug: Drug, diagnosis: str, consult_tx: str) -> None:
    if diagnosis[:3] not in drug.indications:
        j.fail(
            f"{drug.name} is not indicated for {diagnosis} (indicated: {', '.join(drug.indications)})",
            subject=("prescription", rx_id),
            evidence=[consult_tx],
        )


@check(RX_DUPLICATE)
def duplicate(j: Judge, rx_id: str, group: str, supplies: list[list[Any]], start_ms: int, end_ms: int) -> None:
    overlapping = [s for s in supplies if s[1] < end_ms and start_ms < s[2]]
    if overlapping:
        other = overlapping[0]
        j.fail(
            f"the patient already holds {group} supply until {format_ms(other[2])} from "
            f"prescription {other[0]!r} at {other[3]!r}",
            subject=("prescription", rx_id),
            evidence=[s[4] for s in overlapping],
        )


@check(RX_EXPIRY)
def expiry(j: Judge, rx_id: str, rx: dict[str, Any], at_ms: int, params: dict[str, int]) -> None:
    hours = params["rx_validity_h"]
    if at_ms > rx["issued"] + hours * HOUR_MS:
        j.fail(
            f"dispensed {format_ms(at_ms)}, after the prescription's {hours} h validity from {format_ms(rx['issued'])}",
            subject=("prescription", rx_id),
            evidence=[rx["tx"]],
        )


@check(PH_REVIEW)
def reviewer(
    j: Judge,
    rx_id: str,
    rx: dict[str, Any],
    role: str,
    member: str,
    licence_no: str | None,
    prac: dict[str, Any] | None,
) -> None:
    if role != "pharmacist" or prac is None or prac["profession"] != "pharmacist":
        j.fail(
            f"{member} is not a registered pharmacist",
            subject=("prescription", rx_id),
            evidence=[rx["tx"]],
        )
    elif prac["status"] != "active":
        j.fail(
            f"pharmacist licence {licence_no} is {prac['status']}",
            subject=("prescription", rx_id),
            evidence=[rx["tx"], prac.get("status_tx")],
        )
    if (licence_no is not None and licence_no == rx["licence"]) or member == rx["member"]:
        j.fail(
            "the prescriber may not review their own prescription",
            subject=("prescription", rx_id),
            evidence=[rx["tx"]],
        )


@check(PH_REVIEW)
def reviewed(j: Judge, rx_id: str, rx: dict[str, Any]) -> None:
    if rx["review"] is None:
        j.fail(
            "no pharmacist has reviewed the prescription",
            subject=("prescription", rx_id),
            evidence=[rx["tx"]],
        )


@check(PH_DISPENSE)
def dispensable(
    j: Judge, rx_id: str, rx: dict[str, Any], org: str, inst: dict[str, Any] | None, quantity: int, at_ms: int
) -> None:
    if inst is None or inst["kind"] != "pharmacy" or inst["status"] != "active":
        j.fail(
            f"{org!r} is not an active registered pharmacy",
            subject=("prescription", rx_id),
            institution=org,
        )
    elif not inst["licence"]["from"] <= local_ms(at_ms, j.params) < inst["licence"]["until"] + DAY_MS:
        j.fail(
            f"the licence {inst['licence']['number']} of pharmacy {org!r} is not valid on "
            f"{_day(local_ms(at_ms, j.params))}",
            subject=("prescription", rx_id),
            institution=org,
        )
    if rx["review"] == "rejected":
        j.fail(
            "the pharmacist review rejected this prescription",
            subject=("prescription", rx_id),
            evidence=[rx["tx"], rx.get("review_tx")],
        )
    if quantity > rx["remaining"]:
        j.fail(
            f"dispensing {quantity} but only {rx['remaining']} of {rx['quantity']} remain",
            subject=("prescription", rx_id),
            evidence=[rx["tx"]],
        )


@check(DELIVERY_TRACE)
def handover(
    j: Judge,
    dispense_id: str,
    record: dict[str, Any] | None,
    rx: dict[str, Any] | None,
    seq: int,
    to: str,
    recipient: str | None,
) -> None:
    if record is None:
        j.fail(
            f"hand-over of dispense {dispense_id!r}, which is not on the ledger",
            subject=("dispense", dispense_id),
        )
        return
    problems = []
    if record["delivered"]:
        problems.append("the parcel was already handed to the patient")
    if seq != record["handovers"] + 1:
        problems.append(f"hand-over {seq} follows hand-over {record['handovers']}")
    if to == "patient" and rx is not None and recipient != rx["patient"]:
        problems.append("the recipient is not the prescription's patient")
    if problems:
        j.fail("; ".join(problems), subject=("dispense", dispense_id), evidence=[record["tx"]])


@check(CLAIM_MATCH)
def claim_match(
    j: Judge,
    claim_id: str,
    dispense_id: str,
    record: dict[str, Any] | None,
    drug: Drug | None,
    amount: int,
    params: dict[str, int],
) -> None:
    if record is None:
        j.fail(
            f"the claim cites dispense {dispense_id!r}, which is not on the ledger",
            subject=("claim", claim_id),
        )
        return
    if record["claim"] is not None:
        j.fail(
            f"dispense {dispense_id!r} was already claimed by {record['claim']!r}",
            subject=("claim", claim_id),
            evidence=[record["tx"], record.get("claim_tx")],
        )
    if drug is not None:
        expected = drug.unit_price_fen * record["quantity"]
        tolerance = expected * params["claim_tolerance_bp"] // 10_000
        if abs(amount - expected) > tolerance:
            j.fail(
                f"amount {amount} fen differs from {record['quantity']} x {drug.unit_price_fen} fen "
                f"= {expected} fen by more than {params['claim_tolerance_bp']} bp",
                subject=("claim", claim_id),
                evidence=[record["tx"]],
            )
