"""Consultation cases: the chain of transactions one online follow-up produces, clean or with one violation.

A clean online follow-up is the whole chain DESIGN §2 describes: the patient
is verified (once), an offline encounter at a physical institution
establishes the diagnosis, the doctor passes a real-name check minutes
before opening the consultation, which cites that diagnosis exactly; the same
doctor prescribes an ordinary drug indicated for it within its limits; the
consultation closes after a plausible time; a pharmacist approves, a pharmacy
dispenses within the validity, a courier hands the parcel over and the
patient receives it, and the insurer claims price times quantity.

Clean traffic must raise no alert at all, so the planner keeps the state the
rules read: each doctor holds one consultation at a time and stays under the
daily cap; each patient's supply windows are kept per therapeutic group so
clean prescriptions never overlap (RX-DUPLICATE fires on *any* overlap);
reports stay inside their deadlines; nothing ever cites a rejected
transaction.

An injected case is a clean case with one :class:`~medledger.sim.injection.Variant`
applied; its trigger step carries the rule it must raise as ground truth.

Every step is planned when its case starts (arrival order), so everything a
rule will read about an earlier step is known when a later one is planned.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from random import Random
from typing import Any, NamedTuple

from medledger.ledger.timefmt import format_ms
from medledger.sim.injection import DAY, HOUR, MINUTE, SECOND, Variant
from medledger.sim.medicine import GENERAL_PRACTICE, PEDIATRICS, Condition, Dose, Medicine
from medledger.sim.province import Doctor, Institution, Person, Province
from medledger.sim.report import TxMeta
from medledger.sim.seeded import Seeded


@dataclass(slots=True)
class Step:
    """One planned transaction: submitted (and ``created_at``) at ``at``."""

    at: int
    seq: int
    signer: str
    type: str
    payload: dict[str, Any]
    meta: TxMeta

    def __lt__(self, other: Step) -> bool:
        return (self.at, self.seq) < (other.at, other.seq)


@dataclass
class Patient:
    pseudonym: str
    birth_month: str
    condition: Condition
    child: bool = False
    guardian: str | None = None
    verified: bool = False
    #: the offline diagnosis follow-ups cite: document, org, date, diagnosis
    encounter: dict[str, str] | None = None
    #: patients of injected cases never come back in clean traffic
    clean: bool = True
    #: already in the pool of returning patients
    listed: bool = False


@dataclass(frozen=True, slots=True)
class Supply:
    """A planned supply window of one therapeutic group, from an accepted prescription."""

    patient: Patient
    group: str
    start: int
    end: int
    org: str
    rxnorm: str
    indicated: bool


def month_of(ms: int, months_back: int) -> str:
    """The calendar month ``months_back`` months before the month of ``ms``, as YYYY-MM."""
    text = format_ms(ms)
    total = int(text[:4]) * 12 + int(text[5:7]) - 1 - months_back
    return f"{total // 12:04d}-{total % 12 + 1:02d}"


@dataclass
class Planner:
    """The province's running state as the planner sees it, and the queue of planned steps."""

    province: Province
    medicine: Medicine
    rng: Random
    seeded: Seeded
    params: dict[str, int]
    end_ms: int
    steps: list[Step] = field(default_factory=list)
    patients: list[Patient] = field(default_factory=list)
    supplies: dict[tuple[str, str], list[Supply]] = field(default_factory=dict)
    holders: list[Supply] = field(default_factory=list)
    cases: int = 0
    injected_cases: int = 0
    _seq: int = 0
    _people: int = 0

    # -- primitives ----------------------------------------------------------------

    def emit(self, at: int, signer: str, type_: str, payload: dict[str, Any], meta: TxMeta) -> None:
        """Plan a step; one that would happen after the run ends is never submitted."""
        if at >= self.end_ms:
            return
        self._seq += 1
        heapq.heappush(self.steps, Step(at, self._seq, signer, type_, payload, meta))

    def due(self, until: int) -> list[Step]:
        """Every planned step before ``until``, in time order."""
        out: list[Step] = []
        while self.steps and self.steps[0].at < until:
            out.append(heapq.heappop(self.steps))
        return out

    def local_day(self, ms: int) -> int:
        return (ms + self.params["local_offset_min"] * MINUTE) // DAY

    def new_id(self, kind: str, case: int, suffix: str = "") -> str:
        return f"{self.province.prefix}{kind}{case:06d}{suffix}"

    # -- patients --------------------------------------------------------------------

    def new_patient(
        self, at: int, *, child: bool | None = None, condition: Condition | None = None, clean: bool = True
    ) -> Patient:
        rng, med = self.rng, self.medicine
        self._people += 1
        pseudonym = self.seeded.pseudonym("patient", self._people)
        roll = rng.random()
        if child is None:
            child = roll < 0.08
        if child:
            months, minor = rng.randint(3, 66), True
        elif condition is None and roll < 0.16:
            months, minor = rng.randint(80, 200), True
        else:
            months, minor = (
                12 * rng.choices((25, 45, 60, 75), weights=(30, 34, 22, 14))[0] + rng.randint(-80, 80),
                False,
            )
            months = max(months, 12 * 19)
        if condition is None:
            if minor:
                condition = med.child_conditions[rng.randrange(len(med.child_conditions))]
            else:
                condition = med.adult_condition(rng)
        patient = Patient(pseudonym, month_of(at, months), condition, child=child, clean=clean)
        if child or (minor and rng.random() < 0.5):
            patient.guardian = self.seeded.pseudonym("guardian", self._people)
        return patient

    def returning(self) -> Patient | None:
        """A clean patient seen before, followed up again (their condition does not change)."""
        if not self.patients or self.rng.random() > 0.3:
            return None
        patient = self.patients[self.rng.randrange(len(self.patients))]
        return patient if patient.verified and patient.encounter is not None else None

    def group_free(self, patient: Patient, group: str, start: int, end: int) -> bool:
        return all(s.end <= start or end <= s.start for s in self.supplies.get((patient.pseudonym, group), ()))

    def add_supply(self, supply: Supply) -> None:
        self.supplies.setdefault((supply.patient.pseudonym, supply.group), []).append(supply)
        if supply.indicated and supply.patient.clean:
            self.holders.append(supply)

    def holder(self, at: int, *, pick: bool) -> Supply | None:
        """A clean patient already holding supply that a second prescription soon would overlap.

        ``pick`` draws one at random (consuming randomness); without it the
        first candidate is returned, to ask whether any exists.
        """
        self.holders = [s for s in self.holders if s.end > at + 6 * HOUR]
        ready = [s for s in self.holders if s.start < at - MINUTE]
        if not ready:
            return None
        return ready[self.rng.randrange(len(ready))] if pick else ready[0]

    # -- doctors -------------------------------------------------------------------

    def consults_on(self, person: Person, ms: int) -> int:
        return person.per_day.get(self.local_day(ms), 0)

    def choose_doctor(self, candidates: list[Doctor], at: int) -> tuple[Doctor, int] | None:
        """The doctor who can start soonest (one consultation at a time, under the daily cap)."""
        cap = self.params["max_consults_per_day"] - 2
        options: list[tuple[int, Doctor]] = []
        for doctor in candidates:
            base = max(at + MINUTE, doctor.person.free_at + 30 * SECOND)
            if self.consults_on(doctor.person, base) >= cap or self.consults_on(doctor.person, base + HOUR) >= cap:
                continue
            options.append((base, doctor))
        if not options:
            return None
        now = [o for o in options if o[0] <= at + 3 * MINUTE]
        if now:
            base, doctor = now[self.rng.randrange(len(now))]
        else:
            base, doctor = min(options, key=lambda o: (o[0], o[1].member))
        return doctor, base

    def institution_of(self, org: str) -> Institution:
        return self.province.institution(org)


class Cast(NamedTuple):
    """Who takes part in one consultation, and what it is about."""

    hospital: Institution
    doctor: Doctor
    #: the earliest moment the doctor can start on it
    base: int
    patient: Patient
    specialty: str
    #: the supply a doctor-shopping prescription will overlap
    supply: Supply | None


class ConsultCase:
    """One online follow-up and what follows it, with at most one violation."""

    def __init__(self, planner: Planner, at: int, variant: Variant | None) -> None:
        self.p = planner
        self.rng = planner.rng
        self.at = at
        self.variant = variant
        self.mods = variant.mods if variant is not None else {}
        # the id is taken only once the case is planned (see plan)
        self.case = planner.cases + 1
        self.consultation_id = ""
        self.diagnosis = ""
        self.ended = 0

    # -- bookkeeping --------------------------------------------------------------

    def meta(self, trigger: bool = False) -> TxMeta:
        v = self.variant
        if v is None:
            return TxMeta(self.case, False)
        return TxMeta(self.case, True, v.label, (v.rule,) if trigger else (), v.note if trigger else "")

    def emit(self, at: int, signer: str, type_: str, payload: dict[str, Any], *, trigger: bool = False) -> None:
        self.p.emit(at, signer, type_, payload, self.meta(trigger))

    def triggers(self, step: str) -> bool:
        return self.variant is not None and self.variant.trigger == step

    def stops(self, step: str) -> bool:
        """Whether the case ends here: its trigger was hard-rejected, so nothing downstream can happen."""
        return self.variant is not None and self.variant.trigger == step and self.variant.hard

    # -- the chain -----------------------------------------------------------------

    def plan(self) -> bool:
        """Plan every step; False if no doctor or patient fits (the arrival is dropped)."""
        cast = self._cast()
        if cast is None:
            return False
        self.p.cases = self.case
        if self.variant is not None:
            self.p.injected_cases += 1
        self._prepare(cast.patient, cast.hospital)
        started = self._consult(cast)
        if started is None:
            return True
        rx = self._prescribe(cast, started)
        if rx is None:
            return True
        self._fulfil(cast, *rx)
        return True

    def _cast(self) -> Cast | None:
        """Pick the patient and a doctor who can see them: the variant may ask for special ones."""
        p, m, rng = self.p, self.mods, self.rng
        province = p.province
        supply: Supply | None = None
        wanted = m.get("doctor")
        if wanted is not None:
            keys = province.special(wanted)
            chosen = p.choose_doctor(keys, self.at)
            if chosen is None:
                return None
            doctor, base = chosen
            patient = p.new_patient(self.at, child=False, clean=False)
            return Cast(p.institution_of(doctor.org), doctor, base, patient, GENERAL_PRACTICE, None)
        kind = m.get("patient")
        if kind == "holder":
            supply = p.holder(self.at, pick=True)
            if supply is None:
                return None
            patient = supply.patient
            hospitals = [h for h in province.internet if h.org != supply.org]
        else:
            hospitals = list(province.internet)
            if kind == "child":
                patient = p.new_patient(self.at, child=True, clean=False)
            elif kind == "prohibitable":
                conditions = p.medicine.prohibitable
                patient = p.new_patient(
                    self.at, child=False, condition=conditions[rng.randrange(len(conditions))], clean=False
                )
            elif self.variant is not None:
                patient = p.new_patient(self.at, child=False, clean=False)
            else:
                patient = p.returning() or p.new_patient(self.at)
        specialty = PEDIATRICS if patient.child else patient.condition.specialty
        rng.shuffle(hospitals)
        for hospital in hospitals:
            doctors = [d for d in province.clean_doctors(specialty) if d.org == hospital.org]
            chosen = p.choose_doctor(doctors, self.at)
            if chosen is not None and chosen[1] <= self.at + 90 * MINUTE:
                break
        else:
            everywhere = [d for d in province.clean_doctors(specialty) if any(d.org == h.org for h in hospitals)]
            chosen = p.choose_doctor(everywhere, self.at)
            if chosen is None:
                return None
        doctor, base = chosen
        if m.get("scope") == "outside":
            outside = [s for s in p.medicine.specialties if s not in doctor.person.specialties]
            specialty = outside[rng.randrange(len(outside))]
        if patient.clean and not patient.listed:
            patient.listed = True
            p.patients.append(patient)
        return Cast(p.institution_of(doctor.org), doctor, base, patient, specialty, supply)

    def _prepare(self, patient: Patient, hospital: Institution) -> None:
        """Verify the patient (and guardian) once, and record the offline encounter follow-ups cite."""
        p = self.p
        gateway = hospital.gateway
        assert gateway is not None
        at = self.at
        if not patient.verified and self.mods.get("patient") != "unverified":
            method = "birth-certificate" if patient.child else self.rng.choice(("resident-id", "insurance-card"))
            self.emit(
                at,
                gateway.member,
                "patient.verify",
                {
                    "patient": patient.pseudonym,
                    "birth_month": patient.birth_month,
                    "method": method,
                    "at": format_ms(at),
                },
            )
            patient.verified = True
            if patient.guardian is not None and self.mods.get("guardian") is None:
                years = self.rng.randint(24, 50)
                self.emit(
                    at,
                    gateway.member,
                    "patient.verify",
                    {
                        "patient": patient.guardian,
                        "birth_month": month_of(at, 12 * years + self.rng.randint(0, 11)),
                        "method": "guardian-id",
                        "at": format_ms(at),
                    },
                )
        if patient.encounter is None:
            places = p.province.offline if self.rng.random() < 0.85 else p.province.internet
            place = places[self.rng.randrange(len(places))]
            signers = [d.member for d in place.doctors if d.person.kind == "clean"]
            signer = signers[self.rng.randrange(len(signers))] if signers and self.rng.random() < 0.7 else None
            if signer is None:
                assert place.gateway is not None
                signer = place.gateway.member
            date = format_ms(at - self.rng.randint(2, 60) * DAY)[:10]
            document = p.seeded.document(f"encounter/{self.case}")
            self.emit(
                at + 20 * SECOND,
                signer,
                "encounter.record",
                {
                    "encounter_id": p.new_id("e", self.case),
                    "patient": patient.pseudonym,
                    "date": date,
                    "diagnosis": patient.condition.code,
                    "document": document,
                },
            )
            patient.encounter = {
                "document": document,
                "org": place.org,
                "date": date,
                "diagnosis": patient.condition.code,
            }

    def _consult(self, cast: Cast) -> int | None:
        """Authenticate the doctor, open and close the consultation; the opening time, or None if refused."""
        p, m, rng = self.p, self.mods, self.rng
        hospital, doctor, base, patient = cast.hospital, cast.doctor, cast.base, cast.patient
        gateway = hospital.gateway
        assert gateway is not None
        if m.get("auth") == "stale":
            lead = rng.randint(p.params["realname_window_min"] + 2, p.params["realname_window_min"] + 25) * MINUTE
        else:
            lead = rng.randint(40 * SECOND, 8 * MINUTE)
        start = base + lead + rng.randint(30 * SECOND, 4 * MINUTE)
        authenticated = start - lead
        if m.get("auth") != "none":
            signer = gateway.member if rng.random() < 0.7 else doctor.member
            self.emit(
                authenticated,
                signer,
                "doctor.authenticate",
                {
                    "member": doctor.member,
                    "method": rng.choice(("face", "face", "ca-certificate")),
                    "at": format_ms(authenticated),
                },
            )
        payload: dict[str, Any] = {
            "consultation_id": p.new_id("c", self.case),
            "patient": patient.pseudonym,
            "specialty": cast.specialty,
            "diagnosis": patient.condition.code,
            "started_at": format_ms(start),
        }
        guardian = self._guardian(patient, gateway.member)
        if guardian is not None:
            payload["guardian"] = guardian
        prior = self._prior(patient)
        if prior is not None:
            payload["prior"] = prior
        app = self._app(hospital)
        if app is not None:
            payload["app"] = app
        if m.get("prior") == "other-condition":
            payload["diagnosis"] = self._other_condition(patient)
        self.emit(start, doctor.member, "consultation.open", payload, trigger=self.triggers("open"))
        person = doctor.person
        if self.stops("open"):
            person.free_at = start + rng.randint(2, 6) * MINUTE
            return None
        day = p.local_day(start)
        person.per_day[day] = person.per_day.get(day, 0) + 1
        close = m.get("close")
        if close == "short":
            ended = start + rng.randint(20, p.params["min_consult_s"] - 20) * SECOND
        elif close == "long":
            ended = start + p.params["max_consult_s"] * SECOND + rng.randint(10, 60) * MINUTE
        else:
            ended = start + rng.randint(6 * MINUTE, 40 * MINUTE)
        person.free_at = min(ended, start + 40 * MINUTE)
        submitted = ended
        if close == "late":
            submitted = ended + p.params["report_deadline_h"] * HOUR + rng.randint(5, 50) * MINUTE
        signer = doctor.member if rng.random() < 0.6 else gateway.member
        self.emit(
            submitted,
            signer,
            "consultation.close",
            {"consultation_id": payload["consultation_id"], "ended_at": format_ms(ended)},
            trigger=self.triggers("close"),
        )
        self.ended = ended
        self.consultation_id = payload["consultation_id"]
        self.diagnosis = payload["diagnosis"]
        return start

    def _guardian(self, patient: Patient, gateway: str) -> str | None:
        """The guardian the consultation names: the patient's own, or none, or one the variant makes up."""
        mode = self.mods.get("guardian")
        if mode is None:
            return patient.guardian
        if mode == "none":
            return None
        if mode == "unverified":
            return self.p.seeded.pseudonym("unverified-guardian", self.case)
        minor = self.p.seeded.pseudonym("minor-guardian", self.case)
        self.emit(
            self.at,
            gateway,
            "patient.verify",
            {
                "patient": minor,
                "birth_month": month_of(self.at, 12 * self.rng.randint(10, 15)),
                "method": "birth-certificate",
                "at": format_ms(self.at),
            },
        )
        return minor

    def _prior(self, patient: Patient) -> dict[str, str] | None:
        """The offline diagnosis the consultation cites: the patient's own, or none, or an unknown document."""
        mode = self.mods.get("prior")
        if mode == "none":
            return None
        if mode == "unknown":
            place = self.p.province.offline[0]
            return {
                "document": self.p.seeded.document(f"missing/{self.case}"),
                "org": place.org,
                "date": format_ms(self.at - 10 * DAY)[:10],
                "diagnosis": patient.condition.code,
            }
        assert patient.encounter is not None
        return dict(patient.encounter)

    def _other_condition(self, patient: Patient) -> str:
        conditions = [c for c in self.p.medicine.adult_conditions if c.category != patient.condition.category]
        return conditions[self.rng.randrange(len(conditions))].code

    def _app(self, hospital: Institution) -> str | None:
        mode = self.mods.get("app")
        if mode == "unregistered":
            return hospital.org.removeprefix(self.p.province.prefix) + "-retired"
        if mode is not None:
            return hospital.apps[mode]
        if "approved" in hospital.apps and self.rng.random() < 0.6:
            return hospital.apps["approved"]
        return None

    # -- prescription ------------------------------------------------------------------

    def _dose(self, patient: Patient, issued: int, supply: Supply | None) -> tuple[Dose, bool] | None:
        """The prescription line the variant asks for, in a therapeutic group the patient holds no supply of."""
        p, rng, mode = self.p, self.rng, self.mods.get("drug")
        med = p.medicine
        category = self.diagnosis[:3]
        if mode == "prohibited":
            drugs, indicated = med.prohibited_for(category), True
        elif mode == "not-indicated":
            drugs, indicated = med.not_indicated(category), False
        elif mode == "same-group":
            assert supply is not None
            drugs, indicated = tuple(d for d in med.indicated(category) if d.group == supply.group), True
        else:
            drugs, indicated = med.indicated(category), True
        order = list(drugs)
        rng.shuffle(order)
        for drug in order:
            dose = med.dose(rng, drug)
            if mode == "limits-days":
                if drug.max_days >= 300:
                    continue
                days = drug.max_days + rng.randint(1, 10)
                dose = Dose(drug, 1, days, days)
            elif mode == "limits-daily":
                daily = drug.max_daily_units + rng.randint(1, 3)
                days = min(3, drug.max_days)
                dose = Dose(drug, daily, days, daily * days)
            elif mode == "limits-quantity":
                dose = Dose(drug, dose.daily_units, dose.days, dose.quantity + rng.randint(1, 10))
            end = issued + dose.days * DAY
            if mode == "same-group" or p.group_free(patient, drug.group, issued, end):
                return dose, indicated
        return None

    def _prescribe(self, cast: Cast, start: int) -> tuple[str, Dose, int] | None:
        """Issue the prescription (most clean cases have one); its id, dose and time, or None if there is none."""
        p, m, rng = self.p, self.mods, self.rng
        hospital, doctor, patient = cast.hospital, cast.doctor, cast.patient
        if self.variant is None and rng.random() < 0.15:
            return None
        if m.get("close") is not None:
            return None
        timing = m.get("rx_time")
        if timing == "instant":
            issued = start + rng.randint(10, p.params["rx_min_s"] - 10) * SECOND
        elif timing == "late":
            issued = start + p.params["rx_window_h"] * HOUR + rng.randint(10, 60) * MINUTE
        else:
            issued = start + rng.randint(
                5 * MINUTE, max(5 * MINUTE, min(30 * MINUTE, self.ended - start - 30 * SECOND))
            )
        chosen = self._dose(patient, issued, cast.supply)
        if chosen is None:
            return None
        dose, indicated = chosen
        signer = doctor.member
        if m.get("rx_signer") == "gateway":
            assert hospital.gateway is not None
            signer = hospital.gateway.member
        elif m.get("rx_signer") == "other-doctor":
            others = [d for d in hospital.doctors if d.person.kind == "clean" and d.person is not doctor.person]
            signer = others[rng.randrange(len(others))].member
        rx_id = p.new_id("rx", self.case)
        self.emit(
            issued,
            signer,
            "prescription.issue",
            {
                "rx_id": rx_id,
                "consultation_id": self.consultation_id,
                "rxnorm": dose.rxnorm,
                "daily_units": dose.daily_units,
                "days": dose.days,
                "quantity": dose.quantity,
                "issued_at": format_ms(issued),
            },
            trigger=self.triggers("issue"),
        )
        if self.stops("issue"):
            return None
        p.add_supply(
            Supply(patient, dose.drug.group, issued, issued + dose.days * DAY, hospital.org, dose.rxnorm, indicated)
        )
        return rx_id, dose, issued

    # -- review, dispense, delivery, claim ---------------------------------------------------

    def _fulfil(self, cast: Cast, rx_id: str, dose: Dose, issued: int) -> None:
        """Review, dispense, deliver and claim the prescription."""
        p, m, rng = self.p, self.mods, self.rng
        hospital, doctor, patient = cast.hospital, cast.doctor, cast.patient
        review = m.get("review")
        reviewed = issued + rng.randint(3, 45) * MINUTE
        if review != "none":
            reviewer = hospital.pharmacists[rng.randrange(len(hospital.pharmacists))].member
            if review == "by-prescriber":
                reviewer = doctor.member
            elif review == "suspended-pharmacist":
                reviewer = p.province.suspended_pharmacist.member
            decision, reason = (
                ("rejected", rng.choice(("dose", "interaction", "contraindication")))
                if (review == "rejected")
                else ("approved", "appropriate")
            )
            self.emit(
                reviewed,
                reviewer,
                "prescription.review",
                {"rx_id": rx_id, "decision": decision, "reason": reason, "reviewed_at": format_ms(reviewed)},
                trigger=self.triggers("review"),
            )
            if self.stops("review"):
                return
        pharmacy = p.province.pharmacies[rng.randrange(len(p.province.pharmacies))]
        dispenser = pharmacy.pharmacists[rng.randrange(len(pharmacy.pharmacists))].member
        mode = m.get("dispense")
        if mode == "expired":
            dispensed = issued + p.params["rx_validity_h"] * HOUR + rng.randint(10, 120) * MINUTE
        else:
            dispensed = reviewed + rng.randint(15, 240) * MINUTE
        quantity = dose.quantity
        if mode == "over":
            quantity += rng.randint(1, 5)
        elif mode == "non-pharmacy":
            dispenser = hospital.pharmacists[rng.randrange(len(hospital.pharmacists))].member
        dispense_id = p.new_id("d", self.case)
        self.emit(
            dispensed,
            dispenser,
            "prescription.dispense",
            {"dispense_id": dispense_id, "rx_id": rx_id, "quantity": quantity, "dispensed_at": format_ms(dispensed)},
            trigger=self.triggers("dispense"),
        )
        if self.stops("dispense"):
            return
        self._deliver(pharmacy, patient, dispense_id, dispensed)
        self._claim(dispense_id, dose, dispensed)

    def _deliver(self, pharmacy: Institution, patient: Patient, dispense_id: str, dispensed: int) -> None:
        rng, mode = self.rng, self.mods.get("delivery")
        assert pharmacy.gateway is not None
        gateway = pharmacy.gateway.member
        first = dispensed + rng.randint(5, 30) * MINUTE
        second = first + rng.randint(20, 180) * MINUTE
        via = "courier" if rng.random() < 0.8 else "pickup-point"
        if mode == "skip":
            self.emit(
                first,
                gateway,
                "delivery.handover",
                {"dispense_id": dispense_id, "seq": 2, "to": via, "at": format_ms(first)},
                trigger=True,
            )
            self.emit(
                second,
                gateway,
                "delivery.handover",
                {
                    "dispense_id": dispense_id,
                    "seq": 3,
                    "to": "patient",
                    "recipient": patient.pseudonym,
                    "at": format_ms(second),
                },
            )
            return
        self.emit(
            first,
            gateway,
            "delivery.handover",
            {"dispense_id": dispense_id, "seq": 1, "to": via, "at": format_ms(first)},
        )
        recipient = patient.pseudonym
        if mode == "wrong-recipient":
            recipient = self.p.seeded.pseudonym("bystander", self.case)
        self.emit(
            second,
            gateway,
            "delivery.handover",
            {"dispense_id": dispense_id, "seq": 2, "to": "patient", "recipient": recipient, "at": format_ms(second)},
            trigger=mode == "wrong-recipient",
        )
        if mode == "after-delivered":
            third = second + rng.randint(30, 180) * MINUTE
            self.emit(
                third,
                gateway,
                "delivery.handover",
                {"dispense_id": dispense_id, "seq": 3, "to": "courier", "at": format_ms(third)},
                trigger=True,
            )

    def _claim(self, dispense_id: str, dose: Dose, dispensed: int) -> None:
        p, rng, mode = self.p, self.rng, self.mods.get("claim")
        clerks = p.province.insurer.clerks
        clerk = clerks[rng.randrange(len(clerks))].member
        claimed = dispensed + rng.randint(30, 360) * MINUTE
        amount = dose.drug.unit_price_fen * dose.quantity
        if mode == "unknown":
            self.emit(
                claimed,
                clerk,
                "claim.submit",
                {
                    "claim_id": p.new_id("k", self.case),
                    "dispense_id": p.new_id("d", self.case, "-x"),
                    "amount_fen": amount,
                },
                trigger=True,
            )
            return
        if mode == "inflated":
            amount = amount * 6 // 5 + 100
        self.emit(
            claimed,
            clerk,
            "claim.submit",
            {"claim_id": p.new_id("k", self.case), "dispense_id": dispense_id, "amount_fen": amount},
            trigger=mode == "inflated",
        )
        if mode == "double":
            again = claimed + rng.randint(5, 60) * MINUTE
            self.emit(
                again,
                clerk,
                "claim.submit",
                {"claim_id": p.new_id("k", self.case, "-b"), "dispense_id": dispense_id, "amount_fen": amount},
                trigger=True,
            )
