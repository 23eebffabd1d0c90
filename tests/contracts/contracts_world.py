"""A small, explicit province for rule tests, built through the node's public API.

Every fact is registered by signed transactions exactly as an integrator
would (the regulator admits, admins register members and licences), and the
node's clock is under the test's control so windows and deadlines can be
placed a millisecond inside or outside their bounds.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
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
MIN = 60_000
HOUR = 60 * MIN
DAY = 24 * HOUR


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
    ) -> None:
        self.ok(
            "regulator",
            "institution.admit",
            {
                "org": org,
                "name": f"{org} (test)",
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
                    "approval": {"valid_from": "2020-01-01", "valid_until": "2030-12-31"},
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
