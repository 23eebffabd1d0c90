"""The deterministic handler of every medical transaction type.

A handler resolves the facts its rules need from world state, runs the checks
of :mod:`medledger.contracts.rules` that the catalogue lists for its type,
and writes state only when no hard rule fired (the ledger layer discards a
REJECTED transaction's writes anyway; handlers also skip them so the code
reads as the rule does). Structural faults that are not regulatory rules
(an unknown reference, a re-used id, a payload dated in the future) are
refused with their own code and raise no alert.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from medledger.contracts import formulary, rules
from medledger.contracts import models as m
from medledger.contracts.catalogue import COMPLAINT_SLA, PARAMS_BY_NAME
from medledger.contracts.judge import WATCHERS, Judge, notify, refused
from medledger.contracts.world import (
    DAY_MS,
    HOUR_MS,
    OPEN_COMPLAINTS,
    RULEBOOK,
    get,
    local_day,
    local_ms,
    put,
    rulebook,
)
from medledger.errors import MedledgerError
from medledger.ledger import keys
from medledger.ledger.canonical import b64d
from medledger.ledger.chain import max_skew_ms
from medledger.ledger.identity import REGULATOR, signer_of
from medledger.ledger.state import BlockState
from medledger.ledger.timefmt import format_ms, parse_ms
from medledger.ledger.txtypes import Outcome, TxContext

Handler = Callable[[TxContext], Outcome]


class _Refusal(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


def handler(func: Callable[[TxContext, Judge], None]) -> Handler:
    """Wrap a handler body: build its judge under the rulebook in force, turn refusals into outcomes."""

    def run(ctx: TxContext) -> Outcome:
        version, params, pinned = rulebook(ctx.state)
        judge = Judge(ctx, params, version, pinned, institution=ctx.signer.org if ctx.signer.org != REGULATOR else None)
        try:
            func(ctx, judge)
        except _Refusal as refusal:
            return refusal.outcome
        finally:
            if WATCHERS:
                notify(ctx.envelope.type, judge.evaluated)
        return judge.outcome()

    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


def _refuse(j: Judge, code: str, reason: str) -> _Refusal:
    return _Refusal(refused(code, reason, j.version))


def _event_ms(ctx: TxContext, j: Judge, text: str) -> int:
    """An event time from the payload; one later than the block (beyond the clock skew) is refused."""
    ms = parse_ms(text)
    if ms > ctx.block_ms + max_skew_ms(ctx.state.get):
        raise _refuse(j, "FUTURE-EVENT", f"event time {text} is after the block time {format_ms(ctx.block_ms)}")
    return ms


def _window_ms(ctx: TxContext, stated_ms: int) -> int:
    """The time a hard window judges: the stated event time, but never earlier than the block time
    minus the clock skew. A late report is allowed (and alerted) for the record, but back-dating a
    dispense or a prescription into its window must not turn a breach into compliance."""
    return max(stated_ms, ctx.block_ms - max_skew_ms(ctx.state.get))


def _new(ctx: TxContext, j: Judge, kind: str, key: str) -> None:
    if get(ctx.state, kind, key) is not None:
        raise _refuse(j, "DUPLICATE-ID", f"{kind} {key!r} already exists on the ledger")


def _need(ctx: TxContext, j: Judge, kind: str, key: str) -> dict[str, Any]:
    record = get(ctx.state, kind, key)
    if record is None:
        raise _refuse(j, "UNKNOWN-REFERENCE", f"no {kind} {key!r} on the ledger")
    result: dict[str, Any] = record
    return result


def _late(ctx: TxContext, j: Judge, what: str, event_ms: int, param: str = "report_deadline_h") -> None:
    value = j.params[param]
    unit = PARAMS_BY_NAME[param].unit
    scale = DAY_MS if unit == "days" else HOUR_MS
    rules.late(j, what, event_ms, ctx.block_ms, value * scale, f"{value} {unit}")


def _drug(j: Judge, code: str) -> formulary.Drug:
    digest = j.formulary
    table = formulary.default()
    if digest != table.digest:
        raise _refuse(
            j,
            "FORMULARY-MISMATCH",
            f"the rulebook pins formulary {digest[:12]}..., this node runs {table.digest[:12]}...; upgrade the node",
        )
    drug = table.by_rxnorm(code)
    if drug is None:
        raise _refuse(j, "NOT-IN-FORMULARY", f"RxNorm {code} is not in formulary {table.version}")
    return drug


def _consulting_doctor(ctx: TxContext, j: Judge, named: str | None) -> str:
    """The doctor a consultation is about: the signer's own key, or the doctor a gateway names.

    A gateway records consultations for its hospital's HIS; it can only name an active doctor of its
    own institution, so it cannot lend the hospital's authority to an outsider.
    """
    signer = ctx.signer
    if signer.role == "doctor":
        if named is not None and named != signer.member:
            raise _refuse(j, "NOT-AUTHORISED", f"{signer.member} may not record a consultation for {named}")
        return signer.member
    if named is None:
        raise _refuse(j, "NOT-AUTHORISED", f"a {signer.role} key must name the doctor who consulted (`doctor`)")
    doctor = ctx.state.get("member/" + named)
    if doctor is None or doctor["role"] != "doctor" or doctor["org"] != signer.org:
        raise _refuse(j, "NOT-AUTHORISED", f"{named} is not a doctor of {signer.org}")
    if doctor["status"] != "active":
        raise _refuse(j, "NOT-AUTHORISED", f"doctor {named} is {doctor['status']} on the ledger")
    return named


def _prescribing_author(ctx: TxContext, j: Judge, claim: m.Prescriber | None) -> tuple[str, str, str]:
    """(role, member, why the claimed doctor does not count) of who wrote a prescription.

    The envelope's signer wrote it, unless a gateway carries a doctor's own signature over the
    prescription document: that signature is checked here, from the ledger alone (hash-then-sign over
    the document digest), so every member re-derives the same author.
    """
    signer = ctx.signer
    if claim is None:
        return signer.role, signer.member, ""
    if signer.role == "doctor":
        if claim.member != signer.member:
            raise _refuse(j, "NOT-AUTHORISED", f"{signer.member} may not sign a prescription as {claim.member}")
        return signer.role, signer.member, ""
    doctor = signer_of(ctx.state.get, claim.key)
    if doctor is None or doctor.member != claim.member:
        why = f"key {claim.key} is not a key of {claim.member}"
    elif not doctor.active:
        why = f"the key of {claim.member} is not active"
    elif doctor.role != "doctor" or doctor.org != signer.org:
        why = f"{claim.member} is not a doctor of {signer.org}"
    else:
        try:
            keys.verify(
                keys.RESOURCE_DOMAIN,
                keys.public_key_bytes(claim.key),
                bytes.fromhex(claim.resource_sha256),
                b64d(claim.signature, what="prescriber signature", length=64),
            )
        except MedledgerError:
            why = f"the signature of {claim.member} does not verify over document {claim.resource_sha256}"
        else:
            return "doctor", claim.member, ""
    return signer.role, signer.member, why


def _licence(ctx: TxContext, member: str) -> tuple[str | None, dict[str, Any] | None]:
    staff = get(ctx.state, "staff", member)
    if staff is None:
        return None, None
    licence_no: str = staff["licence"]
    return licence_no, get(ctx.state, "prac", licence_no)


# --- regulator ---------------------------------------------------------------


@handler
def publish_rulebook(ctx: TxContext, j: Judge) -> None:
    """Publish a new version of the rule parameters and pin the formulary."""
    p: m.RulebookPublish = ctx.payload
    if p.version != j.version + 1:
        raise _refuse(j, "RULEBOOK-VERSION", f"the next rulebook version is {j.version + 1}, not {p.version}")
    params = dict(j.params)
    for name, value in p.params.items():
        spec = PARAMS_BY_NAME.get(name)
        if spec is None:
            raise _refuse(j, "RULEBOOK-PARAM", f"no rulebook parameter {name!r}")
        if not spec.minimum <= value <= spec.maximum:
            raise _refuse(j, "RULEBOOK-PARAM", f"{name} must be between {spec.minimum} and {spec.maximum} {spec.unit}")
        params[name] = value
    ctx.state.put(
        RULEBOOK, {"version": p.version, "params": params, "formulary": p.formulary, "tx": ctx.envelope.tx_id}
    )


def _validity(v: m.Validity) -> dict[str, int]:
    return {"from": m.day_ms(v.valid_from), "until": m.day_ms(v.valid_until)}


@handler
def admit_institution(ctx: TxContext, j: Judge) -> None:
    p: m.InstitutionAdmit = ctx.payload
    _new(ctx, j, "inst", p.org)
    put(
        ctx.state,
        {
            "name": p.name,
            "kind": p.kind,
            "physical": p.physical,
            "status": "active",
            "internet": None,
            "licence": {"number": p.licence.number, **_validity(p.licence)},
            "tx": ctx.envelope.tx_id,
        },
        "inst",
        p.org,
    )


@handler
def renew_licence(ctx: TxContext, j: Judge) -> None:
    p: m.InstitutionLicence = ctx.payload
    inst = _need(ctx, j, "inst", p.org)
    put(ctx.state, {**inst, "licence": {"number": p.licence.number, **_validity(p.licence)}}, "inst", p.org)


@handler
def approve_internet(ctx: TxContext, j: Judge) -> None:
    p: m.InternetApproval = ctx.payload
    inst = _need(ctx, j, "inst", p.org)
    put(ctx.state, {**inst, "internet": _validity(p.approval)}, "inst", p.org)


def _set_status(kind: str, field: str, status: str) -> Handler:
    """The regulator's status decisions (suspend, revoke, reinstate) on an institution or a licence."""

    @handler
    def run(ctx: TxContext, j: Judge) -> None:
        key = getattr(ctx.payload, field)
        record = _need(ctx, j, kind, key)
        put(ctx.state, {**record, "status": status, "status_tx": ctx.envelope.tx_id}, kind, key)

    return run


@handler
def review_app(ctx: TxContext, j: Judge) -> None:
    p: m.AppReview = ctx.payload
    app = _need(ctx, j, "app", f"{p.org}/{p.app}")
    put(ctx.state, {**app, "status": p.decision, "review_tx": ctx.envelope.tx_id}, "app", p.org, p.app)


@handler
def answer_complaint(ctx: TxContext, j: Judge) -> None:
    p: m.ComplaintAnswer = ctx.payload
    complaint = _need(ctx, j, "complaint", p.complaint_id)
    if complaint["answer"] is not None:
        raise _refuse(j, "ALREADY-ANSWERED", f"complaint {p.complaint_id!r} was already answered")
    put(ctx.state, {**complaint, "answer": p.resolution, "answer_tx": ctx.envelope.tx_id}, "complaint", p.complaint_id)
    queue = ctx.state.get(OPEN_COMPLAINTS) or []
    remaining = [entry for entry in queue if entry[1] != p.complaint_id]
    if len(remaining) != len(queue):
        ctx.state.put(OPEN_COMPLAINTS, remaining)


# --- institution -------------------------------------------------------------


def _own_org(ctx: TxContext, j: Judge) -> dict[str, Any]:
    inst = get(ctx.state, "inst", ctx.signer.org)
    if inst is None:
        raise _refuse(j, "NOT-ADMITTED", f"{ctx.signer.org!r} is not an admitted institution")
    result: dict[str, Any] = inst
    return result


@handler
def register_practitioner(ctx: TxContext, j: Judge) -> None:
    """Link a member key to a practitioner licence; the licence record is the person's, across institutions."""
    p: m.PractitionerRegister = ctx.payload
    _own_org(ctx, j)
    member = ctx.state.get("member/" + p.member)
    if member is None or member["org"] != ctx.signer.org or member["role"] != p.profession:
        raise _refuse(j, "MEMBER-MISMATCH", f"{p.member!r} must be an active {p.profession} key of {ctx.signer.org!r}")
    _new(ctx, j, "staff", p.member)
    prac = get(ctx.state, "prac", p.licence_no)
    if prac is None:
        prac = {
            "profession": p.profession,
            "qualification": p.qualification,
            "first_practice": p.first_practice,
            "specialties": sorted(set(p.specialties)),
            "status": "active",
            "members": [],
            "tx": ctx.envelope.tx_id,
        }
    elif prac["profession"] != p.profession or prac["first_practice"] != p.first_practice:
        raise _refuse(j, "LICENCE-MISMATCH", f"licence {p.licence_no} is registered with other facts")
    put(ctx.state, {**prac, "members": sorted({*prac["members"], p.member})}, "prac", p.licence_no)
    put(ctx.state, {"licence": p.licence_no, "org": ctx.signer.org}, "staff", p.member)


@handler
def register_site(ctx: TxContext, j: Judge) -> None:
    p: m.PracticeSite = ctx.payload
    _own_org(ctx, j)
    _need(ctx, j, "prac", p.licence_no)
    put(
        ctx.state,
        {"filing": p.filing, **_validity(p.validity), "tx": ctx.envelope.tx_id},
        "site",
        p.licence_no,
        ctx.signer.org,
    )


@handler
def register_app(ctx: TxContext, j: Judge) -> None:
    p: m.AppRegister = ctx.payload
    _own_org(ctx, j)
    _new(ctx, j, "app", f"{ctx.signer.org}/{p.app}")
    put(ctx.state, {"name": p.name, "status": "pending", "tx": ctx.envelope.tx_id}, "app", ctx.signer.org, p.app)


@handler
def report_leak(ctx: TxContext, j: Judge) -> None:
    p: m.DataLeakReport = ctx.payload
    _new(ctx, j, "report", p.incident_id)
    detected = _event_ms(ctx, j, p.detected_at)
    _late(ctx, j, "a data leak detected", detected, "leak_deadline_h")
    put(
        ctx.state,
        {
            "kind": "data-leak",
            "org": ctx.signer.org,
            "category": p.category,
            "detected": detected,
            "records": p.records_affected,
            "tx": ctx.envelope.tx_id,
        },
        "report",
        p.incident_id,
    )


# --- clinical ----------------------------------------------------------------


@handler
def authenticate_doctor(ctx: TxContext, j: Judge) -> None:
    p: m.DoctorAuthenticate = ctx.payload
    member = ctx.state.get("member/" + p.member)
    if member is None or member["org"] != ctx.signer.org or member["role"] != "doctor":
        raise _refuse(j, "MEMBER-MISMATCH", f"{p.member!r} is not a doctor of {ctx.signer.org!r}")
    at = _event_ms(ctx, j, p.at)
    _late(ctx, j, "a real-name authentication", at)
    latest = get(ctx.state, "auth", p.member)
    if latest is None or at >= latest["at"]:
        # an older check reported late is logged, but never replaces a newer one
        put(ctx.state, {"at": at, "method": p.method, "tx": ctx.envelope.tx_id}, "auth", p.member)


@handler
def verify_patient(ctx: TxContext, j: Judge) -> None:
    p: m.PatientVerify = ctx.payload
    at = _event_ms(ctx, j, p.at)
    record = get(ctx.state, "patient", p.patient)
    if record is not None and record["birth_month"] != p.birth_month:
        raise _refuse(j, "PATIENT-MISMATCH", "this pseudonym was verified with another birth month")
    put(ctx.state, {"birth_month": p.birth_month, "verified": at, "tx": ctx.envelope.tx_id}, "patient", p.patient)


@handler
def record_encounter(ctx: TxContext, j: Judge) -> None:
    """An offline encounter: the diagnosis a later online follow-up may cite."""
    p: m.Encounter = ctx.payload
    inst = _own_org(ctx, j)
    if not inst["physical"]:
        raise _refuse(
            j, "NOT-PHYSICAL", f"{ctx.signer.org!r} has no physical premises; offline encounters happen there"
        )
    _new(ctx, j, "dx", p.document)
    day = m.day_ms(p.date)
    if day > local_ms(ctx.block_ms, j.params):
        raise _refuse(j, "FUTURE-EVENT", f"encounter date {p.date} is after the block date")
    put(
        ctx.state,
        {
            "patient": p.patient,
            "org": ctx.signer.org,
            "date": p.date,
            "date_ms": day,
            "diagnosis": p.diagnosis,
            "encounter": p.encounter_id,
            "tx": ctx.envelope.tx_id,
        },
        "dx",
        p.document,
    )


@handler
def open_consultation(ctx: TxContext, j: Judge) -> None:
    p: m.ConsultationOpen = ctx.payload
    state, org = ctx.state, ctx.signer.org
    _new(ctx, j, "consult", p.consultation_id)
    member = _consulting_doctor(ctx, j, p.doctor)
    started = _event_ms(ctx, j, p.started_at)
    rules.institution_licensed(j, org, get(state, "inst", org), started, online=True)
    licence_no, prac = _licence(ctx, member)
    j.practitioner = licence_no
    rules.practitioner_licensed(j, member, licence_no, prac)
    if licence_no is not None and prac is not None:
        rules.practice_site(j, licence_no, org, get(state, "site", licence_no, org), started)
        rules.experience(j, licence_no, prac, started, j.params)
        rules.scope(j, licence_no, prac, p.specialty)
    rules.doctor_realname(j, member, get(state, "auth", member), started, j.params)
    patient = get(state, "patient", p.patient)
    rules.patient_realname(j, p.patient, patient)
    record = get(state, "dx", p.prior.document) if p.prior is not None else None
    prior_inst = get(state, "inst", record["org"]) if record is not None else None
    rules.prior_diagnosis(j, p.patient, p.diagnosis, p.prior, record, prior_inst, started)
    if patient is not None:
        guardian = get(state, "patient", p.guardian) if p.guardian is not None else None
        rules.guardian(j, p.patient, patient, p.guardian, guardian, started, j.params)
    if p.app is not None:
        rules.app_approved(j, org, p.app, get(state, "app", org, p.app))
    _late(ctx, j, "a consultation opened", started)
    if j.hard:
        return
    if licence_no is not None:
        day = str(local_day(started, j.params))
        count = (get(state, "count", licence_no, day) or 0) + 1
        rules.daily_volume(j, licence_no, count, j.params)
        put(state, count, "count", licence_no, day)
    put(
        state,
        {
            "org": org,
            "member": member,
            "licence": licence_no,
            "patient": p.patient,
            "specialty": p.specialty,
            "diagnosis": p.diagnosis,
            "started": started,
            "ended": None,
            "app": p.app,
            # what the consultation relied on, so a prescription's trace can show it
            "prior_tx": record["tx"] if record is not None else None,
            "auth_tx": (get(state, "auth", member) or {}).get("tx"),
            "tx": ctx.envelope.tx_id,
        },
        "consult",
        p.consultation_id,
    )


@handler
def close_consultation(ctx: TxContext, j: Judge) -> None:
    p: m.ConsultationClose = ctx.payload
    consult = _need(ctx, j, "consult", p.consultation_id)
    if consult["org"] != ctx.signer.org:
        raise _refuse(j, "NOT-AUTHORISED", f"consultation {p.consultation_id!r} belongs to {consult['org']!r}")
    if consult["ended"] is not None:
        raise _refuse(j, "ALREADY-CLOSED", f"consultation {p.consultation_id!r} is already closed")
    ended = _event_ms(ctx, j, p.ended_at)
    if ended < consult["started"]:
        raise _refuse(j, "TIME-ORDER", "the consultation ends before it started")
    j.practitioner = consult["licence"]
    rules.duration(j, p.consultation_id, (ended - consult["started"]) // 1000, j.params)
    _late(ctx, j, "a consultation closed", ended)
    put(ctx.state, {**consult, "ended": ended}, "consult", p.consultation_id)


@handler
def issue_prescription(ctx: TxContext, j: Judge) -> None:
    p: m.PrescriptionIssue = ctx.payload
    state, org = ctx.state, ctx.signer.org
    _new(ctx, j, "rx", p.rx_id)
    if p.prescriber is not None:
        # one signed document backs one prescription: a gateway holding a doctor's signature must not
        # be able to attach it to a second prescription the doctor never saw
        _new(ctx, j, "rxdoc", p.prescriber.resource_sha256)
    drug = _drug(j, p.rxnorm)
    issued = _event_ms(ctx, j, p.issued_at)
    consult = get(state, "consult", p.consultation_id)
    role, member, why_not = _prescribing_author(ctx, j, p.prescriber)
    rules.written_by_doctor(j, role, member, why_not)
    if role == "doctor":
        licence_no, prac = _licence(ctx, member)
        j.practitioner = licence_no
        rules.practitioner_licensed(j, member, licence_no, prac)
        rules.prescriber(j, p.rx_id, member, consult, p.consultation_id, _window_ms(ctx, issued), j.params)
    elif consult is None:
        raise _refuse(j, "UNKNOWN-REFERENCE", f"no consultation {p.consultation_id!r} on the ledger")
    rules.institution_licensed(j, org, get(state, "inst", org), issued, online=True)
    rules.prohibited(j, p.rx_id, drug)
    rules.limits(j, p.rx_id, drug, p.daily_units, p.days, p.quantity)
    patient = consult["patient"] if consult is not None else None
    if consult is not None:
        rules.not_instant(j, p.rx_id, (issued - consult["started"]) // 1000, consult["tx"], j.params)
        rules.indication(j, p.rx_id, drug, consult["diagnosis"], consult["tx"])
    end = issued + p.days * DAY_MS
    supplies: list[list[Any]] = []
    if patient is not None:
        supplies = [s for s in get(state, "supply", patient, drug.group) or [] if s[2] > issued]
        rules.duplicate(j, p.rx_id, drug.group, supplies, issued, end)
    _late(ctx, j, "a prescription issued", issued)
    if j.hard or consult is None:
        return
    put(state, [*supplies, [p.rx_id, issued, end, org, ctx.envelope.tx_id]], "supply", consult["patient"], drug.group)
    if p.prescriber is not None:
        put(state, p.rx_id, "rxdoc", p.prescriber.resource_sha256)
    put(
        state,
        {
            "consult": p.consultation_id,
            "org": org,
            "member": member,
            "licence": j.practitioner,
            "patient": consult["patient"],
            "rxnorm": p.rxnorm,
            "quantity": p.quantity,
            "remaining": p.quantity,
            "issued": issued,
            "review": None,
            "dispenses": [],
            "tx": ctx.envelope.tx_id,
        },
        "rx",
        p.rx_id,
    )


@handler
def review_prescription(ctx: TxContext, j: Judge) -> None:
    p: m.PrescriptionReview = ctx.payload
    rx = _need(ctx, j, "rx", p.rx_id)
    if rx["review"] is not None:
        raise _refuse(j, "ALREADY-REVIEWED", f"prescription {p.rx_id!r} was already reviewed ({rx['review']})")
    at = _event_ms(ctx, j, p.reviewed_at)
    if at < rx["issued"]:
        raise _refuse(j, "TIME-ORDER", f"reviewed at {p.reviewed_at}, before the prescription was issued")
    licence_no, prac = _licence(ctx, ctx.signer.member)
    j.practitioner = licence_no
    rules.reviewer(j, p.rx_id, rx, ctx.signer.role, ctx.signer.member, licence_no, prac)
    _late(ctx, j, "a prescription review", at)
    if not j.hard:
        put(
            ctx.state,
            {**rx, "review": p.decision, "reviewer": licence_no, "review_tx": ctx.envelope.tx_id},
            "rx",
            p.rx_id,
        )


@handler
def dispense(ctx: TxContext, j: Judge) -> None:
    p: m.Dispense = ctx.payload
    _new(ctx, j, "dispense", p.dispense_id)
    rx = _need(ctx, j, "rx", p.rx_id)
    at = _event_ms(ctx, j, p.dispensed_at)
    if at < rx["issued"]:
        raise _refuse(j, "TIME-ORDER", f"dispensed at {p.dispensed_at}, before the prescription was issued")
    j.practitioner = _licence(ctx, ctx.signer.member)[0]
    rules.reviewed(j, p.rx_id, rx)
    rules.dispensable(j, p.rx_id, rx, ctx.signer.org, get(ctx.state, "inst", ctx.signer.org), p.quantity, at)
    rules.expiry(j, p.rx_id, rx, _window_ms(ctx, at), j.params)
    _late(ctx, j, "a dispense", at)
    if j.hard:
        return
    dispenses = [*rx["dispenses"], p.dispense_id]
    put(ctx.state, {**rx, "remaining": rx["remaining"] - p.quantity, "dispenses": dispenses}, "rx", p.rx_id)
    put(
        ctx.state,
        {
            "rx": p.rx_id,
            "org": ctx.signer.org,
            "quantity": p.quantity,
            "at": at,
            "handovers": 0,
            "delivered": False,
            "handover_txs": [],
            "claim": None,
            "tx": ctx.envelope.tx_id,
        },
        "dispense",
        p.dispense_id,
    )


@handler
def hand_over(ctx: TxContext, j: Judge) -> None:
    p: m.Handover = ctx.payload
    at = _event_ms(ctx, j, p.at)
    record = get(ctx.state, "dispense", p.dispense_id)
    if record is not None and at < record["at"]:
        raise _refuse(j, "TIME-ORDER", f"handed over at {p.at}, before the dispense")
    rx = get(ctx.state, "rx", record["rx"]) if record is not None else None
    rules.handover(j, p.dispense_id, record, rx, p.seq, p.to, p.recipient)
    _late(ctx, j, "a delivery hand-over", at)
    if record is not None:
        handovers = max(record["handovers"], p.seq)
        delivered = record["delivered"] or p.to == "patient"
        trail = [*record["handover_txs"], ctx.envelope.tx_id]
        put(
            ctx.state,
            {**record, "handovers": handovers, "delivered": delivered, "handover_txs": trail},
            "dispense",
            p.dispense_id,
        )


@handler
def submit_claim(ctx: TxContext, j: Judge) -> None:
    p: m.ClaimSubmit = ctx.payload
    _new(ctx, j, "claim", p.claim_id)
    record = get(ctx.state, "dispense", p.dispense_id)
    rx = get(ctx.state, "rx", record["rx"]) if record is not None else None
    drug = _drug(j, rx["rxnorm"]) if rx is not None else None
    if rx is not None:
        j.institution = rx["org"]
    rules.claim_match(j, p.claim_id, p.dispense_id, record, drug, p.amount_fen, j.params)
    if j.hard or record is None:
        return
    put(ctx.state, {**record, "claim": p.claim_id, "claim_tx": ctx.envelope.tx_id}, "dispense", p.dispense_id)
    put(
        ctx.state,
        {"dispense": p.dispense_id, "amount": p.amount_fen, "insurer": ctx.signer.org, "tx": ctx.envelope.tx_id},
        "claim",
        p.claim_id,
    )


# --- public and reports ------------------------------------------------------


@handler
def file_complaint(ctx: TxContext, j: Judge) -> None:
    p: m.ComplaintFile = ctx.payload
    _new(ctx, j, "complaint", p.complaint_id)
    _need(ctx, j, "inst", p.about)
    filed = _event_ms(ctx, j, p.filed_at)
    # the regulator's clock starts when the complaint reaches the ledger, not when the form was filled in
    due = max(filed, ctx.block_ms) + j.params["complaint_sla_d"] * DAY_MS
    put(
        ctx.state,
        {
            "about": p.about,
            "category": p.category,
            "filed": filed,
            "due": due,
            "answer": None,
            "overdue": None,
            "tx": ctx.envelope.tx_id,
        },
        "complaint",
        p.complaint_id,
    )
    queue = list(ctx.state.get(OPEN_COMPLAINTS) or [])
    queue.append([due, p.complaint_id])
    queue.sort()
    ctx.state.put(OPEN_COMPLAINTS, queue)


@handler
def report_adverse_event(ctx: TxContext, j: Judge) -> None:
    p: m.AdverseEventReport = ctx.payload
    _new(ctx, j, "report", p.report_id)
    occurred = _event_ms(ctx, j, p.occurred_at)
    if p.org is not None:
        _need(ctx, j, "inst", p.org)
        j.institution = p.org
    if not p.anonymous and ctx.signer.org != REGULATOR:
        # institutions owe the deadline; the regulator's public desk relays the public, who do not
        _late(ctx, j, "an adverse event", occurred, "adverse_deadline_d")
    put(
        ctx.state,
        {
            "kind": "adverse-event",
            "category": p.category,
            "seriousness": p.seriousness,
            "org": p.org,
            "rxnorm": p.rxnorm,
            "occurred": occurred,
            "anonymous": p.anonymous,
            "reporter": None if p.anonymous else ctx.signer.org,
            "tx": ctx.envelope.tx_id,
        },
        "report",
        p.report_id,
    )


@rules.every_block(COMPLAINT_SLA)
def complaint_deadlines(state: BlockState, height: int, block_ms: int) -> list[Mapping[str, Any]]:
    """At the start of every block: each complaint past its deadline raises one alert."""
    queue = state.get(OPEN_COMPLAINTS)
    if not queue or queue[0][0] >= block_ms:
        return []
    version, _, _ = rulebook(state)
    alerts: list[Mapping[str, Any]] = []
    while queue and queue[0][0] < block_ms:
        due, complaint_id = queue[0]
        queue = queue[1:]
        complaint = get(state, "complaint", complaint_id)
        assert complaint is not None, "every queued complaint has its record"
        put(state, {**complaint, "overdue": height}, "complaint", complaint_id)
        alerts.append(
            {
                "rulebook": version,
                "why": f"complaint {complaint_id!r} about {complaint['about']!r} unanswered past {format_ms(due)}",
                "institution": complaint["about"],
                "subject": {"kind": "complaint", "id": complaint_id},
                "evidence": [complaint["tx"]],
            }
        )
    state.put(OPEN_COMPLAINTS, queue)
    return alerts


HANDLERS: dict[str, Handler] = {
    "institution.suspend": _set_status("inst", "org", "suspended"),
    "institution.revoke": _set_status("inst", "org", "revoked"),
    "institution.reinstate": _set_status("inst", "org", "active"),
    "practitioner.suspend": _set_status("prac", "licence_no", "suspended"),
    "practitioner.revoke": _set_status("prac", "licence_no", "revoked"),
    "practitioner.reinstate": _set_status("prac", "licence_no", "active"),
}
