"""Typed builders for every transaction type: validated, then signed.

An integrator should not have to know each payload by heart, nor learn about a
misspelt field from a server refusal. :class:`TxBuilder` holds one member's key
and has one method per registered transaction type, named after it
(``prescription.issue`` -> :meth:`TxBuilder.prescription_issue`), whose keyword
arguments are exactly the fields of that type's payload model::

    from medledger.client import Client
    from medledger.transactions import TxBuilder

    doctor = TxBuilder(SigningKey.from_file("keys/dr-li.key"))
    env = doctor.prescription_issue(
        rx_id="rx-1", consultation_id="c-1", rxnorm="197361",
        daily_units=1, days=5, quantity=5, issued_at=datetime.now(UTC),
    )
    with Client("http://127.0.0.1:8400") as client:
        [receipt] = client.submit(env, verify=True)

Every payload is checked against the type's own pydantic model (the one the
gateway uses) **before** anything is signed; a fault raises
:class:`~medledger.errors.EncodingError` (a :class:`~medledger.errors.MedledgerError`,
code ``invalid-payload``) with one sentence naming the field. What only the
ledger can judge (is this key a doctor's? is the licence valid today?) is
still the node's call: a well-formed envelope can be refused at the gateway or
committed as ``REJECTED``.

Conveniences, all converted before validation: event times (the ``*_at``
fields) take an aware :class:`~datetime.datetime` or the ledger's
``2026-11-24T01:14:25.123Z`` string; calendar days take a
:class:`~datetime.date` or ``2026-11-24``; nested records (``licence``,
``validity``, ``approval``, ``prior``) take the model or a plain mapping.
Optional fields left at ``None`` are omitted from the payload.

The methods are written out (so IDEs and type checkers see every field) and a
test holds them to the registry: the set of methods is the set of registered
types minus ``genesis``, and each method's parameters, their optionality and
their allowed values are its model's.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Literal

from pydantic import BaseModel, ValidationError

from medledger.contracts import models as m
from medledger.errors import EncodingError, MedledgerError
from medledger.ledger import envelope
from medledger.ledger import identity as core
from medledger.ledger.canonical import b64e
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.keys import RESOURCE_DOMAIN, SigningKey
from medledger.ledger.syntax import Instant
from medledger.ledger.timefmt import format_ms, now_ms, parse_ms

__all__ = [
    "PAYLOAD_MODELS",
    "CalendarDay",
    "EventTime",
    "Licence",
    "Prescriber",
    "PriorDiagnosis",
    "TxBuilder",
    "Validity",
    "method_name",
    "validate_payload",
]

#: an event time: an aware datetime, or the ledger's ``2026-11-24T01:14:25.123Z``
EventTime = str | datetime
#: a calendar day: a date, or ``2026-11-24``
CalendarDay = str | date

Licence = m.Licence
Validity = m.Validity
PriorDiagnosis = m.PriorDiagnosis
Prescriber = m.Prescriber

#: the payload model of every transaction type a :class:`TxBuilder` builds (all registered types but genesis)
PAYLOAD_MODELS: Final[Mapping[str, type[BaseModel]]] = {
    "member.register": core.Register,
    "member.rotate": core.Rotate,
    "member.revoke": core.Revoke,
    "anchor.record": core.Anchor,
    "rulebook.publish": m.RulebookPublish,
    "institution.admit": m.InstitutionAdmit,
    "institution.licence": m.InstitutionLicence,
    "institution.internet-approval": m.InternetApproval,
    "institution.suspend": m.InstitutionAction,
    "institution.revoke": m.InstitutionAction,
    "institution.reinstate": m.InstitutionReinstate,
    "practitioner.suspend": m.PractitionerAction,
    "practitioner.revoke": m.PractitionerAction,
    "practitioner.reinstate": m.PractitionerReinstate,
    "app.review": m.AppReview,
    "complaint.answer": m.ComplaintAnswer,
    "practitioner.register": m.PractitionerRegister,
    "practitioner.site": m.PracticeSite,
    "app.register": m.AppRegister,
    "report.data-leak": m.DataLeakReport,
    "doctor.authenticate": m.DoctorAuthenticate,
    "patient.verify": m.PatientVerify,
    "encounter.record": m.Encounter,
    "consultation.open": m.ConsultationOpen,
    "consultation.close": m.ConsultationClose,
    "prescription.issue": m.PrescriptionIssue,
    "prescription.review": m.PrescriptionReview,
    "prescription.dispense": m.Dispense,
    "delivery.handover": m.Handover,
    "claim.submit": m.ClaimSubmit,
    "complaint.file": m.ComplaintFile,
    "report.adverse-event": m.AdverseEventReport,
}

# The closed vocabularies of the models, spelt out for IDEs; the drift test compares each to its model.
RevokeReason = Literal["key-compromise", "left-organisation", "superseded", "misconduct", "other"]
InstitutionReason = Literal["inspection", "licence-lapsed", "misconduct", "data-breach", "voluntary", "other"]
PractitionerReason = Literal["misconduct", "malpractice", "licence-lapsed", "investigation", "other"]
Decision = Literal["approved", "rejected"]
Resolution = Literal["upheld", "dismissed", "referred", "mediated"]
Profession = Literal["doctor", "pharmacist"]
Qualification = Literal[
    "physician", "assistant-physician", "chief-physician", "pharmacist", "chief-pharmacist", "assistant-pharmacist"
]
Filing = Literal["primary", "multi-site"]
LeakCategory = Literal["unauthorised-access", "ransomware", "misdelivery", "lost-device", "insider", "other"]
AuthMethod = Literal["face", "ca-certificate"]
IdentityDocument = Literal["resident-id", "passport", "insurance-card", "birth-certificate", "guardian-id"]
ReviewReason = Literal["appropriate", "dose", "interaction", "indication", "duplicate", "contraindication", "other"]
HandoverTo = Literal["courier", "pickup-point", "patient"]
Seriousness = Literal["non-serious", "serious", "death"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
#: the validator every ``Instant`` field carries (found by identity, so no private name is needed)
_INSTANT_MARK: Final = typing.get_args(Instant)[1]


def method_name(type_name: str) -> str:
    """The :class:`TxBuilder` method that builds ``type_name``: ``delivery.handover`` -> ``delivery_handover``."""
    return type_name.replace(".", "_").replace("-", "_")


def _plain(value: Any, name: str, type_name: str) -> Any:
    """Turn the conveniences (datetimes, dates, models, mappings, tuples) into the JSON a payload holds."""
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None:
            raise EncodingError(
                f"invalid {type_name} payload: {name}: a naive datetime has no time zone; give an aware one "
                f"(datetime.now(UTC)) or a string like 2026-11-24T01:14:25.123Z",
                code="invalid-payload",
            )
        return format_ms((value - _EPOCH) // _MS)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return {k: _plain(v, f"{name}.{k}", type_name) for k, v in value.items() if v is not None}
    if isinstance(value, tuple):
        return [_plain(v, f"{name}[{i}]", type_name) for i, v in enumerate(value)]
    if isinstance(value, list):
        return [_plain(v, f"{name}[{i}]", type_name) for i, v in enumerate(value)]
    return value


def validate_payload(type_name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``payload`` against ``type_name``'s model; return the JSON to sign (``None`` fields omitted).

    Raises :class:`EncodingError` (code ``invalid-payload``, or ``unknown-type``)
    with a sentence naming each faulty field.
    """
    model = PAYLOAD_MODELS.get(type_name)
    if model is None:
        raise EncodingError(
            f"unknown transaction type {type_name!r}; a TxBuilder builds: " + ", ".join(sorted(PAYLOAD_MODELS)),
            code="unknown-type",
        )
    plain = {k: _plain(v, k, type_name) for k, v in payload.items() if v is not None}
    for name, info in model.model_fields.items():
        value = plain.get(name)
        # an event time that does not parse raises from inside the model without naming its field
        if isinstance(value, str) and _INSTANT_MARK in info.metadata:
            try:
                parse_ms(value, what="an event time")
            except EncodingError as exc:
                raise EncodingError(
                    f"invalid {type_name} payload: {name}: {exc.message}", code="invalid-payload"
                ) from None
    try:
        checked = model.model_validate(plain)
    except ValidationError as exc:
        raise EncodingError(
            f"invalid {type_name} payload: {core.explain(exc)}", code="invalid-payload", type=type_name
        ) from None
    except MedledgerError as exc:
        raise EncodingError(f"invalid {type_name} payload: {exc.message}", code="invalid-payload") from None
    result: dict[str, Any] = checked.model_dump(mode="json", exclude_none=True)
    return result


def prescriber(doctor_key: SigningKey, member: str, document_sha256: str) -> Prescriber:
    """A doctor's signature over a prescription document kept outside the ledger (e.g. the FHIR
    MedicationRequest), for a gateway-signed ``prescription.issue``: Ed25519 over ``RESOURCE_DOMAIN`` and
    the document's raw SHA-256, so every member can re-check it from the digest alone."""
    signature = doctor_key.sign(RESOURCE_DOMAIN, bytes.fromhex(document_sha256))
    return Prescriber(member=member, key=doctor_key.key_id, resource_sha256=document_sha256, signature=b64e(signature))


class TxBuilder:
    """One member's key, building and signing envelopes of every transaction type.

    ``clock`` gives each envelope's ``created_at`` (epoch milliseconds; the
    node refuses one too far from its own clock) and ``nonce`` a fresh nonce
    per envelope (8 to 64 base64url characters, never reused by this key).
    Each method validates its payload first and signs only if it is valid.
    """

    def __init__(
        self,
        key: SigningKey,
        *,
        clock: Callable[[], int] = now_ms,
        nonce: Callable[[], str] = envelope.new_nonce,
    ) -> None:
        self.key = key
        self._clock = clock
        self._nonce = nonce

    @property
    def key_id(self) -> str:
        """The ledger name of this signer's public key (what ``member.register`` records)."""
        return self.key.key_id

    def __repr__(self) -> str:
        return f"TxBuilder({self.key_id})"

    def sign(self, type_name: str, payload: Mapping[str, Any]) -> SignedEnvelope:
        """Validate and sign a payload given as a mapping (the typed methods below call this)."""
        body = validate_payload(type_name, payload)
        return envelope.build(self.key, type_name, body, nonce=self._nonce(), created_ms=self._clock())

    def _sign(self, type_name: str, args: dict[str, Any]) -> SignedEnvelope:
        args.pop("self")
        return self.sign(type_name, args)

    # -- identity (any ledger) -----------------------------------------------------------------------

    def member_register(self, *, member: str, org: str, role: str, key: str) -> SignedEnvelope:
        """``member.register``: register a member's key (``key`` is its key id) with its organisation and role."""
        return self._sign("member.register", locals())

    def member_rotate(self, *, member: str, new_key: str) -> SignedEnvelope:
        """``member.rotate``: replace a member's key; the old one stops counting from that block."""
        return self._sign("member.rotate", locals())

    def member_revoke(self, *, member: str, reason: RevokeReason) -> SignedEnvelope:
        """``member.revoke``: revoke a member and its key."""
        return self._sign("member.revoke", locals())

    def anchor_record(self, *, label: str, sha256: str) -> SignedEnvelope:
        """``anchor.record``: commit the SHA-256 (hex) of an external document under a label."""
        return self._sign("anchor.record", locals())

    # -- regulator -----------------------------------------------------------------------------------

    def rulebook_publish(self, *, version: int, params: Mapping[str, int], formulary: str) -> SignedEnvelope:
        """``rulebook.publish``: a new version of the rule parameters, pinning the formulary digest."""
        return self._sign("rulebook.publish", locals())

    def institution_admit(
        self,
        *,
        org: str,
        name: str,
        kind: m.InstitutionKind,
        physical: bool,
        licence: Licence | Mapping[str, Any],
    ) -> SignedEnvelope:
        """``institution.admit``: admit an institution with its kind and licence."""
        return self._sign("institution.admit", locals())

    def institution_licence(self, *, org: str, licence: Licence | Mapping[str, Any]) -> SignedEnvelope:
        """``institution.licence``: record a renewed institution licence."""
        return self._sign("institution.licence", locals())

    def institution_internet_approval(self, *, org: str, approval: Validity | Mapping[str, Any]) -> SignedEnvelope:
        """``institution.internet-approval``: grant an institution's Internet-diagnosis approval."""
        return self._sign("institution.internet-approval", locals())

    def institution_suspend(self, *, org: str, reason: InstitutionReason) -> SignedEnvelope:
        """``institution.suspend``: suspend an institution."""
        return self._sign("institution.suspend", locals())

    def institution_revoke(self, *, org: str, reason: InstitutionReason) -> SignedEnvelope:
        """``institution.revoke``: revoke an institution."""
        return self._sign("institution.revoke", locals())

    def institution_reinstate(self, *, org: str) -> SignedEnvelope:
        """``institution.reinstate``: lift a suspension or revocation."""
        return self._sign("institution.reinstate", locals())

    def practitioner_suspend(self, *, licence_no: str, reason: PractitionerReason) -> SignedEnvelope:
        """``practitioner.suspend``: suspend a practitioner licence everywhere."""
        return self._sign("practitioner.suspend", locals())

    def practitioner_revoke(self, *, licence_no: str, reason: PractitionerReason) -> SignedEnvelope:
        """``practitioner.revoke``: revoke a practitioner licence everywhere."""
        return self._sign("practitioner.revoke", locals())

    def practitioner_reinstate(self, *, licence_no: str) -> SignedEnvelope:
        """``practitioner.reinstate``: restore a practitioner licence."""
        return self._sign("practitioner.reinstate", locals())

    def app_review(self, *, org: str, app: str, decision: Decision) -> SignedEnvelope:
        """``app.review``: approve or reject a mobile app."""
        return self._sign("app.review", locals())

    def complaint_answer(self, *, complaint_id: str, resolution: Resolution) -> SignedEnvelope:
        """``complaint.answer``: answer a public complaint."""
        return self._sign("complaint.answer", locals())

    # -- institution admin ---------------------------------------------------------------------------

    def practitioner_register(
        self,
        *,
        member: str,
        licence_no: str,
        profession: Profession,
        qualification: Qualification,
        first_practice: CalendarDay,
        specialties: Sequence[str],
    ) -> SignedEnvelope:
        """``practitioner.register``: link a doctor's or pharmacist's member key to their licence."""
        return self._sign("practitioner.register", locals())

    def practitioner_site(
        self, *, licence_no: str, filing: Filing, validity: Validity | Mapping[str, Any]
    ) -> SignedEnvelope:
        """``practitioner.site``: file a practice registration at the signer's institution."""
        return self._sign("practitioner.site", locals())

    def app_register(self, *, app: str, name: str) -> SignedEnvelope:
        """``app.register``: register a mobile app for review."""
        return self._sign("app.register", locals())

    def report_data_leak(
        self, *, incident_id: str, detected_at: EventTime, records_affected: int, category: LeakCategory
    ) -> SignedEnvelope:
        """``report.data-leak``: report a data-leak incident (``detected_at`` starts its deadline)."""
        return self._sign("report.data-leak", locals())

    # -- clinical ------------------------------------------------------------------------------------

    def doctor_authenticate(self, *, member: str, method: AuthMethod, at: EventTime) -> SignedEnvelope:
        """``doctor.authenticate``: a doctor's real-name authentication (face or CA)."""
        return self._sign("doctor.authenticate", locals())

    def patient_verify(
        self, *, patient: str, birth_month: str, method: IdentityDocument, at: EventTime
    ) -> SignedEnvelope:
        """``patient.verify``: a patient's real-name verification, by pseudonym (64 hex)."""
        return self._sign("patient.verify", locals())

    def encounter_record(
        self, *, encounter_id: str, patient: str, date: CalendarDay, diagnosis: str, document: str
    ) -> SignedEnvelope:
        """``encounter.record``: an offline encounter and the ICD-10 diagnosis it establishes."""
        return self._sign("encounter.record", locals())

    def consultation_open(
        self,
        *,
        consultation_id: str,
        doctor: str | None = None,
        patient: str,
        guardian: str | None = None,
        specialty: str,
        diagnosis: str,
        prior: PriorDiagnosis | Mapping[str, Any] | None = None,
        app: str | None = None,
        started_at: EventTime,
    ) -> SignedEnvelope:
        """``consultation.open``: an online follow-up consultation, citing its ``prior`` offline diagnosis.

        A doctor's own key leaves ``doctor`` out; a hospital gateway names the doctor who consulted.
        """
        return self._sign("consultation.open", locals())

    def consultation_close(self, *, consultation_id: str, ended_at: EventTime) -> SignedEnvelope:
        """``consultation.close``: close an online consultation."""
        return self._sign("consultation.close", locals())

    def prescription_issue(
        self,
        *,
        rx_id: str,
        consultation_id: str,
        rxnorm: str,
        daily_units: int,
        days: int,
        quantity: int,
        issued_at: EventTime,
        prescriber: Prescriber | Mapping[str, Any] | None = None,
    ) -> SignedEnvelope:
        """``prescription.issue``: an e-prescription, signed by the doctor's own key, or by a gateway carrying
        the doctor's ``prescriber`` signature over the prescription document (see :func:`prescriber`)."""
        return self._sign("prescription.issue", locals())

    def prescription_review(
        self, *, rx_id: str, decision: Decision, reason: ReviewReason, reviewed_at: EventTime
    ) -> SignedEnvelope:
        """``prescription.review``: a pharmacist's review of a prescription."""
        return self._sign("prescription.review", locals())

    def prescription_dispense(
        self, *, dispense_id: str, rx_id: str, quantity: int, dispensed_at: EventTime
    ) -> SignedEnvelope:
        """``prescription.dispense``: a pharmacy dispensing against a prescription."""
        return self._sign("prescription.dispense", locals())

    def delivery_handover(
        self, *, dispense_id: str, seq: int, to: HandoverTo, recipient: str | None = None, at: EventTime
    ) -> SignedEnvelope:
        """``delivery.handover``: one hand-over of a dispensed parcel (``recipient`` only when ``to`` the patient)."""
        return self._sign("delivery.handover", locals())

    def claim_submit(self, *, claim_id: str, dispense_id: str, amount_fen: int) -> SignedEnvelope:
        """``claim.submit``: an insurance claim for a dispense, in fen."""
        return self._sign("claim.submit", locals())

    # -- public desk and reports ---------------------------------------------------------------------

    def complaint_file(
        self,
        *,
        complaint_id: str,
        about: str,
        category: m.ComplaintCategory,
        complainant: str | None = None,
        filed_at: EventTime,
    ) -> SignedEnvelope:
        """``complaint.file``: a public complaint about an institution (``complainant`` omitted: anonymous)."""
        return self._sign("complaint.file", locals())

    def report_adverse_event(
        self,
        *,
        report_id: str,
        category: m.AdverseCategory,
        seriousness: Seriousness,
        org: str | None = None,
        rxnorm: str | None = None,
        occurred_at: EventTime,
        anonymous: bool,
    ) -> SignedEnvelope:
        """``report.adverse-event``: an adverse event or medical error, in the fixed categories."""
        return self._sign("report.adverse-event", locals())
