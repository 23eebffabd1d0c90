"""Filings: public complaints, adverse-event reports and data-leak reports, on time or late.

They are cases without a patient chain: one transaction each (and, for a
clean complaint, the regulator's answer well inside the deadline the rulebook
sets). Late variants state an event time further back than the deadline
allows, which is what LATE-REPORT reads; an injected complaint is simply
never answered, so the block after its deadline raises COMPLAINT-SLA.
"""

from __future__ import annotations

from typing import Any

from medledger.ledger.identity import REGULATOR
from medledger.ledger.timefmt import format_ms
from medledger.sim.cases import Planner
from medledger.sim.injection import DAY, HOUR, MINUTE, Variant
from medledger.sim.report import TxMeta

_COMPLAINT_CATEGORIES = ("misdiagnosis", "prescription", "privacy", "billing", "attitude", "delivery", "other")
_ADVERSE_CATEGORIES = ("adverse-drug-reaction", "medication-error", "delayed-treatment", "diagnostic-error", "other")
_LEAK_CATEGORIES = ("unauthorised-access", "misdelivery", "lost-device", "insider", "ransomware")


class FilingCase:
    """A public complaint, an adverse-event report or a data-leak report, clean or late."""

    def __init__(self, planner: Planner, at: int, kind: str, variant: Variant | None) -> None:
        self.p = planner
        self.at = at
        self.kind = kind
        self.variant = variant
        planner.cases += 1
        self.case = planner.cases
        if variant is not None:
            planner.injected_cases += 1

    def meta(self) -> TxMeta:
        v = self.variant
        if v is None:
            return TxMeta(self.case, False)
        return TxMeta(self.case, True, v.label, (v.rule,), v.note)

    def plan(self) -> bool:
        getattr(self, "_" + self.kind)()
        return True

    def _complaint(self) -> None:
        p, rng, at = self.p, self.p.rng, self.at
        targets = p.province.institutions
        complaint_id = p.new_id("q", self.case)
        payload: dict[str, Any] = {
            "complaint_id": complaint_id,
            "about": targets[rng.randrange(len(targets))].org,
            "category": rng.choice(_COMPLAINT_CATEGORIES),
            "filed_at": format_ms(at),
        }
        if p.patients and rng.random() < 0.5:
            payload["complainant"] = p.patients[rng.randrange(len(p.patients))].pseudonym
        p.emit(at, p.province.public_desk, "complaint.file", payload, self.meta())
        if self.variant is None:
            answered = at + rng.randint(20, 600) * MINUTE
            p.emit(
                answered,
                REGULATOR,
                "complaint.answer",
                {
                    "complaint_id": complaint_id,
                    "resolution": rng.choice(("upheld", "dismissed", "referred", "mediated")),
                },
                TxMeta(self.case, False),
            )

    def _adverse(self) -> None:
        p, rng, at = self.p, self.p.rng, self.at
        deadline = p.params["adverse_deadline_d"] * DAY
        hospital = p.province.internet[rng.randrange(len(p.province.internet))]
        payload: dict[str, Any] = {
            "report_id": p.new_id("ae", self.case),
            "category": rng.choice(_ADVERSE_CATEGORIES),
            "seriousness": rng.choices(("non-serious", "serious", "death"), weights=(85, 14, 1))[0],
        }
        if rng.random() < 0.5:
            drugs = p.medicine.ordinary
            payload["rxnorm"] = drugs[rng.randrange(len(drugs))].rxnorm[0]
        anonymous = self.variant is None and rng.random() < 0.5
        if anonymous:
            signer = p.province.public_desk
            occurred = at - rng.randint(HOUR, 20 * DAY)
            if rng.random() < 0.5:
                payload["org"] = hospital.org
        else:
            staff = [d.member for d in hospital.doctors if d.person.kind == "clean"]
            staff += [s.member for s in hospital.pharmacists]
            signer = staff[rng.randrange(len(staff))]
            payload["org"] = hospital.org
            if self.variant is None:
                occurred = at - rng.randint(HOUR, deadline - DAY)
            else:
                occurred = at - deadline - rng.randint(2 * HOUR, 5 * DAY)
        payload["occurred_at"] = format_ms(occurred)
        payload["anonymous"] = anonymous
        p.emit(at, signer, "report.adverse-event", payload, self.meta())

    def _leak(self) -> None:
        p, rng, at = self.p, self.p.rng, self.at
        deadline = p.params["leak_deadline_h"] * HOUR
        places = p.province.internet + p.province.pharmacies
        place = places[rng.randrange(len(places))]
        if self.variant is None:
            detected = at - rng.randint(10 * MINUTE, max(20 * MINUTE, deadline - 4 * HOUR))
        else:
            detected = at - deadline - rng.randint(HOUR, 48 * HOUR)
        p.emit(
            at,
            place.admin.member,
            "report.data-leak",
            {
                "incident_id": p.new_id("dl", self.case),
                "detected_at": format_ms(detected),
                "records_affected": rng.randint(1, 5000),
                "category": rng.choice(_LEAK_CATEGORIES),
            },
            self.meta(),
        )
