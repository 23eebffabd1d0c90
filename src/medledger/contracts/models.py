"""Payloads of the medical transaction types, checked statelessly at the gateway.

Every field is an identifier, a code, a count or a time: there is no field a
name, an ID number, a phone number or free text about a patient could travel
in. Patients appear only as 64-hex pseudonyms, diagnoses as ICD-10 codes,
drugs as RxNorm codes, documents as SHA-256 digests; every string syntax comes
from :mod:`medledger.ledger.syntax`, which says why none can carry PHI. Models
forbid extra fields, so nothing can be smuggled beside them either.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import Field, model_validator

from medledger.ledger.identity import _Payload
from medledger.ledger.syntax import (
    Day,
    Icd10,
    Instant,
    KeyId,
    Label,
    LicenceNo,
    MemberId,
    Month,
    ParamName,
    Pseudonym,
    RxNorm,
    Sha256Hex,
    Signature,
    Slug,
    Title,
)
from medledger.ledger.syntax import RecordId as Id

Count = Annotated[int, Field(ge=1, le=100_000)]


def day_ms(text: str) -> int:
    """Midnight UTC of a validated date, in epoch milliseconds."""
    return (date.fromisoformat(text) - date(1970, 1, 1)).days * 86_400_000


class Validity(_Payload):
    valid_from: Day
    valid_until: Day

    @model_validator(mode="after")
    def _ordered(self) -> Validity:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self


class Licence(Validity):
    number: LicenceNo


# --- regulator ---------------------------------------------------------------


class RulebookPublish(_Payload):
    version: Annotated[int, Field(ge=1)]
    params: dict[ParamName, int] = Field(max_length=64)
    formulary: Sha256Hex


InstitutionKind = Literal["internet-hospital", "hospital", "clinic", "pharmacy", "insurer"]


class InstitutionAdmit(_Payload):
    org: Slug
    name: Title
    kind: InstitutionKind
    physical: bool
    licence: Licence


class InstitutionLicence(_Payload):
    org: Slug
    licence: Licence


class InternetApproval(_Payload):
    org: Slug
    approval: Validity


class InstitutionAction(_Payload):
    org: Slug
    reason: Literal["inspection", "licence-lapsed", "misconduct", "data-breach", "voluntary", "other"]


class InstitutionReinstate(_Payload):
    org: Slug


class PractitionerAction(_Payload):
    licence_no: LicenceNo
    reason: Literal["misconduct", "malpractice", "licence-lapsed", "investigation", "other"]


class PractitionerReinstate(_Payload):
    licence_no: LicenceNo


class AppReview(_Payload):
    org: Slug
    app: Slug
    decision: Literal["approved", "rejected"]


class ComplaintAnswer(_Payload):
    complaint_id: Id
    resolution: Literal["upheld", "dismissed", "referred", "mediated"]


# --- institution -------------------------------------------------------------


class PractitionerRegister(_Payload):
    member: MemberId
    licence_no: LicenceNo
    profession: Literal["doctor", "pharmacist"]
    qualification: Literal[
        "physician", "assistant-physician", "chief-physician", "pharmacist", "chief-pharmacist", "assistant-pharmacist"
    ]
    first_practice: Day
    specialties: list[Slug] = Field(max_length=16)


class PracticeSite(_Payload):
    licence_no: LicenceNo
    filing: Literal["primary", "multi-site"]
    validity: Validity


class AppRegister(_Payload):
    app: Slug
    name: Title


class DataLeakReport(_Payload):
    incident_id: Id
    detected_at: Instant
    records_affected: Annotated[int, Field(ge=0, le=10**9)]
    category: Literal["unauthorised-access", "ransomware", "misdelivery", "lost-device", "insider", "other"]


# --- clinical ----------------------------------------------------------------


class DoctorAuthenticate(_Payload):
    member: MemberId
    method: Literal["face", "ca-certificate"]
    at: Instant


class PatientVerify(_Payload):
    patient: Pseudonym
    birth_month: Month
    method: Literal["resident-id", "passport", "insurance-card", "birth-certificate", "guardian-id"]
    at: Instant


class Encounter(_Payload):
    """An offline encounter at a physical institution: it establishes the diagnosis online follow-ups cite."""

    encounter_id: Id
    patient: Pseudonym
    date: Day
    diagnosis: Icd10
    document: Sha256Hex


class PriorDiagnosis(_Payload):
    document: Sha256Hex
    org: Slug
    date: Day
    diagnosis: Icd10


class ConsultationOpen(_Payload):
    consultation_id: Id
    #: who consulted, when the hospital's gateway records it; a doctor's own key names itself by signing
    doctor: MemberId | None = None
    patient: Pseudonym
    guardian: Pseudonym | None = None
    specialty: Slug
    diagnosis: Icd10
    prior: PriorDiagnosis | None = None
    app: Slug | None = None
    started_at: Instant


class ConsultationClose(_Payload):
    consultation_id: Id
    ended_at: Instant


class Prescriber(_Payload):
    """A doctor's own signature over the prescription document, carried by a gateway-signed prescription.

    ``signature`` is Ed25519 by ``key`` over ``RESOURCE_DOMAIN`` + the raw ``resource_sha256`` (the digest
    of the RFC 8785 canonical MedicationRequest the doctor signed): the contract re-checks it from the
    ledger alone, and the hospital's copy of the document proves what the digest stands for.
    """

    member: MemberId
    key: KeyId
    resource_sha256: Sha256Hex
    signature: Signature


class PrescriptionIssue(_Payload):
    rx_id: Id
    consultation_id: Id
    rxnorm: RxNorm
    daily_units: Count
    days: Annotated[int, Field(ge=1, le=365)]
    quantity: Count
    issued_at: Instant
    #: the doctor's signature when a gateway, not the doctor's key, signs the envelope (the FHIR facade)
    prescriber: Prescriber | None = None


class PrescriptionReview(_Payload):
    rx_id: Id
    decision: Literal["approved", "rejected"]
    reason: Literal["appropriate", "dose", "interaction", "indication", "duplicate", "contraindication", "other"]
    reviewed_at: Instant


class Dispense(_Payload):
    dispense_id: Id
    rx_id: Id
    quantity: Count
    dispensed_at: Instant


class Handover(_Payload):
    dispense_id: Id
    seq: Annotated[int, Field(ge=1, le=32)]
    to: Literal["courier", "pickup-point", "patient"]
    recipient: Pseudonym | None = None
    at: Instant

    @model_validator(mode="after")
    def _recipient(self) -> Handover:
        if (self.to == "patient") != (self.recipient is not None):
            raise ValueError(
                "recipient (the patient's pseudonym) is given exactly when the hand-over is to the patient"
            )
        return self


class ClaimSubmit(_Payload):
    claim_id: Id
    dispense_id: Id
    amount_fen: Annotated[int, Field(ge=0, le=10**10)]


# --- public and reports ------------------------------------------------------

ComplaintCategory = Literal[
    "misdiagnosis", "prescription", "privacy", "billing", "attitude", "delivery", "unlicensed-practice", "other"
]


class ComplaintFile(_Payload):
    complaint_id: Id
    about: Slug
    category: ComplaintCategory
    complainant: Pseudonym | None = None
    filed_at: Instant


#: adverse events and medical errors use one fixed terminology (no free text on the ledger)
AdverseCategory = Literal[
    "adverse-drug-reaction",
    "medication-error",
    "wrong-patient",
    "diagnostic-error",
    "delayed-treatment",
    "fall",
    "infection",
    "device-failure",
    "other",
]


class AdverseEventReport(_Payload):
    report_id: Id
    category: AdverseCategory
    seriousness: Literal["non-serious", "serious", "death"]
    org: Slug | None = None
    rxnorm: RxNorm | None = None
    occurred_at: Instant
    anonymous: bool


__all__ = [
    "AdverseEventReport",
    "AppRegister",
    "AppReview",
    "ClaimSubmit",
    "ComplaintAnswer",
    "ComplaintFile",
    "ConsultationClose",
    "ConsultationOpen",
    "DataLeakReport",
    "Dispense",
    "DoctorAuthenticate",
    "Encounter",
    "Handover",
    "InstitutionAction",
    "InstitutionAdmit",
    "InstitutionLicence",
    "InstitutionReinstate",
    "InternetApproval",
    "Label",
    "PatientVerify",
    "PracticeSite",
    "PractitionerAction",
    "PractitionerRegister",
    "PractitionerReinstate",
    "PrescriptionIssue",
    "PrescriptionReview",
    "RulebookPublish",
]
