"""One valid payload per transaction type a TxBuilder builds: the baseline tests vary one field of.

Shared by the builder tests (tests/test_transactions.py) and the PHI canary
tests (tests/api/test_api_phi_canaries.py), so a new type gets a sample once.
"""

from __future__ import annotations

from typing import Any

P = "ab" * 32  # a pseudonym / digest
T = "2026-03-02T08:00:00.000Z"

#: one valid keyword set per type; a new type without one fails test_samples_cover_every_type
SAMPLES: dict[str, dict[str, Any]] = {
    "member.register": {"member": "hosp/x", "org": "hosp", "role": "doctor", "key": "A" * 43},
    "member.rotate": {"member": "hosp/x", "new_key": "B" * 43},
    "member.revoke": {"member": "hosp/x", "reason": "superseded"},
    "anchor.record": {"label": "export/1", "sha256": P},
    "rulebook.publish": {"version": 2, "params": {"rx_min_s": 60}, "formulary": P},
    "institution.admit": {
        "org": "hosp",
        "name": "hosp",
        "kind": "internet-hospital",
        "physical": True,
        "licence": {"number": "LIC-H", "valid_from": "2020-01-01", "valid_until": "2030-01-01"},
    },
    "institution.licence": {
        "org": "hosp",
        "licence": {"number": "LIC-H", "valid_from": "2020-01-01", "valid_until": "2030-01-01"},
    },
    "institution.internet-approval": {
        "org": "hosp",
        "approval": {"valid_from": "2020-01-01", "valid_until": "2030-01-01"},
    },
    "institution.suspend": {"org": "hosp", "reason": "inspection"},
    "institution.revoke": {"org": "hosp", "reason": "misconduct"},
    "institution.reinstate": {"org": "hosp"},
    "practitioner.suspend": {"licence_no": "DOC-1", "reason": "investigation"},
    "practitioner.revoke": {"licence_no": "DOC-1", "reason": "malpractice"},
    "practitioner.reinstate": {"licence_no": "DOC-1"},
    "app.review": {"org": "hosp", "app": "app", "decision": "approved"},
    "complaint.answer": {"complaint_id": "k-1", "resolution": "upheld"},
    "practitioner.register": {
        "member": "hosp/x",
        "licence_no": "DOC-1",
        "profession": "doctor",
        "qualification": "physician",
        "first_practice": "2010-01-01",
        "specialties": ["cardiology"],
    },
    "practitioner.site": {
        "licence_no": "DOC-1",
        "filing": "multi-site",
        "validity": {"valid_from": "2020-01-01", "valid_until": "2030-01-01"},
    },
    "app.register": {"app": "app", "name": "an-app"},
    "report.data-leak": {"incident_id": "l-1", "detected_at": T, "records_affected": 0, "category": "other"},
    "doctor.authenticate": {"member": "hosp/x", "method": "ca-certificate", "at": T},
    "patient.verify": {"patient": P, "birth_month": "1990-01", "method": "passport", "at": T},
    "encounter.record": {"encounter_id": "e-1", "patient": P, "date": "2026-01-01", "diagnosis": "I10", "document": P},
    "consultation.open": {
        "consultation_id": "c-1",
        "patient": P,
        "specialty": "cardiology",
        "diagnosis": "I10",
        "started_at": T,
    },
    "consultation.close": {"consultation_id": "c-1", "ended_at": T},
    "prescription.issue": {
        "rx_id": "rx-1",
        "consultation_id": "c-1",
        "rxnorm": "123",
        "daily_units": 1,
        "days": 5,
        "quantity": 5,
        "issued_at": T,
    },
    "prescription.review": {"rx_id": "rx-1", "decision": "rejected", "reason": "dose", "reviewed_at": T},
    "prescription.dispense": {"dispense_id": "d-1", "rx_id": "rx-1", "quantity": 5, "dispensed_at": T},
    "delivery.handover": {"dispense_id": "d-1", "seq": 1, "to": "pickup-point", "at": T},
    "claim.submit": {"claim_id": "cl-1", "dispense_id": "d-1", "amount_fen": 100},
    "complaint.file": {"complaint_id": "k-1", "about": "hosp", "category": "privacy", "filed_at": T},
    "report.adverse-event": {
        "report_id": "ae-1",
        "category": "fall",
        "seriousness": "non-serious",
        "occurred_at": T,
        "anonymous": True,
    },
}
