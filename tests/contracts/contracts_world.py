"""A small, explicit province for rule tests, built through the node's public API.

Every fact is registered by signed transactions exactly as an integrator
would (the regulator admits, admins register members and licences), and the
node's clock is under the test's control so windows and deadlines can be
placed a millisecond inside or outside their bounds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from medledger.contracts import formulary
from medledger.ledger import envelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.receipt import Receipt
from medledger.ledger.timefmt import format_ms, parse_ms
from medledger.node.bootstrap import init_ledger
from medledger.node.node import Node, NodeConfig

START = parse_ms("2026-03-02T08:00:00.000Z")
SEC = 1000
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR

#: an expected outcome: (receipt status, receipt codes)
Expect = tuple[str, tuple[str, ...]]
OK: Expect = ("ACCEPTED", ())


def hard(*codes: str) -> Expect:
    """A REJECTED outcome carrying exactly these codes."""
    return ("REJECTED", tuple(sorted(codes)))


def soft(*codes: str) -> Expect:
    """An ACCEPTED_WITH_ALERTS outcome carrying exactly these codes."""
    return ("ACCEPTED_WITH_ALERTS", tuple(sorted(codes)))


def outcome(receipt: Receipt) -> Expect:
    return (receipt.status, receipt.codes)


def day_of(ms: int) -> str:
    """The UTC calendar date of an instant, as the ledger writes dates."""
    return format_ms(ms)[:10]


def midnight(ms: int, days_ahead: int = 1) -> int:
    """UTC midnight ``days_ahead`` days after the day of ``ms``."""
    return (ms // DAY + days_ahead) * DAY


def shift_day(day: str, days: int) -> str:
    return (date.fromisoformat(day) + timedelta(days=days)).isoformat()


def months_before(ms: int, months: int) -> str:
    """The birth month that is exactly ``months`` calendar months before the month of ``ms``."""
    at = format_ms(ms)
    index = int(at[:4]) * 12 + int(at[5:7]) - 1 - months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def pseudonym(name: str) -> str:
    return hashlib.sha256(b"test-patient:" + name.encode()).hexdigest()


def doc(name: str) -> str:
    return hashlib.sha256(b"test-document:" + name.encode()).hexdigest()


@dataclass
class World:
    data: Path
    now: int = START
    keys: dict[str, SigningKey] = field(default_factory=dict)
    node: Node = field(init=False)
    seq: int = 0
    licences: int = 0
    names: int = 0
    #: member -> licence number, for practitioners registered through :meth:`doctor`
    licence_of: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ledger = init_ledger(self.data, clock=lambda: self.now)
        self.keys["regulator"] = ledger.regulator
        self.node = Node(NodeConfig(self.data, workers=0, max_wait_ms=0, clock=lambda: self.now))

    def close(self) -> None:
        self.node.close()

    # -- time -------------------------------------------------------------------

    def advance(self, ms: int) -> int:
        self.now += ms
        return self.now

    def name(self, prefix: str) -> str:
        """A fresh id (patients, consultations and organisations must not repeat on one ledger)."""
        self.names += 1
        return f"{prefix}{self.names}"

    def new_licence(self, prefix: str) -> str:
        """A licence number no one holds yet."""
        self.licences += 1
        return f"{prefix}-T{self.licences:04d}"

    def advance_to(self, ms: int) -> int:
        assert ms >= self.now, "the node's clock never goes back"
        self.now = ms
        return ms

    def t(self, offset_ms: int = 0) -> str:
        return format_ms(self.now + offset_ms)

    # -- submission -------------------------------------------------------------

    def send(self, who: str, type_: str, payload: dict[str, Any]) -> Receipt:
        self.seq += 1
        env = envelope.build(self.keys[who], type_, payload, nonce=f"n{self.seq:08d}", created_ms=self.now)
        (receipt,) = self.node.submit_sync([env.to_wire()])
        return receipt

    def ok(self, who: str, type_: str, payload: dict[str, Any]) -> Receipt:
        receipt = self.send(who, type_, payload)
        assert receipt.status == "ACCEPTED", (type_, receipt.codes, receipt.reason)
        return receipt

    def outcome_json(self, receipt: Receipt) -> dict[str, Any]:
        """The committed outcome of a transaction, as the store holds it (canonical JSON)."""
        record = self.node.store.tx(receipt.tx_id)
        assert record is not None, receipt.tx_id
        result: dict[str, Any] = json.loads(record.outcome)
        return result

    # -- the cast ---------------------------------------------------------------

    def register(self, by: str, member: str, org: str, role: str) -> SigningKey:
        key = SigningKey(hashlib.sha256(b"test-key:" + member.encode()).digest())
        self.ok(by, "member.register", {"member": member, "org": org, "role": role, "key": key.key_id})
        self.keys[member] = key
        return key

    def institution(
        self,
        org: str,
        kind: str = "internet-hospital",
        *,
        physical: bool = True,
        internet: bool = True,
        valid_until: str = "2030-12-31",
        approval_until: str = "2030-12-31",
    ) -> None:
        self.ok(
            "regulator",
            "institution.admit",
            {
                "org": org,
                "name": f"{org}-test",
                "kind": kind,
                "physical": physical,
                "licence": {"number": f"LIC-{org.upper()}", "valid_from": "2020-01-01", "valid_until": valid_until},
            },
        )
        if internet:
            self.ok(
                "regulator",
                "institution.internet-approval",
                {
                    "org": org,
                    "approval": {"valid_from": "2020-01-01", "valid_until": approval_until},
                },
            )
        self.register("regulator", f"{org}/admin", org, "admin")

    def practitioner(
        self,
        org: str,
        name: str,
        licence: str,
        *,
        profession: str = "doctor",
        first_practice: str = "2010-01-01",
        specialties: tuple[str, ...] = ("general-practice",),
        site: bool = True,
    ) -> str:
        member = f"{org}/{name}"
        self.register(f"{org}/admin", member, org, profession)
        self.ok(
            f"{org}/admin",
            "practitioner.register",
            {
                "member": member,
                "licence_no": licence,
                "profession": profession,
                "qualification": "physician" if profession == "doctor" else "pharmacist",
                "first_practice": first_practice,
                "specialties": list(specialties),
            },
        )
        if site:
            self.file_site(org, licence)
        return member

    def file_site(self, org: str, licence: str, until: str = "2030-12-31", filing: str = "primary") -> None:
        self.ok(
            f"{org}/admin",
            "practitioner.site",
            {
                "licence_no": licence,
                "filing": filing,
                "validity": {"valid_from": "2020-01-01", "valid_until": until},
            },
        )

    def patient(self, name: str, birth_month: str = "1980-05", by: str = "hosp/gw") -> str:
        p = pseudonym(name)
        self.ok(
            by, "patient.verify", {"patient": p, "birth_month": birth_month, "method": "resident-id", "at": self.t()}
        )
        return p

    def encounter(
        self, patient: str, name: str, diagnosis: str = "I10", date: str = "2026-02-20", by: str = "clinic/dr-offline"
    ) -> dict[str, str]:
        document = doc(name)
        self.ok(
            by,
            "encounter.record",
            {
                "encounter_id": f"enc-{name}",
                "patient": patient,
                "date": date,
                "diagnosis": diagnosis,
                "document": document,
            },
        )
        return {"document": document, "org": by.split("/", maxsplit=1)[0], "date": date, "diagnosis": diagnosis}

    def authenticate(self, member: str, offset_ms: int = -5 * MIN, by: str = "hosp/gw") -> None:
        self.ok(by, "doctor.authenticate", {"member": member, "method": "face", "at": self.t(offset_ms)})

    # -- clinical shortcuts (each returns the receipt of the step under test) ---

    def doctor(
        self,
        org: str = "hosp",
        *,
        first_practice: str = "2010-01-01",
        specialties: tuple[str, ...] = ("cardiology", "general-practice"),
        site: bool = True,
    ) -> str:
        """A fresh doctor with a fresh licence number; returns the member id."""
        licence = self.new_licence("DOC")
        member = self.practitioner(
            org, f"dr-t{self.licences}", licence, first_practice=first_practice, specialties=specialties, site=site
        )
        self.licence_of[member] = licence
        return member

    def visit(self, name: str, diagnosis: str = "I10", birth_month: str = "1980-05") -> tuple[str, dict[str, str]]:
        """A verified patient with an offline diagnosis at the clinic: (pseudonym, the citation of it)."""
        patient = self.patient(name, birth_month)
        return patient, self.encounter(patient, name, diagnosis)

    def consult(
        self,
        doctor: str,
        cid: str,
        patient: str,
        prior: dict[str, str] | None,
        *,
        diagnosis: str | None = None,
        specialty: str = "cardiology",
        started_ms: int | None = None,
        guardian: str | None = None,
        app: str | None = None,
    ) -> Receipt:
        payload: dict[str, Any] = {
            "consultation_id": cid,
            "patient": patient,
            "specialty": specialty,
            "diagnosis": diagnosis or (prior["diagnosis"] if prior else "I10"),
            "started_at": format_ms(self.now if started_ms is None else started_ms),
        }
        for name, value in (("prior", prior), ("guardian", guardian), ("app", app)):
            if value is not None:
                payload[name] = value
        return self.send(doctor, "consultation.open", payload)

    def follow_up(
        self,
        name: str,
        doctor: str = "hosp/dr-li",
        *,
        diagnosis: str = "I10",
        check: bool = True,
        **kwargs: Any,
    ) -> Visit:
        """Patient verified, offline diagnosis recorded, doctor authenticated 5 min ago, consultation opened
        now (``c-<name>``); asserts ACCEPTED unless ``check`` is false."""
        patient, prior = self.visit(name, diagnosis)
        self.authenticate(doctor, by=doctor.split("/", maxsplit=1)[0] + "/admin")
        started = self.now if kwargs.get("started_ms") is None else kwargs["started_ms"]
        receipt = self.consult(doctor, f"c-{name}", patient, prior, **kwargs)
        if check:
            assert outcome(receipt) == OK, (receipt.codes, receipt.reason)
        return Visit(f"c-{name}", patient, prior, started, receipt)

    def prescribe(
        self,
        rx_id: str,
        cid: str,
        drug: formulary.Drug,
        *,
        by: str = "hosp/dr-li",
        daily: int = 1,
        days: int = 5,
        quantity: int | None = None,
        issued_ms: int | None = None,
    ) -> Receipt:
        return self.send(
            by,
            "prescription.issue",
            {
                "rx_id": rx_id,
                "consultation_id": cid,
                "rxnorm": drug.rxnorm[0],
                "daily_units": daily,
                "days": days,
                "quantity": daily * days if quantity is None else quantity,
                "issued_at": format_ms(self.now if issued_ms is None else issued_ms),
            },
        )

    def issued(
        self,
        name: str,
        drug: formulary.Drug | None = None,
        *,
        doctor: str = "hosp/dr-li",
        daily: int = 1,
        days: int = 5,
        quantity: int | None = None,
        review: str | None = "approved",
    ) -> str:
        """A clean prescription ``rx-<name>`` (issued 2 min into its consultation), reviewed as asked."""
        drug = drug or drug_for("I10")
        visit = self.follow_up(name, doctor, diagnosis=drug.indications[0])
        self.advance(2 * MIN)
        rx_id = f"rx-{name}"
        receipt = self.prescribe(rx_id, visit.cid, drug, by=doctor, daily=daily, days=days, quantity=quantity)
        assert outcome(receipt) == OK, (receipt.codes, receipt.reason)
        if review is not None:
            assert outcome(self.review(rx_id, review)) == OK
        return rx_id

    def review(
        self, rx_id: str, decision: str = "approved", *, by: str = "pharm/ph-zhao", at_ms: int | None = None
    ) -> Receipt:
        return self.send(
            by,
            "prescription.review",
            {
                "rx_id": rx_id,
                "decision": decision,
                "reason": "appropriate" if decision == "approved" else "dose",
                "reviewed_at": format_ms(self.now if at_ms is None else at_ms),
            },
        )

    def dispense(
        self, dispense_id: str, rx_id: str, quantity: int, *, by: str = "pharm/ph-zhao", at_ms: int | None = None
    ) -> Receipt:
        return self.send(
            by,
            "prescription.dispense",
            {
                "dispense_id": dispense_id,
                "rx_id": rx_id,
                "quantity": quantity,
                "dispensed_at": format_ms(self.now if at_ms is None else at_ms),
            },
        )

    def handover(
        self, dispense_id: str, seq: int, to: str, recipient: str | None = None, *, by: str = "pharm/gw"
    ) -> Receipt:
        payload: dict[str, Any] = {"dispense_id": dispense_id, "seq": seq, "to": to, "at": self.t()}
        if recipient is not None:
            payload["recipient"] = recipient
        return self.send(by, "delivery.handover", payload)

    def claim(self, claim_id: str, dispense_id: str, amount_fen: int, *, by: str = "ins/claims") -> Receipt:
        return self.send(
            by, "claim.submit", {"claim_id": claim_id, "dispense_id": dispense_id, "amount_fen": amount_fen}
        )

    def publish(
        self, version: int, params: dict[str, int], digest: str | None = None, *, by: str = "regulator"
    ) -> Receipt:
        return self.send(
            by,
            "rulebook.publish",
            {"version": version, "params": params, "formulary": digest or formulary.default().digest},
        )


@dataclass(frozen=True)
class Visit:
    """An opened online consultation and what it cites."""

    cid: str
    patient: str
    prior: dict[str, str]
    started: int
    receipt: Receipt


def drug_for(diagnosis: str, klass: str = "ordinary") -> formulary.Drug:
    """A formulary drug of this class indicated for the diagnosis (or any of the class when none is)."""
    table = formulary.default().drugs
    for drug in table:
        if drug.drug_class == klass and diagnosis[:3] in drug.indications:
            return drug
    return next(d for d in table if d.drug_class == klass)


def standard(tmp: Path) -> World:
    """An Internet hospital with a gateway, doctors and an app; a physical clinic; a pharmacy; an insurer."""
    w = World(tmp)
    w.institution("hosp")
    w.register("hosp/admin", "hosp/gw", "hosp", "gateway")
    w.practitioner("hosp", "dr-li", "DOC-0001", specialties=("cardiology", "general-practice"))
    w.practitioner("hosp", "dr-wang", "DOC-0002", specialties=("cardiology",))
    w.institution("clinic", "clinic", internet=False)
    w.practitioner("clinic", "dr-offline", "DOC-0900", specialties=("general-practice",))
    w.institution("pharm", "pharmacy", internet=False)
    w.practitioner("pharm", "ph-zhao", "PHA-0001", profession="pharmacist", site=False)
    w.register("pharm/admin", "pharm/gw", "pharm", "gateway")
    w.institution("ins", "insurer", physical=False, internet=False)
    w.register("ins/admin", "ins/claims", "ins", "insurer")
    return w
