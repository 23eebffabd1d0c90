"""A province built, and a prescription chain run, with nothing but :class:`medledger.transactions.TxBuilder`.

Shared by the builder tests and the offline-proof CLI tests: the node is the
real embedded one of :class:`contracts_world.World` (its clock under the
test's control), and every envelope comes from a typed builder method, so a
builder that drifts from its contract shows up here as a refusal or a
``REJECTED`` outcome.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "contracts"))

from contracts_world import MIN, World, doc, drug_for, pseudonym

from medledger.contracts import formulary
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.keys import SigningKey
from medledger.ledger.receipt import Receipt
from medledger.ledger.timefmt import format_ms
from medledger.transactions import Licence, PriorDiagnosis, TxBuilder

CLINIC_DOCTOR_LICENCE = "DOC-0900"


def key_for(member: str) -> SigningKey:
    return SigningKey(hashlib.sha256(b"tx-province:" + member.encode()).digest())


@dataclass
class Province:
    w: World
    signers: dict[str, TxBuilder] = field(default_factory=dict)
    #: (type, envelope, receipt) of everything submitted, in order
    log: list[tuple[str, SignedEnvelope, Receipt]] = field(default_factory=list)

    def signer(self, member: str) -> TxBuilder:
        return self.signers[member]

    def now(self) -> datetime:
        """The node's clock as an aware datetime (the builders take either this or the ledger string)."""
        return datetime.fromtimestamp(self.w.now / 1000, UTC)

    def submit(self, env: SignedEnvelope) -> Receipt:
        (receipt,) = self.w.node.submit_sync([env.to_wire()])
        self.log.append((env.type, env, receipt))
        return receipt

    def ok(self, env: SignedEnvelope) -> Receipt:
        receipt = self.submit(env)
        assert (receipt.status, receipt.codes) == ("ACCEPTED", ()), (env.type, receipt.codes, receipt.reason)
        return receipt

    def new_member(self, by: str, member: str, org: str, role: str) -> TxBuilder:
        signer = TxBuilder(key_for(member), clock=lambda: self.w.now)
        self.ok(self.signer(by).member_register(member=member, org=org, role=role, key=signer.key_id))
        self.signers[member] = signer
        return signer

    def institution(self, org: str, kind: str, *, physical: bool = True, internet: bool = False) -> TxBuilder:
        reg = self.signer("regulator")
        self.ok(
            reg.institution_admit(
                org=org,
                name=f"{org}-test",
                kind=kind,  # type: ignore[arg-type]
                physical=physical,
                licence={"number": f"LIC-{org.upper()}", "valid_from": date(2020, 1, 1), "valid_until": "2030-12-31"},
            )
        )
        if internet:
            self.ok(
                reg.institution_internet_approval(
                    org=org, approval={"valid_from": "2020-01-01", "valid_until": "2030-12-31"}
                )
            )
        return self.new_member("regulator", f"{org}/admin", org, "admin")

    def practitioner(self, org: str, name: str, licence: str, profession: str, *, site: bool = True) -> TxBuilder:
        member = f"{org}/{name}"
        signer = self.new_member(f"{org}/admin", member, org, profession)
        admin = self.signer(f"{org}/admin")
        self.ok(
            admin.practitioner_register(
                member=member,
                licence_no=licence,
                profession=profession,  # type: ignore[arg-type]
                qualification="physician" if profession == "doctor" else "pharmacist",
                first_practice=date(2010, 1, 1),
                specialties=("cardiology", "general-practice") if profession == "doctor" else (),
            )
        )
        if site:
            self.ok(
                admin.practitioner_site(
                    licence_no=licence,
                    filing="primary",
                    validity={"valid_from": "2020-01-01", "valid_until": "2030-12-31"},
                )
            )
        return signer


def build_province(data: Path) -> Province:
    """An Internet hospital (gateway, doctor, approved app), a clinic, a pharmacy and an insurer."""
    w = World(data)
    p = Province(w)
    p.signers["regulator"] = TxBuilder(w.keys["regulator"], clock=lambda: w.now)
    reg = p.signer("regulator")
    p.ok(reg.rulebook_publish(version=1, params={"rx_min_s": 60}, formulary=formulary.default().digest))
    p.institution("hosp", "internet-hospital", internet=True)
    p.ok(
        reg.institution_licence(
            org="hosp", licence=Licence(number="LIC-HOSP-2", valid_from="2024-01-01", valid_until="2031-12-31")
        )
    )
    p.new_member("hosp/admin", "hosp/gw", "hosp", "gateway")
    p.practitioner("hosp", "dr-li", "DOC-0001", "doctor")
    p.ok(p.signer("hosp/admin").app_register(app="hosp-app", name="hosp-app-test"))
    p.ok(reg.app_review(org="hosp", app="hosp-app", decision="approved"))
    p.institution("clinic", "clinic")
    p.practitioner("clinic", "dr-offline", CLINIC_DOCTOR_LICENCE, "doctor")
    p.institution("pharm", "pharmacy")
    p.practitioner("pharm", "ph-zhao", "PHA-0001", "pharmacist", site=False)
    p.new_member("pharm/admin", "pharm/gw", "pharm", "gateway")
    p.institution("ins", "insurer", physical=False)
    p.new_member("ins/admin", "ins/claims", "ins", "insurer")
    return p


def prescription_chain(p: Province, name: str) -> dict[str, Receipt]:
    """Verify, diagnose offline, authenticate, consult, prescribe, review, dispense, deliver, claim, close.

    Returns each step's receipt by the envelope type; every one must be ACCEPTED.
    """
    w = p.w
    drug = drug_for("I10")
    patient = pseudonym(name)
    document = doc(name)
    done: dict[str, Receipt] = {}

    def step(env: SignedEnvelope) -> None:
        done[env.type] = p.ok(env)

    step(p.signer("hosp/gw").patient_verify(patient=patient, birth_month="1980-05", method="resident-id", at=p.now()))
    step(
        p.signer("clinic/dr-offline").encounter_record(
            encounter_id=f"enc-{name}", patient=patient, date="2026-02-20", diagnosis="I10", document=document
        )
    )
    step(p.signer("hosp/admin").doctor_authenticate(member="hosp/dr-li", method="face", at=format_ms(w.now - 5 * MIN)))
    doctor = p.signer("hosp/dr-li")
    step(
        doctor.consultation_open(
            consultation_id=f"c-{name}",
            patient=patient,
            specialty="cardiology",
            diagnosis="I10",
            prior=PriorDiagnosis(document=document, org="clinic", date="2026-02-20", diagnosis="I10"),
            app="hosp-app",
            started_at=p.now(),
        )
    )
    w.advance(2 * MIN)
    rx_id = f"rx-{name}"
    step(
        doctor.prescription_issue(
            rx_id=rx_id,
            consultation_id=f"c-{name}",
            rxnorm=drug.rxnorm[0],
            daily_units=1,
            days=5,
            quantity=5,
            issued_at=p.now(),
        )
    )
    step(doctor.consultation_close(consultation_id=f"c-{name}", ended_at=p.now()))
    pharmacist = p.signer("pharm/ph-zhao")
    step(pharmacist.prescription_review(rx_id=rx_id, decision="approved", reason="appropriate", reviewed_at=p.now()))
    dispense_id = f"d-{name}"
    step(pharmacist.prescription_dispense(dispense_id=dispense_id, rx_id=rx_id, quantity=5, dispensed_at=p.now()))
    gateway = p.signer("pharm/gw")
    step(gateway.delivery_handover(dispense_id=dispense_id, seq=1, to="courier", at=p.now()))
    done["delivery.handover/courier"] = done["delivery.handover"]
    step(gateway.delivery_handover(dispense_id=dispense_id, seq=2, to="patient", recipient=patient, at=p.now()))
    step(
        p.signer("ins/claims").claim_submit(
            claim_id=f"cl-{name}", dispense_id=dispense_id, amount_fen=5 * drug.unit_price_fen
        )
    )
    return done


def every_other_type(p: Province) -> None:
    """One accepted transaction of each type the province and the chain do not submit, in an order the
    rules accept (run after :func:`prescription_chain`)."""
    w = p.w
    reg, admin, doctor = p.signer("regulator"), p.signer("hosp/admin"), p.signer("hosp/dr-li")
    p.ok(reg.anchor_record(label="export/2026-03", sha256=hashlib.sha256(b"export").hexdigest()))
    p.ok(p.signer("hosp/gw").complaint_file(complaint_id="k-1", about="hosp", category="billing", filed_at=p.now()))
    p.ok(reg.complaint_answer(complaint_id="k-1", resolution="mediated"))
    p.ok(
        doctor.report_adverse_event(
            report_id="ae-1",
            category="adverse-drug-reaction",
            seriousness="serious",
            org="hosp",
            occurred_at=w.t(-3_600_000),
            anonymous=False,
        )
    )
    p.ok(
        admin.report_data_leak(
            incident_id="leak-1", detected_at=w.t(-3_600_000), records_affected=3, category="insider"
        )
    )
    p.ok(reg.practitioner_suspend(licence_no=CLINIC_DOCTOR_LICENCE, reason="investigation"))
    p.ok(reg.practitioner_reinstate(licence_no=CLINIC_DOCTOR_LICENCE))
    p.ok(reg.practitioner_revoke(licence_no=CLINIC_DOCTOR_LICENCE, reason="misconduct"))
    p.ok(reg.institution_suspend(org="clinic", reason="inspection"))
    p.ok(reg.institution_reinstate(org="clinic"))
    p.ok(reg.institution_revoke(org="clinic", reason="voluntary"))
    new_key = key_for("hosp/dr-li#2")
    p.ok(doctor.member_rotate(member="hosp/dr-li", new_key=new_key.key_id))
    p.ok(admin.member_revoke(member="hosp/gw", reason="left-organisation"))
