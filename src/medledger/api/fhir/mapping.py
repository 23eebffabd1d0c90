"""FHIR resources -> contract payloads: one pure function per resource type.

Each mapper takes a resource (already valid R4 by the ``fhir.resources``
models) and a :class:`Context` (who is calling, a reader of committed world
state, the Bundle around the resource) and returns the ledger transactions it
stands for, or raises :class:`Refusal` naming the FHIR element at fault. No
mapper writes anything; the routes (``writes.py``) sign and submit.

Only identifiers, codes, counts and times are taken from a resource: names,
free text, telecom and addresses have no payload field to go to, and patient
identifiers are turned into pseudonyms here, before anything leaves the
facade. Every payload is validated by the contract's own model
(:mod:`medledger.contracts.models`) so a fault is refused with its FHIR path
instead of becoming an envelope the gateway refuses with a payload path.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, NoReturn, get_args

from pydantic import ValidationError

from medledger.api.fhir import conventions as cv
from medledger.api.fhir import outcome
from medledger.contracts import models as m
from medledger.errors import MedledgerError
from medledger.ledger import keys
from medledger.ledger.canonical import b64e
from medledger.ledger.identity import _Payload
from medledger.ledger.timefmt import format_ms

#: every resource type the facade writes, and what it becomes
MAPPED_TYPES: dict[str, str] = {
    "Patient": "patient.verify",
    "Practitioner": "practitioner.register",
    "PractitionerRole": "practitioner.site",
    "Organization": "institution.admit",
    "Encounter": "consultation.open / consultation.close (class VR), encounter.record (other classes)",
    "Condition": "the diagnosis of an Encounter in the same Bundle (no transaction of its own)",
    "MedicationRequest": "prescription.issue",
    "Provenance": "the prescriber signature of a MedicationRequest in the same Bundle",
    "MedicationDispense": "prescription.dispense",
    "Claim": "claim.submit",
    "AdverseEvent": "report.adverse-event",
    "Consent": "anchor.record (digest only)",
    "AuditEvent": "anchor.record (digest only)",
}
#: the transaction types each resource type may become: who may sign them is checked before mapping,
#: so a caller without the authority hears that first, not a list of missing elements
WRITTEN_AS: dict[str, tuple[str, ...]] = {
    "Patient": ("patient.verify",),
    "Practitioner": ("practitioner.register",),
    "PractitionerRole": ("practitioner.site",),
    "Organization": ("institution.admit",),
    "Encounter": ("consultation.open", "encounter.record"),
    "MedicationRequest": ("prescription.issue",),
    "MedicationDispense": ("prescription.dispense",),
    "Claim": ("claim.submit",),
    "AdverseEvent": ("report.adverse-event",),
    "Consent": ("anchor.record",),
    "AuditEvent": ("anchor.record",),
}
#: types that only make sense beside another resource of the same Bundle
BUNDLE_ONLY = frozenset({"Condition", "Provenance"})

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
_DATE = re.compile(r"\d{4}-\d\d-\d\d")

#: Patient.identifier.type (v2-0203) -> PatientVerify.method, in order of preference: a national
#: identifier first, so the same person gets the same pseudonym at every institution
_ID_METHODS: tuple[tuple[Callable[[str], bool], str], ...] = (
    (lambda c: c in ("NI", "SS") or re.fullmatch(r"NN[A-Z]{3}", c) is not None, "resident-id"),
    (lambda c: c == "PPN", "passport"),
    (lambda c: c == "SB", "insurance-card"),
    (lambda c: c == "BCT", "birth-certificate"),
)
_QUALIFICATIONS = get_args(m.PractitionerRegister.model_fields["qualification"].annotation)
_PHARMACY_QUALIFICATIONS = frozenset(q for q in _QUALIFICATIONS if "pharmacist" in q)
_KINDS = get_args(m.InstitutionKind)
_ADVERSE = get_args(m.AdverseCategory)
_SERIOUSNESS = ("non-serious", "serious", "death")
#: HL7 adverse-event-seriousness codes -> ours
_HL7_SERIOUSNESS_SYSTEM = "http://terminology.hl7.org/CodeSystem/adverse-event-seriousness"


# --- refusals --------------------------------------------------------------------------------------------


class Refusal(MedledgerError):
    """A resource the facade will not map: an HTTP status and one OperationOutcome issue per fault."""

    def __init__(self, status: int, issues: Sequence[Mapping[str, Any]]) -> None:
        first = str(issues[0].get("diagnostics", "refused")) if issues else "refused"
        super().__init__(first, code="fhir-refused", status=status)
        self.issues = [dict(i) for i in issues]


def refuse(status: int, diagnostics: str, *expression: str, code: str | None = None) -> NoReturn:
    raise Refusal(status, [outcome.issue(diagnostics, code=code or outcome.issue_type(status), expression=expression)])


# --- context ---------------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One resource of a Bundle (or the single resource of a create), with where it sits."""

    index: int
    resource: dict[str, Any]
    full_url: str | None
    #: FHIRPath prefix of the resource: "Patient" or "Bundle.entry[3].resource"
    path: str


@dataclass
class BundleIndex:
    """What entries of one Bundle may learn about each other, in Bundle order."""

    entries: list[Entry]
    #: fullUrl -> (resource type, logical id) of entries mapped so far
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: fullUrl of an Encounter -> "online" or "offline"
    encounter_kind: dict[str, str] = field(default_factory=dict)
    #: document digest -> the prior-diagnosis citation of an offline Encounter mapped in this Bundle
    offline: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Condition fullUrl -> (Condition logical id, index of the Encounter entry that used it)
    conditions_used: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: Provenance entry index -> index of the MedicationRequest entry it signs
    provenance_used: dict[int, tuple[str, int]] = field(default_factory=dict)

    def by_url(self, url: str) -> Entry | None:
        for entry in self.entries:
            if entry.full_url == url:
                return entry
        return None


@dataclass
class Context:
    """Everything a mapper may consult: the caller, committed state, the clock and the Bundle."""

    org: str | None
    member: str
    get: Callable[[str], Any]
    pseudonymise: Callable[[str, str], str]
    now_ms: int
    bundle: BundleIndex | None = None


@dataclass
class Mapped:
    """A mapped resource: the transactions it becomes and how it answers."""

    resource_type: str
    logical_id: str
    #: (transaction type, payload) in submission order; empty when nothing needs writing
    txs: list[tuple[str, dict[str, Any]]]
    #: the resource as the response shows it (without ``meta``)
    representation: dict[str, Any]
    #: when nothing is written: the transaction already standing for it (an already verified Patient)
    existing_tx: str | None = None


# --- small readers ---------------------------------------------------------------------------------------


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _codings(concept: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(concept, dict):
        for i, coding in enumerate(_list(concept.get("coding"))):
            if isinstance(coding, dict):
                yield i, coding


def _code_in(concepts: Any, system: str | frozenset[str], path: str) -> tuple[str, str] | None:
    """(code, FHIRPath of it) of the first coding in ``system`` among one or several CodeableConcepts."""
    systems = {system} if isinstance(system, str) else system
    many = isinstance(concepts, list)
    for ci, concept in enumerate(_list(concepts)):
        for i, coding in _codings(concept):
            if coding.get("system") in systems and isinstance(coding.get("code"), str):
                where = f"{path}[{ci}]" if many else path
                return coding["code"], f"{where}.coding[{i}].code"
    return None


def _systems(concepts: Any) -> list[str]:
    return sorted({str(c.get("system")) for concept in _list(concepts) for _, c in _codings(concept)})


def _identifier(resource: Mapping[str, Any], system: str, path: str) -> tuple[str, str] | None:
    """(value, FHIRPath) of the resource's identifier in ``system`` (AdverseEvent has one, others a list)."""
    raw = resource.get("identifier")
    many = isinstance(raw, list)
    for i, ident in enumerate(_list(raw)):
        if isinstance(ident, dict) and ident.get("system") == system and isinstance(ident.get("value"), str):
            return ident["value"], f"{path}.identifier[{i}].value" if many else f"{path}.identifier.value"
    return None


def _record_id(resource: Mapping[str, Any], path: str, what: str) -> tuple[str, str]:
    found = _identifier(resource, cv.SID_RECORD, path)
    if found is None:
        refuse(
            422,
            f"a {resource.get('resourceType')} needs an identifier with system {cv.SID_RECORD} "
            f"carrying its {what} (the id the ledger records it under)",
            f"{path}.identifier",
        )
    value, where = found
    if not cv.is_fhir_id(value):
        refuse(
            422,
            f"{what} {value[:80]!r} is not a valid FHIR id ([A-Za-z0-9-.], at most 64 characters), so the "
            "resource could not be read back under it; choose an id without '_' or ':'",
            where,
        )
    return value, where


def instant(text: Any, where: str, what: str) -> str:
    """A FHIR dateTime/instant with a time and an offset -> the ledger's ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    if not isinstance(text, str) or "T" not in text:
        refuse(422, f"{what} needs a date and time with a UTC offset (e.g. 2026-03-02T09:00:00+08:00)", where)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        refuse(422, f"{what} {text[:40]!r} is not a date and time", where)
    if parsed.tzinfo is None:
        refuse(422, f"{what} {text[:40]!r} has no UTC offset; the ledger needs an instant", where)
    return format_ms((parsed - _EPOCH) // _MS)


def day(text: Any, where: str, what: str) -> str:
    """The calendar date of a FHIR date or dateTime, as written (its own offset's calendar)."""
    if not isinstance(text, str) or _DATE.fullmatch(text[:10]) is None:
        refuse(422, f"{what} needs a full date (YYYY-MM-DD)", where)
    return text[:10]


def reference(
    ctx: Context, ref: Any, where: str, expected: str | tuple[str, ...], what: str
) -> tuple[str, str, str | None]:
    """(type, logical id, fullUrl if it named a Bundle entry) of a Reference; refuses anything else."""
    wanted = (expected,) if isinstance(expected, str) else expected
    text = ref.get("reference") if isinstance(ref, dict) else None
    if not isinstance(text, str) or not text:
        refuse(422, f"{what} needs a reference to {' or '.join(wanted)}", f"{where}.reference")
    if text.startswith("urn:uuid:") or text.startswith("urn:oid:"):
        resolved = ctx.bundle.refs.get(text) if ctx.bundle is not None else None
        if resolved is None:
            refuse(
                422,
                f"{what} {text} names no earlier accepted entry of this Bundle (entries are processed in "
                "Bundle order; a referenced resource must come first)",
                f"{where}.reference",
            )
        kind, logical = resolved
        url: str | None = text
    else:
        parts = text.rstrip("/").split("/")
        if len(parts) < 2:
            refuse(422, f"{what} {text[:80]!r} is not a Type/id reference", f"{where}.reference")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        kind, logical = parts[-2], parts[-1]
        url = None
    if kind not in wanted:
        refuse(422, f"{what} must reference {' or '.join(wanted)}, not {kind}", f"{where}.reference")
    return kind, logical, url


def _patient(ctx: Context, ref: Any, where: str, what: str = "the patient") -> str:
    _, logical, _ = reference(ctx, ref, where, "Patient", what)
    if cv.HEX64.fullmatch(logical) is None:
        refuse(
            422,
            f"{what} must be Patient/<pseudonym> (64 hex, as POST /fhir/Patient returned it), not a local id",
            f"{where}.reference",
        )
    return logical


def check_patient_references(value: Any, path: str) -> None:
    """Every literal ``Patient/<id>`` reference anywhere in a resource must be a pseudonym.

    A hospital's own patient id (an MRN) in a reference is an identifier: it may not reach the ledger,
    not even inside a digest's document the facade echoes back.
    """
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and not ref.startswith("urn:") and not ref.startswith("#"):
            parts = ref.rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient" and cv.HEX64.fullmatch(parts[-1]) is None:
                refuse(
                    422,
                    "patients are referenced by pseudonym only (Patient/<64 hex> from POST /fhir/Patient); "
                    f"{ref[:80]!r} is a local id",
                    f"{path}.reference",
                )
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                check_patient_references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_patient_references(item, f"{path}[{i}]")


def _contract(model: type[_Payload], payload: dict[str, Any], paths: Mapping[str, str], base: str) -> None:
    """Validate with the contract's model; faults become issues at the FHIR element they came from."""
    try:
        model.model_validate(payload)
    except ValidationError as exc:
        issues = []
        for err in exc.errors():
            loc = err.get("loc", ())
            name = str(loc[0]) if loc else ""
            where = paths.get(name, base)
            shown = repr(err.get("input"))[:60]
            issues.append(
                outcome.issue(
                    f"{where}: {err['msg']} (got {shown}; the ledger's {model.__name__}.{name or 'payload'})",
                    code="processing",
                    expression=[where],
                )
            )
        raise Refusal(422, issues) from None


def _member_state(ctx: Context, member: str) -> dict[str, Any] | None:
    record = ctx.get("member/" + member)
    return record if isinstance(record, dict) else None


def _doctor_of(ctx: Context, licence: str, where: str) -> tuple[str, dict[str, Any]]:
    """The active doctor member of the caller's institution holding ``licence``, and its member record."""
    prac = ctx.get("prac/" + licence)
    if not isinstance(prac, dict):
        refuse(422, f"no practitioner with licence {licence!r} is registered on the ledger", where)
    for member in prac.get("members", []):
        record = _member_state(ctx, member)
        if record is not None and record.get("org") == ctx.org and record.get("role") == "doctor":
            if record.get("status") != "active":
                refuse(422, f"the doctor key {member} of licence {licence} is {record.get('status')}", where)
            return member, record
    refuse(422, f"licence {licence} has no doctor key registered at {ctx.org}", where)


def _practitioner_licence(ctx: Context, ref: Any, where: str, what: str) -> str:
    _, logical, _ = reference(ctx, ref, where, "Practitioner", what)
    return logical


def _echo(resource: Mapping[str, Any], logical_id: str) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("id", "meta")}
    return {"resourceType": resource["resourceType"], "id": logical_id, **out}


# --- Patient ---------------------------------------------------------------------------------------------


def map_patient(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """Patient -> patient.verify of a keyed pseudonym of its national identifier; nothing else is kept."""
    chosen: tuple[int, str, str, str] | None = None  # (preference, method, system, value)
    seen: list[str] = []
    for ident in _list(r.get("identifier")):
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        codes = [c.get("code") for _, c in _codings(ident.get("type")) if isinstance(c.get("code"), str)]
        seen.extend(str(c) for c in codes)
        for rank, (matches, method) in enumerate(_ID_METHODS):
            if any(matches(str(c)) for c in codes) and (chosen is None or rank < chosen[0]):
                chosen = (rank, method, str(ident.get("system", "")), ident["value"])
    if chosen is None:
        refuse(
            422,
            "a Patient needs a national identifier so the same person gets the same pseudonym at every "
            "institution: an identifier typed (v2-0203) NI, NNxxx or SS (resident id), PPN (passport), "
            f"SB (insurance card) or BCT (birth certificate); this one has {sorted(set(seen)) or 'only untyped'} "
            "identifiers (an MR or a local number differs between hospitals)",
            f"{path}.identifier",
        )
    _, method, system, value = chosen
    birth = r.get("birthDate")
    if not isinstance(birth, str) or len(birth) < 7:
        refuse(
            422,
            "a Patient needs birthDate with at least a year and month (the ledger keeps the month)",
            f"{path}.birthDate",
        )
    pseudonym = ctx.pseudonymise(system, value)
    payload = {"patient": pseudonym, "birth_month": birth[:7], "method": method, "at": format_ms(ctx.now_ms)}
    _contract(m.PatientVerify, payload, {"birth_month": f"{path}.birthDate"}, path)
    representation = {
        "resourceType": "Patient",
        "id": pseudonym,
        "extension": [{"url": cv.EXT_BIRTH_MONTH, "valueString": birth[:7]}],
    }
    existing = ctx.get("patient/" + pseudonym)
    if isinstance(existing, dict):
        if existing.get("birth_month") == birth[:7]:
            # already verified: the same pseudonym, nothing new to record
            return Mapped("Patient", pseudonym, [], representation, existing_tx=str(existing.get("tx")))
        refuse(
            409,
            "this person was verified on the ledger with another birth month; correct the birthDate or the identifier",
            f"{path}.birthDate",
            code="conflict",
        )
    return Mapped("Patient", pseudonym, [("patient.verify", payload)], representation)


# --- Practitioner, PractitionerRole, Organization --------------------------------------------------------


def _validity(period: Any, where: str, what: str) -> dict[str, str]:
    if not isinstance(period, dict):
        refuse(422, f"{what} needs a period with start and end dates", where)
    return {
        "valid_from": day(period.get("start"), f"{where}.start", f"{what} start"),
        "valid_until": day(period.get("end"), f"{where}.end", f"{what} end"),
    }


def map_practitioner(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """Practitioner -> practitioner.register: licence, member key, qualification and specialties."""
    missing: list[tuple[str, str]] = []
    licence = _identifier(r, cv.SID_LICENCE, path)
    if licence is None:
        missing.append((f"{path}.identifier", f"an identifier with system {cv.SID_LICENCE} (the licence number)"))
    member = _identifier(r, cv.SID_MEMBER, path)
    if member is None:
        missing.append((f"{path}.identifier", f"an identifier with system {cv.SID_MEMBER} (the member key id)"))
    qualification: tuple[str, str, int] | None = None
    specialties: list[str] = []
    for i, q in enumerate(_list(r.get("qualification"))):
        code = _code_in(q.get("code") if isinstance(q, dict) else None, cv.CS_QUALIFICATION, "")
        if code is not None and qualification is None:
            qualification = (code[0], f"{path}.qualification[{i}].code{code[1]}", i)
        spec = _code_in(q.get("code") if isinstance(q, dict) else None, cv.CS_SPECIALTY, "")
        if spec is not None:
            specialties.append(spec[0])
    first_practice = None
    if qualification is None:
        missing.append(
            (f"{path}.qualification", f"a qualification coded in {cv.CS_QUALIFICATION} ({', '.join(_QUALIFICATIONS)})")
        )
    else:
        q = r["qualification"][qualification[2]]
        start = (q.get("period") or {}).get("start")
        if start is None:
            missing.append(
                (f"{path}.qualification[{qualification[2]}].period.start", "the date of first independent practice")
            )
        else:
            first_practice = day(start, f"{path}.qualification[{qualification[2]}].period.start", "first practice")
    if missing:
        raise Refusal(
            422,
            [
                outcome.issue(f"a Practitioner needs {need}", code="required", expression=[where])
                for where, need in missing
            ],
        )
    assert licence is not None and member is not None and qualification is not None
    profession = "pharmacist" if qualification[0] in _PHARMACY_QUALIFICATIONS else "doctor"
    payload = {
        "member": member[0],
        "licence_no": licence[0],
        "profession": profession,
        "qualification": qualification[0],
        "first_practice": first_practice,
        "specialties": specialties,
    }
    _contract(
        m.PractitionerRegister,
        payload,
        {
            "member": member[1],
            "licence_no": licence[1],
            "qualification": qualification[1],
            "profession": qualification[1],
            "first_practice": f"{path}.qualification[{qualification[2]}].period.start",
            "specialties": f"{path}.qualification",
        },
        path,
    )
    if not cv.is_fhir_id(licence[0]):
        refuse(422, f"licence {licence[0]!r} is not a valid FHIR id", licence[1])
    return Mapped("Practitioner", licence[0], [("practitioner.register", payload)], _echo(r, licence[0]))


def map_practitioner_role(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """PractitionerRole -> practitioner.site: a practice registration at the caller's institution."""
    licence = _practitioner_licence(ctx, r.get("practitioner"), f"{path}.practitioner", "practitioner")
    if r.get("organization") is not None:
        _, org, _ = reference(ctx, r["organization"], f"{path}.organization", "Organization", "organization")
        if org != ctx.org:
            refuse(
                403,
                f"a practice registration is filed by the institution itself: {ctx.org} may not file one at {org}",
                f"{path}.organization",
            )
    filing = _code_in(r.get("code"), cv.CS_FILING, f"{path}.code")
    if filing is None:
        refuse(
            422, f"a PractitionerRole needs code with a {cv.CS_FILING} coding (primary or multi-site)", f"{path}.code"
        )
    payload = {
        "licence_no": licence,
        "filing": filing[0],
        "validity": _validity(r.get("period"), f"{path}.period", "the registration"),
    }
    _contract(
        m.PracticeSite,
        payload,
        {"licence_no": f"{path}.practitioner", "filing": filing[1], "validity": f"{path}.period"},
        path,
    )
    logical = cv.practitioner_role_id(licence, str(ctx.org))
    return Mapped("PractitionerRole", logical, [("practitioner.site", payload)], _echo(r, logical))


def map_organization(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """Organization -> institution.admit (the regulator's act): slug, kind, licence, physical premises."""
    org = _identifier(r, cv.SID_ORG, path)
    licence = _identifier(r, cv.SID_LICENCE, path)
    kind = _code_in(r.get("type"), cv.CS_INSTITUTION_KIND, f"{path}.type")
    missing = []
    if org is None:
        missing.append((f"{path}.identifier", f"an identifier with system {cv.SID_ORG} (the institution's id)"))
    if licence is None:
        missing.append((f"{path}.identifier", f"an identifier with system {cv.SID_LICENCE} and a period (its licence)"))
    if kind is None:
        missing.append((f"{path}.type", f"a type coded in {cv.CS_INSTITUTION_KIND} ({', '.join(_KINDS)})"))
    if not isinstance(r.get("name"), str):
        missing.append((f"{path}.name", "a name"))
    if missing:
        raise Refusal(
            422,
            [outcome.issue(f"an Organization needs {need}", code="required", expression=[w]) for w, need in missing],
        )
    assert org is not None and licence is not None and kind is not None
    ident = next(i for i in _list(r.get("identifier")) if isinstance(i, dict) and i.get("system") == cv.SID_LICENCE)
    licence_path = licence[1].rsplit(".", 1)[0]
    physical: Any = kind[0] != "insurer"
    for i, ext in enumerate(_list(r.get("extension"))):
        if isinstance(ext, dict) and ext.get("url") == cv.EXT_PHYSICAL:
            physical = ext.get("valueBoolean")
            if not isinstance(physical, bool):
                refuse(422, "the physical-premises extension needs valueBoolean", f"{path}.extension[{i}]")
    payload = {
        "org": org[0],
        "name": r["name"],
        "kind": kind[0],
        "physical": physical,
        "licence": {"number": licence[0], **_validity(ident.get("period"), f"{licence_path}.period", "the licence")},
    }
    _contract(
        m.InstitutionAdmit,
        payload,
        {"org": org[1], "name": f"{path}.name", "kind": kind[1], "licence": licence[1]},
        path,
    )
    return Mapped("Organization", org[0], [("institution.admit", payload)], _echo(r, org[0]))


# --- Encounter and its diagnosis -------------------------------------------------------------------------


def _diagnosis(r: dict[str, Any], ctx: Context, path: str, entry: Entry | None) -> tuple[str, str, str | None]:
    """(ICD-10 code, FHIRPath, fullUrl of the Condition it came from) of an Encounter's diagnosis."""
    found = _code_in(r.get("reasonCode"), cv.ICD10_INPUT, f"{path}.reasonCode")
    if found is not None:
        return found[0], found[1], None
    sources: list[tuple[str, Entry]] = []
    for i, dx in enumerate(_list(r.get("diagnosis"))):
        cond = dx.get("condition") if isinstance(dx, dict) else None
        text = cond.get("reference") if isinstance(cond, dict) else None
        where = f"{path}.diagnosis[{i}].condition"
        target = ctx.bundle.by_url(text) if ctx.bundle is not None and isinstance(text, str) else None
        if target is None or target.resource.get("resourceType") != "Condition":
            refuse(
                422,
                "diagnosis.condition must reference a Condition entry of the same Bundle (by its fullUrl); "
                "a Condition is recorded only as the diagnosis of its Encounter",
                where,
            )
        sources.append((where, target))
    if not sources and ctx.bundle is not None and entry is not None and entry.full_url is not None:
        # Conditions that point at this Encounter (Condition.encounter), as many EHRs export them
        for other in ctx.bundle.entries:
            res = other.resource
            enc = res.get("encounter") if res.get("resourceType") == "Condition" else None
            if isinstance(enc, dict) and enc.get("reference") == entry.full_url:
                sources.append((f"{other.path}", other))
    if not sources:
        refuse(
            422,
            "an Encounter needs a diagnosis: a reasonCode with an ICD-10 coding "
            f"({cv.ICD10}), or diagnosis.condition referencing a Condition of the same Bundle",
            f"{path}.reasonCode",
        )
    for _, source in sources:
        code = _code_in(source.resource.get("code"), cv.ICD10_INPUT, f"{source.path}.code")
        if code is not None:
            return code[0], code[1], source.full_url
    where, source = sources[0]
    refuse(
        422,
        f"the diagnosis needs an ICD-10 code ({cv.ICD10}); the Condition carries only "
        f"{', '.join(_systems(source.resource.get('code'))) or 'no coding'} (rules match drugs to ICD-10 indications)",
        f"{source.path}.code",
    )


def map_encounter(r: dict[str, Any], ctx: Context, path: str, entry: Entry | None = None) -> Mapped:
    """Encounter: class VR -> consultation.open (+ .close when finished); any other class -> encounter.record."""
    klass = r.get("class")
    code = klass.get("code") if isinstance(klass, dict) else None
    patient = _patient(ctx, r.get("subject"), f"{path}.subject")
    diagnosis, dx_path, condition_url = _diagnosis(r, ctx, path, entry)
    period: dict[str, Any] = r["period"] if isinstance(r.get("period"), dict) else {}
    if code != cv.ENCOUNTER_CLASS_VIRTUAL:
        return _offline(r, ctx, path, patient, diagnosis, dx_path, condition_url, period, entry)
    consultation_id, id_path = _record_id(r, path, "consultation id")
    doctor: str | None = None
    for i, part in enumerate(_list(r.get("participant"))):
        individual = part.get("individual") if isinstance(part, dict) else None
        ref = individual.get("reference") if isinstance(individual, dict) else None
        if isinstance(ref, str) and ("Practitioner/" in ref or ref.startswith("urn:")):
            where = f"{path}.participant[{i}].individual"
            licence = _practitioner_licence(ctx, individual, where, "the consulting doctor")
            doctor, _ = _doctor_of(ctx, licence, f"{where}.reference")
            break
    caller = _member_state(ctx, ctx.member) or {}
    if doctor is None and caller.get("role") != "doctor":
        refuse(
            422,
            "an online consultation needs participant.individual = Practitioner/<licence> (the doctor who "
            "consulted), unless a doctor's own credential sends it",
            f"{path}.participant",
        )
    specialty = _code_in(r.get("serviceType"), cv.CS_SPECIALTY, f"{path}.serviceType")
    if specialty is None:
        refuse(
            422,
            f"an online consultation needs serviceType coded in {cv.CS_SPECIALTY} (its specialty)",
            f"{path}.serviceType",
        )
    started = instant(period.get("start"), f"{path}.period.start", "period.start")
    payload: dict[str, Any] = {
        "consultation_id": consultation_id,
        "patient": patient,
        "specialty": specialty[0],
        "diagnosis": diagnosis,
        "started_at": started,
    }
    if doctor is not None:
        payload["doctor"] = doctor
    for part_of in _list(r.get("partOf")):
        _, prior_id, _ = reference(ctx, part_of, f"{path}.partOf", "Encounter", "partOf (the prior offline encounter)")
        payload["prior"] = _prior(ctx, prior_id, f"{path}.partOf.reference")
    for ext in _list(r.get("extension")):
        if isinstance(ext, dict) and ext.get("url") == cv.EXT_APP:
            payload["app"] = ext.get("valueCode")
    paths = {
        "consultation_id": id_path,
        "patient": f"{path}.subject",
        "specialty": specialty[1],
        "diagnosis": dx_path,
        "started_at": f"{path}.period.start",
        "prior": f"{path}.partOf",
        "app": f"{path}.extension",
        "doctor": f"{path}.participant",
    }
    _contract(m.ConsultationOpen, payload, paths, path)
    txs: list[tuple[str, dict[str, Any]]] = [("consultation.open", payload)]
    if r.get("status") == "finished" and period.get("end") is not None:
        close = {
            "consultation_id": consultation_id,
            "ended_at": instant(period["end"], f"{path}.period.end", "period.end"),
        }
        txs.append(("consultation.close", close))
    if ctx.bundle is not None and entry is not None and entry.full_url is not None:
        ctx.bundle.encounter_kind[entry.full_url] = "online"
        if condition_url is not None:
            ctx.bundle.conditions_used[condition_url] = (cv.condition_id_for_consultation(consultation_id), entry.index)
    return Mapped("Encounter", consultation_id, txs, _echo(r, consultation_id))


def _prior(ctx: Context, document: str, where: str) -> dict[str, str]:
    if cv.HEX64.fullmatch(document) is None:
        refuse(422, "partOf must reference an offline Encounter by its document digest (Encounter/<64 hex>)", where)
    if ctx.bundle is not None and document in ctx.bundle.offline:
        return ctx.bundle.offline[document]
    record = ctx.get("dx/" + document)
    if not isinstance(record, dict):
        refuse(422, f"no offline encounter with document digest {document} is on the ledger", where)
    return {"document": document, "org": record["org"], "date": record["date"], "diagnosis": record["diagnosis"]}


def _offline(
    r: dict[str, Any],
    ctx: Context,
    path: str,
    patient: str,
    diagnosis: str,
    dx_path: str,
    condition_url: str | None,
    period: Mapping[str, Any],
    entry: Entry | None,
) -> Mapped:
    document = cv.resource_digest(r).hex()
    found = _identifier(r, cv.SID_RECORD, path)
    if found is not None:
        encounter_id, id_path = found
    elif entry is not None and entry.full_url is not None and entry.full_url.startswith("urn:uuid:"):
        encounter_id = cv.record_id_from_uuid(entry.full_url[len("urn:uuid:") :])
        id_path = f"{entry.path.rsplit('.', 1)[0]}.fullUrl"
    elif isinstance(r.get("id"), str):
        encounter_id, id_path = r["id"], f"{path}.id"
    else:
        refuse(422, f"an offline Encounter needs an identifier with system {cv.SID_RECORD}", f"{path}.identifier")
    payload = {
        "encounter_id": encounter_id,
        "patient": patient,
        "date": day(period.get("start"), f"{path}.period.start", "period.start"),
        "diagnosis": diagnosis,
        "document": document,
    }
    _contract(
        m.Encounter,
        payload,
        {"encounter_id": id_path, "patient": f"{path}.subject", "date": f"{path}.period.start", "diagnosis": dx_path},
        path,
    )
    if ctx.bundle is not None and entry is not None and entry.full_url is not None:
        ctx.bundle.encounter_kind[entry.full_url] = "offline"
        if ctx.org is not None:
            ctx.bundle.offline[document] = {
                "document": document,
                "org": ctx.org,
                "date": payload["date"],
                "diagnosis": diagnosis,
            }
        if condition_url is not None:
            ctx.bundle.conditions_used[condition_url] = (cv.condition_id_for_document(document), entry.index)
    return Mapped("Encounter", document, [("encounter.record", payload)], _echo(r, document))


# --- MedicationRequest and its Provenance ----------------------------------------------------------------

_DURATION_DAYS = {"d": 1, "wk": 7}
_PERIOD_DAYS = {"d": Fraction(1), "wk": Fraction(7), "h": Fraction(1, 24), "min": Fraction(1, 1440)}


def _number(value: Any, where: str, what: str) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        refuse(422, f"{what} needs a number", where)
    try:
        return Fraction(Decimal(repr(value)) if isinstance(value, float) else value)
    except (InvalidOperation, ValueError):
        refuse(422, f"{what} {value!r} is not a finite number", where)


def _whole(value: Fraction, where: str, what: str) -> int:
    if value.denominator != 1:
        refuse(422, f"{what} must be a whole number of units, got {float(value):g}", where)
    return int(value)


def _daily_units(r: dict[str, Any], path: str) -> int:
    dosages = _list(r.get("dosageInstruction"))
    base = f"{path}.dosageInstruction[0]"
    if not dosages or not isinstance(dosages[0], dict):
        refuse(
            422,
            "a MedicationRequest needs dosageInstruction (dose, frequency and period) to count daily units",
            f"{path}.dosageInstruction",
        )
    dosage = dosages[0]
    rates = _list(dosage.get("doseAndRate"))
    dose = rates[0].get("doseQuantity") if rates and isinstance(rates[0], dict) else None
    if not isinstance(dose, dict):
        refuse(422, "dosageInstruction[0] needs doseAndRate[0].doseQuantity (units per dose)", f"{base}.doseAndRate")
    units = _number(dose.get("value"), f"{base}.doseAndRate[0].doseQuantity.value", "doseQuantity.value")
    repeat = ((dosage.get("timing") or {}).get("repeat")) or {}
    frequency = repeat.get("frequency", 1)
    period = repeat.get("period")
    unit = repeat.get("periodUnit")
    if period is None or unit is None:
        refuse(
            422,
            "dosageInstruction[0] needs timing.repeat.period and periodUnit (e.g. 2 per 1 d)",
            f"{base}.timing.repeat",
        )
    if unit not in _PERIOD_DAYS:
        refuse(
            422,
            f"timing.repeat.periodUnit {unit!r} cannot be counted in days exactly (use min, h, d or wk)",
            f"{base}.timing.repeat.periodUnit",
        )
    per_day = (
        units
        * _number(frequency, f"{base}.timing.repeat.frequency", "frequency")
        / (_number(period, f"{base}.timing.repeat.period", "period") * _PERIOD_DAYS[unit])
    )
    return _whole(
        per_day, f"{base}.doseAndRate[0].doseQuantity.value", "doseQuantity x frequency / period (units per day)"
    )


def _days(r: dict[str, Any], path: str) -> int:
    base = f"{path}.dispenseRequest.expectedSupplyDuration"
    duration = (r.get("dispenseRequest") or {}).get("expectedSupplyDuration")
    if not isinstance(duration, dict):
        refuse(422, "a MedicationRequest needs dispenseRequest.expectedSupplyDuration (days of supply)", base)
    unit = duration.get("code") or duration.get("unit")
    if unit not in _DURATION_DAYS:
        refuse(
            422,
            f"expectedSupplyDuration must be in d or wk (UCUM), not {unit!r}: a month is not a fixed number of days",
            f"{base}.code",
        )
    return _whole(
        _number(duration.get("value"), f"{base}.value", "expectedSupplyDuration.value") * _DURATION_DAYS[unit],
        f"{base}.value",
        "expectedSupplyDuration",
    )


def _provenance_for(ctx: Context, entry: Entry | None, rx_id: str) -> tuple[Entry, int] | None:
    """The Provenance entry of the Bundle whose target is this MedicationRequest (and which target)."""
    if ctx.bundle is None:
        return None
    names = {f"MedicationRequest/{rx_id}"}
    if entry is not None and entry.full_url is not None:
        names.add(entry.full_url)
    for other in ctx.bundle.entries:
        if other.resource.get("resourceType") != "Provenance":
            continue
        for i, target in enumerate(_list(other.resource.get("target"))):
            if isinstance(target, dict) and target.get("reference") in names:
                return other, i
    return None


def _prescriber(ctx: Context, r: dict[str, Any], prov: Entry) -> dict[str, str]:
    """Verify the doctor's signature a Provenance carries over this MedicationRequest; the payload block."""
    signatures = _list(prov.resource.get("signature"))
    base = f"{prov.path}.signature[0]"
    if not signatures or not isinstance(signatures[0], dict):
        refuse(
            422,
            "the Provenance of a prescription needs signature[0] (the doctor's Ed25519 signature)",
            f"{prov.path}.signature",
        )
    sig = signatures[0]
    licence = _practitioner_licence(ctx, sig.get("who"), f"{base}.who", "signature.who")
    member, record = _doctor_of(ctx, licence, f"{base}.who.reference")
    data = sig.get("data")
    try:
        raw = base64.b64decode(data, validate=True) if isinstance(data, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        refuse(422, "signature.data must be the base64 of a 64-byte Ed25519 signature", f"{base}.data")
    digest = cv.resource_digest(r)
    kid = str(record.get("key"))
    domain, message = cv.resource_signing_message(digest)
    if not keys.is_valid(domain, keys.public_key_bytes(kid), message, raw):
        refuse(
            422,
            f"the signature does not verify under the active key of {member} (licence {licence}) over the "
            f"RFC 8785 digest {digest.hex()} of the MedicationRequest as posted; nothing was written",
            f"{base}.data",
        )
    return {"member": member, "key": kid, "resource_sha256": digest.hex(), "signature": b64e(raw)}


def map_medication_request(r: dict[str, Any], ctx: Context, path: str, entry: Entry | None = None) -> Mapped:
    """MedicationRequest -> prescription.issue, with the doctor's signature from a Provenance beside it."""
    rx_id, id_path = _record_id(r, path, "prescription id (rx_id)")
    rxnorm = _code_in(r.get("medicationCodeableConcept"), cv.RXNORM, f"{path}.medicationCodeableConcept")
    if rxnorm is None:
        refuse(
            422,
            f"a MedicationRequest needs medicationCodeableConcept with an RxNorm coding ({cv.RXNORM})",
            f"{path}.medicationCodeableConcept",
        )
    _, encounter, url = reference(ctx, r.get("encounter"), f"{path}.encounter", "Encounter", "the consultation")
    kind = ctx.bundle.encounter_kind.get(url) if ctx.bundle is not None and url is not None else None
    if kind == "offline" or (kind is None and cv.HEX64.fullmatch(encounter) is not None):
        refuse(
            422,
            "a prescription follows an online consultation (an Encounter of class VR), not offline care",
            f"{path}.encounter.reference",
        )
    quantity = (r.get("dispenseRequest") or {}).get("quantity")
    if not isinstance(quantity, dict):
        refuse(
            422,
            "a MedicationRequest needs dispenseRequest.quantity (units to dispense)",
            f"{path}.dispenseRequest.quantity",
        )
    payload: dict[str, Any] = {
        "rx_id": rx_id,
        "consultation_id": encounter,
        "rxnorm": rxnorm[0],
        "daily_units": _daily_units(r, path),
        "days": _days(r, path),
        "quantity": _whole(
            _number(quantity.get("value"), f"{path}.dispenseRequest.quantity.value", "quantity"),
            f"{path}.dispenseRequest.quantity.value",
            "dispenseRequest.quantity",
        ),
        "issued_at": instant(r.get("authoredOn"), f"{path}.authoredOn", "authoredOn"),
    }
    found = _provenance_for(ctx, entry, rx_id)
    if found is not None:
        payload["prescriber"] = _prescriber(ctx, r, found[0])
        assert ctx.bundle is not None
        ctx.bundle.provenance_used[found[0].index] = (cv.provenance_id(rx_id), entry.index if entry else -1)
    _contract(
        m.PrescriptionIssue,
        payload,
        {
            "rx_id": id_path,
            "consultation_id": f"{path}.encounter",
            "rxnorm": rxnorm[1],
            "daily_units": f"{path}.dosageInstruction[0]",
            "days": f"{path}.dispenseRequest.expectedSupplyDuration",
            "quantity": f"{path}.dispenseRequest.quantity",
            "issued_at": f"{path}.authoredOn",
            "prescriber": f"{path}",
        },
        path,
    )
    return Mapped("MedicationRequest", rx_id, [("prescription.issue", payload)], _echo(r, rx_id))


# --- dispense, claim, adverse event, anchors -------------------------------------------------------------


def map_medication_dispense(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """MedicationDispense -> prescription.dispense against the authorising prescription."""
    dispense_id, id_path = _record_id(r, path, "dispense id")
    prescriptions = _list(r.get("authorizingPrescription"))
    if not prescriptions:
        refuse(
            422,
            "a MedicationDispense needs authorizingPrescription (MedicationRequest/<rx_id>)",
            f"{path}.authorizingPrescription",
        )
    _, rx_id, _ = reference(
        ctx, prescriptions[0], f"{path}.authorizingPrescription[0]", "MedicationRequest", "the authorising prescription"
    )
    quantity = r.get("quantity")
    if not isinstance(quantity, dict):
        refuse(422, "a MedicationDispense needs quantity (units handed out)", f"{path}.quantity")
    when_path = f"{path}.whenHandedOver" if r.get("whenHandedOver") else f"{path}.whenPrepared"
    payload = {
        "dispense_id": dispense_id,
        "rx_id": rx_id,
        "quantity": _whole(
            _number(quantity.get("value"), f"{path}.quantity.value", "quantity"), f"{path}.quantity.value", "quantity"
        ),
        "dispensed_at": instant(
            r.get("whenHandedOver") or r.get("whenPrepared"), when_path, "whenHandedOver (or whenPrepared)"
        ),
    }
    _contract(
        m.Dispense,
        payload,
        {
            "dispense_id": id_path,
            "rx_id": f"{path}.authorizingPrescription[0]",
            "quantity": f"{path}.quantity",
            "dispensed_at": when_path,
        },
        path,
    )
    return Mapped("MedicationDispense", dispense_id, [("prescription.dispense", payload)], _echo(r, dispense_id))


def map_claim(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """Claim -> claim.submit: the dispense it pays (supportingInfo.valueReference) and its total in fen."""
    claim_id, id_path = _record_id(r, path, "claim id")
    dispense: str | None = None
    for i, info in enumerate(_list(r.get("supportingInfo"))):
        value = info.get("valueReference") if isinstance(info, dict) else None
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            ref = value["reference"]
            if "MedicationDispense/" in ref or ref.startswith("urn:"):
                _, dispense, _ = reference(
                    ctx,
                    value,
                    f"{path}.supportingInfo[{i}].valueReference",
                    "MedicationDispense",
                    "the dispense claimed",
                )
                break
    if dispense is None:
        refuse(
            422,
            "a Claim needs supportingInfo[].valueReference = MedicationDispense/<dispense_id> (what it pays for)",
            f"{path}.supportingInfo",
        )
    total = r.get("total")
    if not isinstance(total, dict) or total.get("value") is None:
        refuse(422, "a Claim needs total (value and currency CNY)", f"{path}.total")
    if total.get("currency") != "CNY":
        refuse(
            422,
            f"total.currency must be CNY (amounts are compared with the formulary's prices), not "
            f"{total.get('currency')!r}",
            f"{path}.total.currency",
        )
    fen = _number(total.get("value"), f"{path}.total.value", "total.value") * 100
    payload = {
        "claim_id": claim_id,
        "dispense_id": dispense,
        "amount_fen": _whole(fen, f"{path}.total.value", "total.value in fen (1/100 CNY)"),
    }
    _contract(
        m.ClaimSubmit,
        payload,
        {"claim_id": id_path, "dispense_id": f"{path}.supportingInfo", "amount_fen": f"{path}.total.value"},
        path,
    )
    return Mapped("Claim", claim_id, [("claim.submit", payload)], _echo(r, claim_id))


def map_adverse_event(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """AdverseEvent -> report.adverse-event: fixed categories, seriousness, the suspected drug, when."""
    report_id, id_path = _record_id(r, path, "report id")
    category = _code_in(r.get("category"), cv.CS_ADVERSE_CATEGORY, f"{path}.category")
    if category is None:
        refuse(
            422,
            f"an AdverseEvent needs category coded in {cv.CS_ADVERSE_CATEGORY} ({', '.join(_ADVERSE)})",
            f"{path}.category",
        )
    seriousness = _code_in(r.get("seriousness"), cv.CS_SERIOUSNESS, f"{path}.seriousness")
    serious: str | None = seriousness[0] if seriousness else None
    if serious is None:
        hl7 = _code_in(r.get("seriousness"), _HL7_SERIOUSNESS_SYSTEM, f"{path}.seriousness")
        if hl7 is not None:
            serious = {"Non-serious": "non-serious", "SeriousResultsInDeath": "death"}.get(
                hl7[0], "serious" if hl7[0].startswith("Serious") else None
            )
    if serious is None:
        refuse(
            422,
            f"an AdverseEvent needs seriousness coded in {cv.CS_SERIOUSNESS} ({', '.join(_SERIOUSNESS)}) or "
            f"{_HL7_SERIOUSNESS_SYSTEM}",
            f"{path}.seriousness",
        )
    payload: dict[str, Any] = {
        "report_id": report_id,
        "category": category[0],
        "seriousness": serious,
        "occurred_at": instant(r.get("date"), f"{path}.date", "date"),
        "anonymous": False,
    }
    if ctx.org is not None and isinstance(ctx.get("inst/" + ctx.org), dict):
        payload["org"] = ctx.org
    for i, suspect in enumerate(_list(r.get("suspectEntity"))):
        inst = suspect.get("instance") if isinstance(suspect, dict) else None
        where = f"{path}.suspectEntity[{i}].instance"
        ident = inst.get("identifier") if isinstance(inst, dict) else None
        if isinstance(ident, dict) and ident.get("system") == cv.RXNORM:
            payload["rxnorm"] = ident.get("value")
            break
        ref = inst.get("reference") if isinstance(inst, dict) else None
        if isinstance(ref, str) and "MedicationRequest/" in ref:
            _, rx_id, _ = reference(ctx, inst, where, "MedicationRequest", "the suspected prescription")
            rx = ctx.get("rx/" + rx_id)
            if not isinstance(rx, dict):
                refuse(422, f"no accepted prescription {rx_id!r} on the ledger", f"{where}.reference")
            payload["rxnorm"] = rx["rxnorm"]
            break
    _contract(
        m.AdverseEventReport,
        payload,
        {
            "report_id": id_path,
            "category": category[1],
            "seriousness": f"{path}.seriousness",
            "occurred_at": f"{path}.date",
            "rxnorm": f"{path}.suspectEntity",
        },
        path,
    )
    return Mapped("AdverseEvent", report_id, [("report.adverse-event", payload)], _echo(r, report_id))


def letters_id() -> str:
    """A facade-assigned id: letters only (record ids refuse long digit runs, and FHIR ids refuse '_')."""
    return "".join(secrets.choice(string.ascii_lowercase) for _ in range(24))


def map_anchor(r: dict[str, Any], ctx: Context, path: str) -> Mapped:
    """Consent, AuditEvent -> anchor.record of the resource's digest: the ledger proves it existed, unread."""
    kind = str(r["resourceType"])
    logical = letters_id()
    digest = cv.resource_digest(r).hex()
    payload = {"label": cv.anchor_label(kind, logical), "sha256": digest}
    return Mapped(kind, logical, [("anchor.record", payload)], _echo(r, logical))


Mapper = Callable[[dict[str, Any], Context, str], Mapped]
MAPPERS: dict[str, Mapper] = {
    "Patient": map_patient,
    "Practitioner": map_practitioner,
    "PractitionerRole": map_practitioner_role,
    "Organization": map_organization,
    "MedicationDispense": map_medication_dispense,
    "Claim": map_claim,
    "AdverseEvent": map_adverse_event,
    "Consent": map_anchor,
    "AuditEvent": map_anchor,
}


def map_entry(entry: Entry, ctx: Context) -> Mapped | None:
    """Map one resource; None for the Bundle-only types (Condition, Provenance), settled by their partners."""
    r = entry.resource
    kind = str(r["resourceType"])
    if kind in BUNDLE_ONLY:
        if ctx.bundle is None:
            refuse(
                422,
                "a Condition is recorded only as the diagnosis of an Encounter: send it in a transaction Bundle "
                "with that Encounter (diagnosis.condition)"
                if kind == "Condition"
                else "a Provenance is recorded only as the prescriber signature of a MedicationRequest: send it in "
                "a transaction Bundle with that MedicationRequest (target)",
                entry.path,
                code="not-supported",
            )
        return None
    check_patient_references(r, entry.path)
    if kind == "Encounter":
        return map_encounter(r, ctx, entry.path, entry)
    if kind == "MedicationRequest":
        return map_medication_request(r, ctx, entry.path, entry)
    return MAPPERS[kind](r, ctx, entry.path)
