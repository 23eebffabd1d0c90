"""The medical transaction types: who may sign each, its payload and its handler.

Roles are the gateway's first filter (a key of the wrong role is refused
before ordering and never reaches the ledger). Some types deliberately admit
roles their rules then judge, because the attempt itself is evidence: a
prescription signed by a hospital's gateway key is committed as REJECTED
under RX-NO-AI rather than bounced, and a doctor reviewing their own
prescription is committed as REJECTED under PH-REVIEW.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from medledger.contracts import formulary
from medledger.contracts import handlers as h
from medledger.contracts import models as m
from medledger.contracts.world import OPEN_COMPLAINTS, RULEBOOK
from medledger.ledger.identity import ADMIN, NODE, REGULATOR, core_registry, validator
from medledger.ledger.txtypes import Registry, TxType

DOCTOR = "doctor"
PHARMACIST = "pharmacist"
GATEWAY = "gateway"
INSURER = "insurer"
#: the roles an institution's admin may register (DESIGN §4)
MEMBER_ROLES = (ADMIN, DOCTOR, PHARMACIST, GATEWAY, INSURER)

_REG = frozenset({REGULATOR})
_ADMIN = frozenset({ADMIN})
_PUBLIC_DESK = frozenset({GATEWAY, NODE, REGULATOR})


def _reads(*fields: tuple[str, str]) -> Any:
    """A prefetch hint: state keys named by payload fields (a speed hint, never a correctness input)."""

    def keys(payload: dict[str, Any]) -> Iterable[str]:
        yield RULEBOOK
        for kind, name in fields:
            value = payload.get(name) if isinstance(payload, dict) else None
            if isinstance(value, str):
                yield f"{kind}/{value}"

    return keys


def _prescription_reads(payload: dict[str, Any], get: Callable[[str], Any]) -> Iterable[str]:
    """What a prescription reads through its consultation: the patient's supply of that drug's group."""
    try:
        consult = get("consult/" + payload["consultation_id"])
        drug = formulary.default().by_rxnorm(payload["rxnorm"])
    except (KeyError, TypeError):
        return ()
    if not isinstance(consult, dict) or drug is None:
        return ()
    return (f"supply/{consult['patient']}/{drug.group}", f"inst/{consult['org']}", f"staff/{consult['member']}")


def _t(
    name: str,
    roles: frozenset[str],
    model: type[Any],
    handler: Any,
    summary: str,
    reads: Any = None,
    derived: Any = None,
) -> TxType:
    return TxType(name, roles, validator(model), handler, summary, reads or _reads(), derived)


MEDICAL_TYPES = (
    _t(
        "rulebook.publish",
        _REG,
        m.RulebookPublish,
        h.publish_rulebook,
        "publishes a new version of the rule parameters and pins the formulary digest",
    ),
    _t(
        "institution.admit",
        _REG,
        m.InstitutionAdmit,
        h.admit_institution,
        "admits an institution with its kind and licence",
        _reads(("inst", "org")),
    ),
    _t(
        "institution.licence",
        _REG,
        m.InstitutionLicence,
        h.renew_licence,
        "records a renewed institution licence",
        _reads(("inst", "org")),
    ),
    _t(
        "institution.internet-approval",
        _REG,
        m.InternetApproval,
        h.approve_internet,
        "grants an institution's Internet-diagnosis approval",
        _reads(("inst", "org")),
    ),
    _t(
        "institution.suspend",
        _REG,
        m.InstitutionAction,
        h.HANDLERS["institution.suspend"],
        "suspends an institution",
        _reads(("inst", "org")),
    ),
    _t(
        "institution.revoke",
        _REG,
        m.InstitutionAction,
        h.HANDLERS["institution.revoke"],
        "revokes an institution",
        _reads(("inst", "org")),
    ),
    _t(
        "institution.reinstate",
        _REG,
        m.InstitutionReinstate,
        h.HANDLERS["institution.reinstate"],
        "lifts a suspension or revocation",
        _reads(("inst", "org")),
    ),
    _t(
        "practitioner.suspend",
        _REG,
        m.PractitionerAction,
        h.HANDLERS["practitioner.suspend"],
        "suspends a practitioner licence everywhere",
        _reads(("prac", "licence_no")),
    ),
    _t(
        "practitioner.revoke",
        _REG,
        m.PractitionerAction,
        h.HANDLERS["practitioner.revoke"],
        "revokes a practitioner licence everywhere",
        _reads(("prac", "licence_no")),
    ),
    _t(
        "practitioner.reinstate",
        _REG,
        m.PractitionerReinstate,
        h.HANDLERS["practitioner.reinstate"],
        "restores a practitioner licence",
        _reads(("prac", "licence_no")),
    ),
    _t("app.review", _REG, m.AppReview, h.review_app, "approves or rejects a mobile app"),
    _t(
        "complaint.answer",
        _REG,
        m.ComplaintAnswer,
        h.answer_complaint,
        "answers a public complaint",
        _reads(("complaint", "complaint_id")),
    ),
    _t(
        "practitioner.register",
        _ADMIN,
        m.PractitionerRegister,
        h.register_practitioner,
        "links a doctor's or pharmacist's key to their licence",
        _reads(("prac", "licence_no"), ("staff", "member")),
    ),
    _t(
        "practitioner.site",
        _ADMIN,
        m.PracticeSite,
        h.register_site,
        "files a practice registration (primary or multi-site) at the signer's institution",
    ),
    _t("app.register", _ADMIN, m.AppRegister, h.register_app, "registers a mobile app for review"),
    _t("report.data-leak", _ADMIN, m.DataLeakReport, h.report_leak, "reports a data-leak incident"),
    _t(
        "doctor.authenticate",
        frozenset({GATEWAY, DOCTOR, ADMIN}),
        m.DoctorAuthenticate,
        h.authenticate_doctor,
        "records a doctor's real-name authentication (face or CA)",
        _reads(("auth", "member")),
    ),
    _t(
        "patient.verify",
        frozenset({GATEWAY, ADMIN, DOCTOR}),
        m.PatientVerify,
        h.verify_patient,
        "records a patient's real-name verification, by pseudonym",
        _reads(("patient", "patient")),
    ),
    _t(
        "encounter.record",
        frozenset({DOCTOR, GATEWAY}),
        m.Encounter,
        h.record_encounter,
        "records an offline encounter and the diagnosis it establishes",
        _reads(("dx", "document")),
    ),
    _t(
        "consultation.open",
        frozenset({DOCTOR, GATEWAY}),
        m.ConsultationOpen,
        h.open_consultation,
        "opens an online consultation (a follow-up of an offline diagnosis); a gateway names the doctor",
        _reads(("consult", "consultation_id"), ("patient", "patient"), ("patient", "guardian"), ("staff", "doctor")),
    ),
    _t(
        "consultation.close",
        frozenset({DOCTOR, GATEWAY}),
        m.ConsultationClose,
        h.close_consultation,
        "closes an online consultation",
        _reads(("consult", "consultation_id")),
    ),
    _t(
        "prescription.issue",
        frozenset({DOCTOR, GATEWAY}),
        m.PrescriptionIssue,
        h.issue_prescription,
        "issues an e-prescription, signed by the doctor's own key",
        _reads(("rx", "rx_id"), ("consult", "consultation_id")),
    ),
    _t(
        "prescription.review",
        frozenset({PHARMACIST, DOCTOR}),
        m.PrescriptionReview,
        h.review_prescription,
        "records a pharmacist's review of a prescription",
        _reads(("rx", "rx_id")),
    ),
    _t(
        "prescription.dispense",
        frozenset({PHARMACIST, GATEWAY}),
        m.Dispense,
        h.dispense,
        "records a pharmacy dispensing against a prescription",
        _reads(("rx", "rx_id"), ("dispense", "dispense_id")),
    ),
    _t(
        "delivery.handover",
        frozenset({GATEWAY, PHARMACIST}),
        m.Handover,
        h.hand_over,
        "records one hand-over of a dispensed parcel",
        _reads(("dispense", "dispense_id")),
    ),
    _t(
        "claim.submit",
        frozenset({INSURER, GATEWAY}),
        m.ClaimSubmit,
        h.submit_claim,
        "records an insurance claim for a dispense",
        _reads(("claim", "claim_id"), ("dispense", "dispense_id")),
    ),
    _t(
        "complaint.file",
        _PUBLIC_DESK,
        m.ComplaintFile,
        h.file_complaint,
        "files a public complaint about an institution (anonymous allowed)",
        _reads(("inst", "about")),
    ),
    _t(
        "report.adverse-event",
        frozenset({GATEWAY, NODE, REGULATOR, ADMIN, DOCTOR, PHARMACIST}),
        m.AdverseEventReport,
        h.report_adverse_event,
        "reports an adverse event or medical error (fixed categories, anonymous allowed)",
    ),
)


def registry() -> Registry:
    """Every transaction type of a medledger ledger: the generic ones and the rulebook's."""
    reg = core_registry()
    for tx_type in MEDICAL_TYPES:
        reg.register(tx_type)
    reg.on_block.append(h.complaint_deadlines)
    return reg


__all__ = ["MEDICAL_TYPES", "OPEN_COMPLAINTS", "registry"]
