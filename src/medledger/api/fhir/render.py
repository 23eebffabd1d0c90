"""Committed transactions rendered as FHIR R4 resources: the read side's one source of truth.

The read projection (:mod:`medledger.api.fhir.projection`) calls :func:`render`
for every ACCEPTED / ACCEPTED_WITH_ALERTS transaction, whichever path wrote it
(the native API, the simulator or the FHIR facade), so a resource the facade
shows is always one the ledger holds. Renderers are pure functions of the
transaction's payload, its signer, the block, and facts of world state that
never change once written (a key's member, a member's institution, a
consultation's patient, a licence's first practice...): replaying the same
ledger therefore renders byte-identical rows, which is what makes
``fhir.sqlite`` disposable and rebuildable.

Nothing about a person reaches a resource beyond what the ledger holds: a
64-hex pseudonym, a birth month, codes and times. Renderers emit only fixed
strings and ledger values, never text from outside the ledger.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medledger.api.fhir import conventions as cv
from medledger.contracts import formulary
from medledger.ledger.canonical import b64d
from medledger.ledger.timefmt import format_ms
from medledger.ledger.txtypes import Signer

#: the resource types the projection can hold (and the CapabilityStatement lists)
RESOURCE_TYPES = (
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Patient",
    "Encounter",
    "Condition",
    "MedicationRequest",
    "MedicationDispense",
    "Claim",
    "Consent",
    "AuditEvent",
    "Provenance",
    "AdverseEvent",
)

ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
UCUM = "http://unitsofmeasure.org"
#: what a reference carries when the ledger has no patient to point at (anonymous reports)
NO_PATIENT = "not recorded: medledger reports carry no patient"

StateGet = Callable[[str], Any]


@dataclass(frozen=True)
class Tx:
    """One committed transaction as a renderer sees it."""

    tx_id: str
    type: str
    payload: dict[str, Any]
    signer: Signer
    block_ms: int
    status: str
    codes: tuple[str, ...] = ()


@dataclass
class Row:
    """One resource to store: ``body`` is the resource without resourceType, id and meta.

    ``org`` is the institution that may read the row from now on (besides every institution that could
    already: visibility only grows); None adds nobody (a regulator's decision about a licence).
    ``replace`` False keeps an existing resource untouched apart from that share (a patient verified
    again, by the same or another institution, is still the same Patient).
    """

    type: str
    id: str
    body: dict[str, Any]
    org: str | None
    patient: str | None = None
    practitioner: str | None = None
    replace: bool = True


@dataclass
class Context:
    """What renderers may consult: committed state (immutable facts) and the projection's current rows."""

    state: StateGet
    previous: Callable[[str, str], dict[str, Any] | None]
    rows: list[Row] = field(default_factory=list)

    def revisable(self, resource_type: str, logical_id: str) -> dict[str, Any] | None:
        """The current version's content without the fields the server assigns, to build the next
        version from; None if the resource was never rendered (nothing to revise)."""
        before = self.previous(resource_type, logical_id)
        if before is None:
            return None
        return {k: v for k, v in before.items() if k not in cv.SERVER_FIELDS}


def ref(resource_type: str, logical_id: str) -> dict[str, str]:
    return {"reference": f"{resource_type}/{logical_id}"}


def record_identifier(value: str) -> dict[str, str]:
    return {"system": cv.SID_RECORD, "value": value}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    item = {"system": system, "code": code}
    if display is not None:
        item["display"] = display
    return {"coding": [item]}


def icd10(code: str) -> dict[str, Any]:
    return coding(cv.ICD10, code)


def _drug(code: str) -> dict[str, Any]:
    drug = formulary.default().by_rxnorm(code)
    return coding(cv.RXNORM, code, drug.name if drug is not None else None)


def _licence_of(ctx: Context, member: str | None) -> str | None:
    if member is None:
        return None
    staff = ctx.state("staff/" + member)
    licence = staff.get("licence") if isinstance(staff, dict) else None
    return licence if isinstance(licence, str) else None


def _b64std(url_safe: str) -> str:
    """FHIR base64Binary is standard base64 with padding; the ledger spells signatures base64url."""
    import base64

    return base64.b64encode(b64d(url_safe, what="signature")).decode()


# -- registry ---------------------------------------------------------------------------------------------


def _institution_admit(tx: Tx, ctx: Context) -> None:
    p = tx.payload
    licence = p["licence"]
    ctx.rows.append(
        Row(
            "Organization",
            p["org"],
            {
                "identifier": [
                    {"system": cv.SID_ORG, "value": p["org"]},
                    {
                        "system": cv.SID_LICENCE,
                        "value": licence["number"],
                        "period": {"start": licence["valid_from"], "end": licence["valid_until"]},
                    },
                ],
                "active": True,
                "type": [coding(cv.code_system("institution-kind"), p["kind"])],
                "name": p["name"],
                "extension": [{"url": cv.STRUCTURE_BASE + "physical-premises", "valueBoolean": p["physical"]}],
            },
            org=p["org"],
        )
    )


def _institution_update(change: Callable[[dict[str, Any], dict[str, Any]], None]) -> Callable[[Tx, Context], None]:
    def run(tx: Tx, ctx: Context) -> None:
        org = tx.payload["org"]
        body = ctx.revisable("Organization", org)
        if body is None:
            return
        change(body, tx.payload)
        ctx.rows.append(Row("Organization", org, body, org=org))

    return run


def _set_active(active: bool) -> Callable[[dict[str, Any], dict[str, Any]], None]:
    def change(body: dict[str, Any], _: dict[str, Any]) -> None:
        body["active"] = active

    return change


def _renew(body: dict[str, Any], p: dict[str, Any]) -> None:
    licence = p["licence"]
    body["identifier"] = [i for i in body.get("identifier", []) if i.get("system") != cv.SID_LICENCE] + [
        {
            "system": cv.SID_LICENCE,
            "value": licence["number"],
            "period": {"start": licence["valid_from"], "end": licence["valid_until"]},
        }
    ]


def _practitioner_register(tx: Tx, ctx: Context) -> None:
    p = tx.payload
    licence = p["licence_no"]
    before = ctx.previous("Practitioner", licence)
    members = sorted(
        {p["member"]}
        | {
            i["value"]
            for i in (before or {}).get("identifier", [])
            if isinstance(i, dict) and i.get("system") == cv.SID_MEMBER
        }
    )
    qualifications: list[dict[str, Any]] = [
        {
            "code": coding(cv.code_system("qualification"), p["qualification"]),
            "period": {"start": p["first_practice"]},
        },
        {"code": coding(cv.code_system("profession"), p["profession"])},
    ]
    qualifications += [{"code": coding(cv.code_system("specialty"), s)} for s in sorted(set(p["specialties"]))]
    ctx.rows.append(
        Row(
            "Practitioner",
            licence,
            {
                "identifier": [{"system": cv.SID_LICENCE, "value": licence}]
                + [{"system": cv.SID_MEMBER, "value": m} for m in members],
                "active": (before or {}).get("active", True),
                "qualification": qualifications,
            },
            org=tx.signer.org,
            practitioner=licence,
        )
    )


def _practitioner_status(active: bool) -> Callable[[Tx, Context], None]:
    def run(tx: Tx, ctx: Context) -> None:
        licence = tx.payload["licence_no"]
        body = ctx.revisable("Practitioner", licence)
        if body is None:
            return
        body["active"] = active
        # a status decision is the regulator's: org None keeps the institutions that already see the licence
        ctx.rows.append(Row("Practitioner", licence, body, org=None, practitioner=licence))

    return run


def _practice_site(tx: Tx, ctx: Context) -> None:
    p, org = tx.payload, tx.signer.org
    if org is None:
        return
    licence = p["licence_no"]
    validity = p["validity"]
    ctx.rows.append(
        Row(
            "PractitionerRole",
            cv.practitioner_role_id(licence, org),
            {
                "active": True,
                "practitioner": ref("Practitioner", licence),
                "organization": ref("Organization", org),
                "code": [coding(cv.code_system("filing"), p["filing"])],
                "period": {"start": validity["valid_from"], "end": validity["valid_until"]},
            },
            org=org,
            practitioner=licence,
        )
    )


# -- clinical -----------------------------------------------------------------------------------------------


def _patient_verify(tx: Tx, ctx: Context) -> None:
    p = tx.payload
    ctx.rows.append(
        Row(
            "Patient",
            p["patient"],
            {"extension": [{"url": cv.EXT_BIRTH_MONTH, "valueString": p["birth_month"]}]},
            org=tx.signer.org,
            patient=p["patient"],
            replace=False,
        )
    )


def _condition(
    ctx: Context, logical_id: str, tx: Tx, patient: str, diagnosis: str, encounter: str, recorded: str
) -> None:
    ctx.rows.append(
        Row(
            "Condition",
            logical_id,
            {
                "clinicalStatus": coding("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
                "verificationStatus": coding("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
                "category": [coding("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis")],
                "code": icd10(diagnosis),
                "subject": ref("Patient", patient),
                "encounter": ref("Encounter", encounter),
                "recordedDate": recorded,
            },
            org=tx.signer.org,
            patient=patient,
        )
    )


def _encounter_record(tx: Tx, ctx: Context) -> None:
    """An offline encounter: id = the document digest (conventions), the diagnosis as its Condition."""
    p = tx.payload
    digest = p["document"]
    condition = cv.condition_id_for_document(digest)
    ctx.rows.append(
        Row(
            "Encounter",
            digest,
            {
                "identifier": [
                    record_identifier(p["encounter_id"]),
                    {"system": cv.SID_DOCUMENT_SHA256, "value": digest},
                ],
                "status": "finished",
                "class": {"system": ACT_CODE, "code": "AMB", "display": "ambulatory"},
                "subject": ref("Patient", p["patient"]),
                "period": {"start": p["date"]},
                "reasonCode": [icd10(p["diagnosis"])],
                "diagnosis": [{"condition": ref("Condition", condition), "rank": 1}],
                "serviceProvider": ref("Organization", tx.signer.org or ""),
            },
            org=tx.signer.org,
            patient=p["patient"],
        )
    )
    _condition(ctx, condition, tx, p["patient"], p["diagnosis"], digest, p["date"])


def _consultation_open(tx: Tx, ctx: Context) -> None:
    """An online consultation: a virtual (VR) Encounter named by its consultation id."""
    p = tx.payload
    cid = p["consultation_id"]
    doctor = p.get("doctor") or (tx.signer.member if tx.signer.role == "doctor" else None)
    licence = _licence_of(ctx, doctor)
    condition = cv.condition_id_for_consultation(cid)
    body: dict[str, Any] = {
        "identifier": [record_identifier(cid)],
        "status": "in-progress",
        "class": {"system": ACT_CODE, "code": "VR", "display": "virtual"},
        "serviceType": coding(cv.code_system("specialty"), p["specialty"]),
        "subject": ref("Patient", p["patient"]),
        "period": {"start": p["started_at"]},
        "reasonCode": [icd10(p["diagnosis"])],
        "serviceProvider": ref("Organization", tx.signer.org or ""),
    }
    if licence is not None:
        body["participant"] = [{"individual": ref("Practitioner", licence)}]
    if cv.is_fhir_id(condition):
        body["diagnosis"] = [{"condition": ref("Condition", condition), "rank": 1}]
    prior = p.get("prior")
    if prior is not None:
        body["partOf"] = ref("Encounter", prior["document"])
    ctx.rows.append(Row("Encounter", cid, body, org=tx.signer.org, patient=p["patient"], practitioner=licence))
    _condition(ctx, condition, tx, p["patient"], p["diagnosis"], cid, p["started_at"])


def _consultation_close(tx: Tx, ctx: Context) -> None:
    cid = tx.payload["consultation_id"]
    body = ctx.revisable("Encounter", cid)
    if body is None:
        return
    body["status"] = "finished"
    body["period"] = {**body.get("period", {}), "end": tx.payload["ended_at"]}
    practitioner = next(
        (
            part["individual"]["reference"].split("/", 1)[1]
            for part in body.get("participant", [])
            if part.get("individual", {}).get("reference", "").startswith("Practitioner/")
        ),
        None,
    )
    patient = body.get("subject", {}).get("reference", "/").split("/", 1)[1] or None
    ctx.rows.append(Row("Encounter", cid, body, org=tx.signer.org, patient=patient, practitioner=practitioner))


def _prescription_issue(tx: Tx, ctx: Context) -> None:
    p = tx.payload
    rx_id = p["rx_id"]
    consult = ctx.state("consult/" + p["consultation_id"])
    if not isinstance(consult, dict):
        return
    patient = consult["patient"]
    prescriber = p.get("prescriber")
    author = prescriber["member"] if prescriber is not None else tx.signer.member
    licence = _licence_of(ctx, author)
    body: dict[str, Any] = {
        "identifier": [record_identifier(rx_id)],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": _drug(p["rxnorm"]),
        "subject": ref("Patient", patient),
        "encounter": ref("Encounter", p["consultation_id"]),
        "authoredOn": p["issued_at"],
        "dosageInstruction": [
            {
                "timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                "doseAndRate": [{"doseQuantity": {"value": p["daily_units"], "unit": "unit"}}],
            }
        ],
        "dispenseRequest": {
            "quantity": {"value": p["quantity"], "unit": "unit"},
            "expectedSupplyDuration": {"value": p["days"], "unit": "d", "system": UCUM, "code": "d"},
        },
    }
    if licence is not None:
        body["requester"] = ref("Practitioner", licence)
    ctx.rows.append(Row("MedicationRequest", rx_id, body, org=tx.signer.org, patient=patient, practitioner=licence))
    if prescriber is None:
        return
    provenance: dict[str, Any] = {
        "target": [ref("MedicationRequest", rx_id)],
        "recorded": format_ms(tx.block_ms),
        "occurredDateTime": p["issued_at"],
        "agent": [
            {
                "type": coding("http://terminology.hl7.org/CodeSystem/provenance-participant-type", "author"),
                "who": ref("Practitioner", licence) if licence is not None else {"identifier": _member(author)},
            }
        ],
        "entity": [
            {
                "role": "source",
                "what": {
                    "identifier": {"system": cv.SID_DOCUMENT_SHA256, "value": prescriber["resource_sha256"]},
                    "display": "the RFC 8785 canonical MedicationRequest the prescriber signed",
                },
            }
        ],
        "signature": [
            {
                "type": [{"system": "urn:iso-astm:E1762-95:2013", "code": "1.2.840.10065.1.12.1.1"}],
                "when": p["issued_at"],
                "who": {
                    **(ref("Practitioner", licence) if licence is not None else {}),
                    "identifier": _member(prescriber["member"]),
                },
                "sigFormat": "application/x-medledger-ed25519",
                "data": _b64std(prescriber["signature"]),
                "extension": [{"url": cv.STRUCTURE_BASE + "signing-key", "valueString": prescriber["key"]}],
            }
        ],
    }
    ctx.rows.append(
        Row("Provenance", cv.provenance_id(rx_id), provenance, org=tx.signer.org, patient=patient, practitioner=licence)
    )


def _member(member: str | None) -> dict[str, str]:
    return {"system": cv.SID_MEMBER, "value": member or "unknown"}


def _dispense(tx: Tx, ctx: Context) -> None:
    p = tx.payload
    rx = ctx.state("rx/" + p["rx_id"])
    if not isinstance(rx, dict):
        return
    licence = _licence_of(ctx, tx.signer.member)
    actor = ref("Practitioner", licence) if licence is not None else ref("Organization", tx.signer.org or "")
    ctx.rows.append(
        Row(
            "MedicationDispense",
            p["dispense_id"],
            {
                "identifier": [record_identifier(p["dispense_id"])],
                "status": "completed",
                "medicationCodeableConcept": _drug(rx["rxnorm"]),
                "subject": ref("Patient", rx["patient"]),
                "performer": [{"actor": actor}],
                "authorizingPrescription": [ref("MedicationRequest", p["rx_id"])],
                "quantity": {"value": p["quantity"], "unit": "unit"},
                "whenHandedOver": p["dispensed_at"],
            },
            org=tx.signer.org,
            patient=rx["patient"],
            practitioner=licence,
        )
    )


def _claim(tx: Tx, ctx: Context) -> None:
    p = tx.payload
    dispense = ctx.state("dispense/" + p["dispense_id"])
    rx = ctx.state("rx/" + dispense["rx"]) if isinstance(dispense, dict) else None
    if not isinstance(dispense, dict) or not isinstance(rx, dict):
        return
    fen = int(p["amount_fen"])
    ctx.rows.append(
        Row(
            "Claim",
            p["claim_id"],
            {
                "identifier": [record_identifier(p["claim_id"])],
                "status": "active",
                "type": coding("http://terminology.hl7.org/CodeSystem/claim-type", "pharmacy"),
                "use": "claim",
                "patient": ref("Patient", rx["patient"]),
                "created": format_ms(tx.block_ms),
                "insurer": ref("Organization", tx.signer.org or ""),
                "provider": ref("Organization", dispense["org"]),
                "priority": coding("http://terminology.hl7.org/CodeSystem/processpriority", "normal"),
                "prescription": ref("MedicationRequest", dispense["rx"]),
                "supportingInfo": [
                    {
                        "sequence": 1,
                        "category": coding("http://terminology.hl7.org/CodeSystem/claiminformationcategory", "info"),
                        "valueReference": ref("MedicationDispense", p["dispense_id"]),
                    }
                ],
                "insurance": [{"sequence": 1, "focal": True, "coverage": {"display": "medical insurance"}}],
                "item": [
                    {
                        "sequence": 1,
                        "productOrService": _drug(rx["rxnorm"]),
                        "quantity": {"value": dispense["quantity"]},
                    }
                ],
                # yuan with exactly two decimals: integer fen / 100 is exact as a JSON number of that spelling
                "total": {"value": fen / 100, "currency": "CNY"},
            },
            org=tx.signer.org,
            patient=rx["patient"],
        )
    )


def _adverse_event(tx: Tx, ctx: Context) -> None:
    p = tx.payload
    serious = p["seriousness"] != "non-serious"
    body: dict[str, Any] = {
        "identifier": record_identifier(p["report_id"]),
        "actuality": "actual",
        "event": coding(cv.code_system("adverse-category"), p["category"]),
        "subject": {"display": NO_PATIENT},
        "date": p["occurred_at"],
        "recordedDate": format_ms(tx.block_ms),
        "seriousness": coding(
            "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness",
            "serious" if serious else "non-serious",
        ),
        "extension": [{"url": cv.STRUCTURE_BASE + "anonymous-report", "valueBoolean": p["anonymous"]}],
    }
    if p["seriousness"] == "death":
        body["outcome"] = coding("http://terminology.hl7.org/CodeSystem/adverse-event-outcome", "fatal")
    if p.get("org") is not None:
        body["extension"].append(
            {"url": cv.STRUCTURE_BASE + "institution", "valueReference": ref("Organization", p["org"])}
        )
    if p.get("rxnorm") is not None:
        body["suspectEntity"] = [
            {"instance": {"type": "Medication", "identifier": {"system": cv.RXNORM, "value": p["rxnorm"]}}}
        ]
    ctx.rows.append(Row("AdverseEvent", p["report_id"], body, org=tx.signer.org))


def _anchor(tx: Tx, ctx: Context) -> None:
    """``anchor.record`` labelled ``fhir/consent/<id>`` or ``fhir/audit-event/<id>``: a minimal resource.

    The document itself stays with the institution; the ledger holds its digest, and so does the
    rendered resource, so a holder of the document can prove it is the one anchored.
    """
    anchored = cv.anchored_resource(tx.payload["label"])
    if anchored is None:
        return
    kind, logical_id = anchored
    digest = {"system": cv.SID_DOCUMENT_SHA256, "value": tx.payload["sha256"]}
    org = tx.signer.org
    if kind == "Consent":
        body: dict[str, Any] = {
            "identifier": [digest],
            "status": "active",
            "scope": coding("http://terminology.hl7.org/CodeSystem/consentscope", "patient-privacy"),
            "category": [coding("http://loinc.org", "59284-0")],
            "dateTime": format_ms(tx.block_ms),
            "organization": [ref("Organization", org or "")],
            "policyRule": coding(ACT_CODE, "OPTIN"),
        }
    else:
        body = {
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest"},
            "recorded": format_ms(tx.block_ms),
            "agent": [{"who": ref("Organization", org or ""), "requestor": True}],
            "source": {"observer": ref("Organization", org or "")},
            "entity": [{"what": {"identifier": digest}}],
        }
    ctx.rows.append(Row(kind, logical_id, body, org=org))


RENDERERS: dict[str, Callable[[Tx, Context], None]] = {
    "institution.admit": _institution_admit,
    "institution.licence": _institution_update(_renew),
    "institution.suspend": _institution_update(_set_active(False)),
    "institution.revoke": _institution_update(_set_active(False)),
    "institution.reinstate": _institution_update(_set_active(True)),
    "practitioner.register": _practitioner_register,
    "practitioner.suspend": _practitioner_status(False),
    "practitioner.revoke": _practitioner_status(False),
    "practitioner.reinstate": _practitioner_status(True),
    "practitioner.site": _practice_site,
    "patient.verify": _patient_verify,
    "encounter.record": _encounter_record,
    "consultation.open": _consultation_open,
    "consultation.close": _consultation_close,
    "prescription.issue": _prescription_issue,
    "prescription.dispense": _dispense,
    "claim.submit": _claim,
    "report.adverse-event": _adverse_event,
    "anchor.record": _anchor,
}


def render(tx: Tx, ctx: Context) -> list[Row]:
    """The rows one accepted transaction adds or changes; ids that are not FHIR ids are skipped."""
    renderer = RENDERERS.get(tx.type)
    if renderer is None:
        return []
    ctx.rows = []
    renderer(tx, ctx)
    return [row for row in ctx.rows if cv.is_fhir_id(row.id)]
