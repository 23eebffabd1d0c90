"""Every mapped FHIR type written through HTTP, each one's transaction committed on the ledger.

The story runs as an integrator would run it: the regulator admits an
institution (Organization), the hospital's admin registers a doctor
(Practitioner, PractitionerRole), the gateway verifies a patient, the clinic
records offline care, the gateway sends the consultation with the doctor's
signed prescription, the pharmacy dispenses, the insurer claims.
"""

from __future__ import annotations

from typing import Any

from fhir_support import (
    MIN,
    FhirLedger,
    bundle,
    consultation,
    drug_for,
    entry,
    fhir,
    iso,
    medication_request,
    offline_encounter,
    prescription_bundle,
    sign_resource,
    tx_id_of,
)

from medledger.api.fhir import conventions as cv
from medledger.contracts import formulary
from medledger.ledger.keys import SigningKey

__all__ = ["fhir"]


def _accepted(f: FhirLedger, resource: dict[str, Any], expected_type: str) -> dict[str, Any]:
    committed = f.committed(tx_id_of(resource))
    assert committed["envelope"]["type"] == expected_type, committed
    assert committed["outcome"]["status"] in ("ACCEPTED", "ACCEPTED_WITH_ALERTS"), committed["outcome"]
    return committed


def test_organization_is_admitted_by_the_regulator(fhir: FhirLedger) -> None:
    org = {
        "resourceType": "Organization",
        "identifier": [
            {"system": cv.SID_ORG, "value": "westgate"},
            {"system": cv.SID_LICENCE, "value": "LIC-WESTGATE", "period": {"start": "2024-01-01", "end": "2030-12-31"}},
        ],
        "type": [{"coding": [{"system": cv.CS_INSTITUTION_KIND, "code": "internet-hospital"}]}],
        "name": "westgate-internet-hospital",
    }
    r = fhir.post("/fhir/Organization", org, who="regulator")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"] == "westgate"
    assert r.headers["location"].endswith("/fhir/Organization/westgate/_history/1")
    assert r.headers["etag"] == 'W/"1"'
    payload = _accepted(fhir, body, "institution.admit")["envelope"]["payload"]
    assert payload["kind"] == "internet-hospital" and payload["physical"] is True
    assert payload["licence"] == {"number": "LIC-WESTGATE", "valid_from": "2024-01-01", "valid_until": "2030-12-31"}


def test_an_organization_name_written_as_a_name_is_refused_naming_the_field(fhir: FhirLedger) -> None:
    """Issue 12: names on the ledger are lowercase words joined by -, so a person's name cannot pass."""
    before = fhir.snapshot()
    org = {
        "resourceType": "Organization",
        "identifier": [
            {"system": cv.SID_ORG, "value": "zhang-clinic"},
            {"system": cv.SID_LICENCE, "value": "LIC-ZHANG", "period": {"start": "2024-01-01", "end": "2030-12-31"}},
        ],
        "type": [{"coding": [{"system": cv.CS_INSTITUTION_KIND, "code": "clinic"}]}],
        "name": "Zhang San 13899990000",
    }
    r = fhir.post("/fhir/Organization", org, who="regulator")
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Organization.name"], issue
    assert "capital letter" in issue["diagnostics"], issue
    assert fhir.snapshot() == before


def test_organization_from_a_hospital_is_forbidden(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    org = {
        "resourceType": "Organization",
        "identifier": [{"system": cv.SID_ORG, "value": "rogue"}],
        "name": "rogue",
    }
    r = fhir.post("/fhir/Organization", org, who="hosp/gw")
    assert r.status_code == 403, r.text
    issue = r.json()["issue"][0]
    assert "institution.admit" in issue["diagnostics"] and "regulator" in issue["diagnostics"]
    assert fhir.snapshot() == before


def test_practitioner_and_role_are_registered_by_the_admin(fhir: FhirLedger) -> None:
    member = "hosp/dr-zhou"
    fhir.w.register("hosp/admin", member, "hosp", "doctor")
    prac = {
        "resourceType": "Practitioner",
        "identifier": [
            {"system": cv.SID_LICENCE, "value": "DOC-7701"},
            {"system": cv.SID_MEMBER, "value": member},
        ],
        "name": [{"text": "Zhou Wei"}],
        "qualification": [
            {
                "code": {"coding": [{"system": cv.CS_QUALIFICATION, "code": "physician"}]},
                "period": {"start": "2012-07-01"},
            },
            {"code": {"coding": [{"system": cv.CS_SPECIALTY, "code": "cardiology"}]}},
        ],
    }
    r = fhir.post("/fhir/Practitioner", prac, who="hosp/admin")
    assert r.status_code == 201, r.text
    payload = _accepted(fhir, r.json(), "practitioner.register")["envelope"]["payload"]
    assert payload == {
        "member": member,
        "licence_no": "DOC-7701",
        "profession": "doctor",
        "qualification": "physician",
        "first_practice": "2012-07-01",
        "specialties": ["cardiology"],
    }
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": "Practitioner/DOC-7701"},
        "organization": {"reference": "Organization/hosp"},
        "code": [{"coding": [{"system": cv.CS_FILING, "code": "multi-site"}]}],
        "period": {"start": "2025-01-01", "end": "2027-12-31"},
    }
    r = fhir.post("/fhir/PractitionerRole", role, who="hosp/admin")
    assert r.status_code == 201, r.text
    assert r.json()["id"] == "DOC-7701.hosp"
    _accepted(fhir, r.json(), "practitioner.site")


def test_synthea_style_practitioner_with_only_an_npi_is_refused_precisely(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    prac = {
        "resourceType": "Practitioner",
        "identifier": [{"system": "http://hl7.org/fhir/sid/us-npi", "value": "9999912345"}],
        "name": [{"family": "Smith", "prefix": ["Dr."]}],
    }
    r = fhir.post("/fhir/Practitioner", prac, who="hosp/admin")
    assert r.status_code == 422, r.text
    issues = r.json()["issue"]
    text = " ".join(i["diagnostics"] for i in issues)
    assert cv.SID_LICENCE in text and cv.SID_MEMBER in text and cv.CS_QUALIFICATION in text
    assert {e for i in issues for e in i["expression"]} == {"Practitioner.identifier", "Practitioner.qualification"}
    assert fhir.snapshot() == before


def test_patient_is_pseudonymised_and_idempotent(fhir: FhirLedger) -> None:
    from fhir_support import patient

    r = fhir.post("/fhir/Patient", patient("110101198005170011"))
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"resourceType", "id", "extension", "meta"}
    assert body["extension"] == [{"url": cv.EXT_BIRTH_MONTH, "valueString": "1980-05"}]
    assert cv.HEX64.fullmatch(body["id"])
    payload = _accepted(fhir, body, "patient.verify")["envelope"]["payload"]
    assert payload["patient"] == body["id"] and payload["method"] == "resident-id"
    before = fhir.snapshot()
    again = fhir.post("/fhir/Patient", patient("110101198005170011", name="Other Spelling"), who="hosp/admin")
    assert again.status_code == 200, again.text
    assert again.json()["id"] == body["id"]
    assert tx_id_of(again.json()) == tx_id_of(body)
    assert fhir.snapshot() == before


def test_patient_with_only_a_medical_record_number_is_refused(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    r = fhir.post(
        "/fhir/Patient",
        {
            "resourceType": "Patient",
            "identifier": [{"type": {"coding": [{"code": "MR"}]}, "value": "M1"}],
            "birthDate": "1990-01-01",
        },
    )
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert "national identifier" in issue["diagnostics"] and issue["expression"] == ["Patient.identifier"]
    assert fhir.snapshot() == before


def test_consultation_prescription_and_provenance_are_accepted_with_the_prescriber(fhir: FhirLedger) -> None:
    pseudonym, prior = fhir.ready_visit("110101198001010022")
    body, cid, rx_id = prescription_bundle(fhir, pseudonym, prior)
    r = fhir.post("/fhir", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in out["entry"]]
    assert statuses == ["201 Created"] * 3, out
    enc, mr, prov = out["entry"]
    assert enc["response"]["location"] == f"Encounter/{cid}/_history/1"
    assert mr["resource"]["id"] == rx_id and prov["resource"]["id"] == f"rx.{rx_id}"
    issued = fhir.committed(tx_id_of(mr["resource"]))
    assert issued["envelope"]["type"] == "prescription.issue"
    assert issued["outcome"]["status"] == "ACCEPTED", issued["outcome"]
    prescriber = issued["envelope"]["payload"]["prescriber"]
    assert prescriber["member"] == "hosp/dr-li"
    assert prescriber["resource_sha256"] == cv.resource_digest(body["entry"][1]["resource"]).hex()
    opened = fhir.committed(tx_id_of(enc["resource"]))
    assert opened["envelope"]["payload"]["doctor"] == "hosp/dr-li"
    assert opened["envelope"]["payload"]["prior"]["document"] == prior
    assert tx_id_of(prov["resource"]) == tx_id_of(mr["resource"])


def test_without_provenance_the_prescription_is_rejected_as_evidence(fhir: FhirLedger) -> None:
    pseudonym, prior = fhir.ready_visit("110101198001010033")
    body, _, _ = prescription_bundle(fhir, pseudonym, prior, signed=False)
    r = fhir.post("/fhir", body)
    assert r.status_code == 200, r.text
    enc, mr = r.json()["entry"]
    assert enc["response"]["status"] == "201 Created"
    assert mr["response"]["status"].startswith("422")
    issue = mr["response"]["outcome"]["issue"][0]
    assert issue["severity"] == "error" and issue["code"] == "business-rule"
    assert "RX-NO-AI" in [c["code"] for c in issue["details"]["coding"]]
    assert "evidence" in issue["diagnostics"]
    tx = mr["response"]["extension"][0]["valueString"]
    assert fhir.committed(tx)["outcome"]["status"] == "REJECTED"


def test_a_flipped_signature_bit_refuses_the_whole_bundle(fhir: FhirLedger) -> None:
    pseudonym, prior = fhir.ready_visit("110101198001010044")
    body, _, _ = prescription_bundle(fhir, pseudonym, prior, flip=True)
    before = fhir.snapshot()
    r = fhir.post("/fhir", body)
    assert r.status_code == 422, r.text
    issue = r.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[2].resource.signature[0].data"]
    assert "does not verify" in issue["diagnostics"]
    assert fhir.snapshot() == before


def test_a_signature_by_another_key_is_refused(fhir: FhirLedger) -> None:
    pseudonym, prior = fhir.ready_visit("110101198001010055")
    body, _, _ = prescription_bundle(fhir, pseudonym, prior)
    mr = body["entry"][1]["resource"]
    body["entry"][2]["resource"]["signature"][0]["data"] = sign_resource(SigningKey.generate(), mr)
    before = fhir.snapshot()
    assert fhir.post("/fhir", body).status_code == 422
    assert fhir.snapshot() == before


def test_a_prescription_changed_after_signing_is_refused(fhir: FhirLedger) -> None:
    pseudonym, prior = fhir.ready_visit("110101198001010066")
    body, _, _ = prescription_bundle(fhir, pseudonym, prior)
    body["entry"][1]["resource"]["dispenseRequest"]["quantity"]["value"] = 50
    before = fhir.snapshot()
    r = fhir.post("/fhir", body)
    assert r.status_code == 422, r.text
    assert fhir.snapshot() == before


def test_finished_consultation_is_closed_and_single_create_works(fhir: FhirLedger) -> None:
    pseudonym, prior = fhir.ready_visit("110101198001010077")
    cid = fhir.name("c")
    enc = consultation(cid, pseudonym, "DOC-0001", prior, fhir.w.now - 15 * MIN)
    enc["status"] = "finished"
    enc["period"]["end"] = iso(fhir.w.now - 10 * MIN)
    r = fhir.post("/fhir/Encounter", enc, prefer="return=minimal")
    assert r.status_code == 201 and r.content == b"", r.text
    assert r.headers["location"].endswith(f"/fhir/Encounter/{cid}/_history/1")
    trace = fhir.http.get("/v1/alerts", headers=fhir.headers("regulator", None))
    assert trace.status_code == 200
    closed = fhir.w.node.store.get_state("consult/" + cid)
    assert closed is not None and closed["ended"] is not None
    # Prefer: return=minimal gives no body; OperationOutcome gives an informational outcome
    rx = medication_request(
        fhir.name("rx"), f"Encounter/{cid}", pseudonym, drug_for("I10").rxnorm[0], fhir.w.now - 5 * MIN
    )
    minimal = fhir.post("/fhir/MedicationRequest", rx)
    assert minimal.status_code == 422, minimal.text  # gateway-signed, no doctor signature: RX-NO-AI
    codes = [c["code"] for c in minimal.json()["issue"][0]["details"]["coding"]]
    assert "RX-NO-AI" in codes


def test_dispense_claim_and_adverse_event(fhir: FhirLedger) -> None:
    pseudonym, prior = fhir.ready_visit("110101198001010088")
    body, _, rx_id = prescription_bundle(fhir, pseudonym, prior)
    r = fhir.post("/fhir", body)
    assert [e["response"]["status"] for e in r.json()["entry"]] == ["201 Created"] * 3, r.text
    assert fhir.w.review(rx_id).status == "ACCEPTED"
    dispense_id = fhir.name("d")
    dispense = {
        "resourceType": "MedicationDispense",
        "status": "completed",
        "identifier": [{"system": cv.SID_RECORD, "value": dispense_id}],
        "medicationCodeableConcept": {"coding": [{"system": cv.RXNORM, "code": drug_for("I10").rxnorm[0]}]},
        "subject": {"reference": f"Patient/{pseudonym}"},
        "authorizingPrescription": [{"reference": f"MedicationRequest/{rx_id}"}],
        "quantity": {"value": 5},
        "whenHandedOver": fhir.w.t().replace("Z", "+00:00"),
    }
    r = fhir.post("/fhir/MedicationDispense", dispense, who="pharm/gw")
    assert r.status_code == 201, r.text
    _accepted(fhir, r.json(), "prescription.dispense")
    drug = drug_for("I10")
    price = formulary.default().by_rxnorm(drug.rxnorm[0])
    assert price is not None
    fen = price.unit_price_fen * 5
    claim = {
        "resourceType": "Claim",
        "status": "active",
        "use": "claim",
        "identifier": [{"system": cv.SID_RECORD, "value": fhir.name("cl")}],
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "pharmacy"}]},
        "patient": {"reference": f"Patient/{pseudonym}"},
        "created": "2026-03-02",
        "provider": {"reference": "Organization/pharm"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "basic medical insurance"}}],
        "supportingInfo": [
            {
                "sequence": 1,
                "category": {"coding": [{"code": "info"}]},
                "valueReference": {"reference": f"MedicationDispense/{dispense_id}"},
            }
        ],
        "total": {"value": fen / 100, "currency": "CNY"},
    }
    r = fhir.post("/fhir/Claim", claim, who="ins/claims")
    assert r.status_code == 201, r.text
    assert _accepted(fhir, r.json(), "claim.submit")["envelope"]["payload"]["amount_fen"] == fen
    claim["identifier"][0]["value"] = fhir.name("cl")
    claim["total"] = {"value": 1.234, "currency": "CNY"}
    r = fhir.post("/fhir/Claim", claim, who="ins/claims")
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["Claim.total.value"], r.text
    event = {
        "resourceType": "AdverseEvent",
        "identifier": {"system": cv.SID_RECORD, "value": fhir.name("ae")},
        "actuality": "actual",
        "category": [{"coding": [{"system": cv.CS_ADVERSE_CATEGORY, "code": "adverse-drug-reaction"}]}],
        "subject": {"reference": f"Patient/{pseudonym}"},
        "date": fhir.w.t(-MIN).replace("Z", "+00:00"),
        "seriousness": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness", "code": "Non-serious"}
            ]
        },
        "suspectEntity": [{"instance": {"reference": f"MedicationRequest/{rx_id}"}}],
    }
    r = fhir.post("/fhir/AdverseEvent", event)
    assert r.status_code == 201, r.text
    payload = _accepted(fhir, r.json(), "report.adverse-event")["envelope"]["payload"]
    assert payload["rxnorm"] == drug.rxnorm[0] and payload["seriousness"] == "non-serious"


def test_consent_and_audit_event_are_anchored_by_digest(fhir: FhirLedger) -> None:
    pseudonym = fhir.patient_id("110101198001010099")
    consent = {
        "resourceType": "Consent",
        "status": "active",
        "scope": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
        "patient": {"reference": f"Patient/{pseudonym}"},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
    }
    r = fhir.post("/fhir/Consent", consent)
    assert r.status_code == 201, r.text
    logical = r.json()["id"]
    assert logical.isalpha()
    payload = _accepted(fhir, r.json(), "anchor.record")["envelope"]["payload"]
    assert payload == {"label": f"fhir/consent/{logical}", "sha256": cv.resource_digest(consent).hex()}
    audit = {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
        "recorded": "2026-03-02T08:00:00+08:00",
        "agent": [{"requestor": True, "who": {"reference": "Practitioner/DOC-0001"}}],
        "source": {"observer": {"reference": "Organization/hosp"}},
        "entity": [{"what": {"reference": f"Patient/{pseudonym}"}}],
    }
    r = fhir.post("/fhir/AuditEvent", audit)
    assert r.status_code == 201, r.text
    _accepted(fhir, r.json(), "anchor.record")
    audit["entity"] = [{"what": {"reference": "Patient/local-123"}}]
    before = fhir.snapshot()
    r = fhir.post("/fhir/AuditEvent", audit)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["AuditEvent.entity[0].what.reference"]
    assert fhir.snapshot() == before


def test_condition_alone_and_unsigned_provenance_are_explained(fhir: FhirLedger) -> None:
    before = fhir.snapshot()
    cond = {
        "resourceType": "Condition",
        "subject": {"reference": "Patient/" + "a" * 64},
        "code": {"coding": [{"system": cv.ICD10, "code": "I10"}]},
    }
    r = fhir.post("/fhir/Condition", cond)
    assert r.status_code == 422 and "diagnosis of an Encounter" in r.json()["issue"][0]["diagnostics"]
    r = fhir.post("/fhir", bundle(entry(cond, "urn:uuid:11111111-1111-4111-8111-111111111111")))
    assert r.status_code == 422, r.text
    assert fhir.snapshot() == before


def test_an_offline_encounter_known_by_its_uuid_gets_a_record_id_without_digit_runs(fhir: FhirLedger) -> None:
    """Issue 12: record ids hold at most 6 digits together, so a UUID's digits are spelt as letters."""
    pseudonym, _ = fhir.ready_visit("110101198001010088")
    enc = offline_encounter("unused", pseudonym)
    del enc["identifier"]
    uuid = "550E8400-E29B-41D4-A716-446655440000"  # 12 digits together in its last group
    r = fhir.post("/fhir", bundle(entry(enc, f"urn:uuid:{uuid}")), who="clinic/dr-offline")
    assert r.status_code == 200, r.text
    tx = r.json()["entry"][0]["response"]["extension"][0]["valueString"]
    payload = fhir.committed(tx)["envelope"]["payload"]
    assert payload["encounter_id"] == "u-llgeokgg-eipb-khdk-anhm-kkmmllkkgggg"
