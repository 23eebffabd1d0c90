"""What the FHIR facade's read side and write side must agree on, and nothing else.

Identifier systems, extension URLs, logical-id rules and the canonical
resource digest live here so a resource written through ``POST /fhir`` reads
back through ``GET /fhir`` with the same ids and the same systems, and so the
two sides never import each other's internals.

The resource digest (:func:`resource_digest`) is what a doctor signs (the
prescriber signature, issue 4), what an offline Encounter's logical id is, and
what ``anchor.record`` anchors for Consent and AuditEvent. It is
``sha256(RFC 8785(resource minus "id", "meta", "text"))`` over the JSON *as
received*: references are hashed as the client wrote them (a ``urn:uuid:``
reference inside a Bundle stays ``urn:uuid:...``), and FHIR decimals are
hashed as RFC 8785 numbers (IEEE-754 doubles serialised per RFC 8785
§3.2.2.3), so ``1.0`` and ``1`` digest alike — a client computing the digest
must parse the JSON as numbers, not keep the decimal's spelling. Integers
beyond ±2**53-1 cannot be digested exactly and are refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

import rfc8785

from medledger.errors import EncodingError
from medledger.ledger.canonical import canonical_bytes
from medledger.ledger.keys import RESOURCE_DOMAIN

# --- identifier and code systems -------------------------------------------------------------
#: what the server assigns to every stored version; a client's copies of them are replaced, never kept
SERVER_FIELDS: Final = ("resourceType", "id", "meta")

SID_LICENCE: Final = "https://medledger.dev/fhir/sid/licence"
SID_MEMBER: Final = "https://medledger.dev/fhir/sid/member"
SID_ORG: Final = "https://medledger.dev/fhir/sid/org"
#: rx_id, dispense_id, claim_id, consultation_id, encounter_id, report_id
SID_RECORD: Final = "https://medledger.dev/fhir/sid/record"
SID_DOCUMENT_SHA256: Final = "https://medledger.dev/fhir/sid/document-sha256"
RXNORM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
ICD10: Final = "http://hl7.org/fhir/sid/icd-10"
#: ICD-10 spellings accepted on input; output always uses :data:`ICD10`
ICD10_INPUT: Final = frozenset({ICD10, "http://hl7.org/fhir/sid/icd-10-cm"})
CODE_SYSTEM_BASE: Final = "https://medledger.dev/fhir/CodeSystem/"
STRUCTURE_BASE: Final = "https://medledger.dev/fhir/StructureDefinition/"


def code_system(name: str) -> str:
    """The medledger CodeSystem URL for one of our enums (qualification, filing, adverse-category...)."""
    return CODE_SYSTEM_BASE + name


# --- extensions and tags ---------------------------------------------------------------------
#: valueString in ``meta.extension``: the id of the transaction behind the resource
EXT_TX_ID: Final = STRUCTURE_BASE + "tx-id"
#: valueCode ACCEPTED / ACCEPTED_WITH_ALERTS in ``meta.extension``
EXT_LEDGER_STATUS: Final = STRUCTURE_BASE + "ledger-status"
#: system of the ``meta.tag`` codings carrying contract alert rule codes
RULE_SYSTEM: Final = code_system("rule")
#: valueString "YYYY-MM" on Patient: the only birth information the ledger keeps
EXT_BIRTH_MONTH: Final = STRUCTURE_BASE + "birth-month"

# --- logical ids -----------------------------------------------------------------------------
FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
HEX64 = re.compile(r"[0-9a-f]{64}")


def is_fhir_id(value: str) -> bool:
    """R4 ``id``: ledger ids outside this shape are refused on write and skipped on read."""
    return FHIR_ID.fullmatch(value) is not None


#: a UUID's digits as the letters hex never uses (0 -> g ... 9 -> p): one-to-one, and no digit run
_UUID_DIGITS: Final = str.maketrans("0123456789", "ghijklmnop")


def record_id_from_uuid(uuid: str) -> str:
    """The record id of an entry known only by its ``urn:uuid:`` fullUrl.

    A UUID holds long digit runs, which record ids refuse (they could be phone
    or ID numbers, ledger.syntax), so its digits become letters: lowercase,
    one-to-one, the same id for the same UUID.
    """
    return "u-" + uuid.lower().translate(_UUID_DIGITS)


def practitioner_role_id(licence: str, org: str) -> str:
    return f"{licence}.{org}"


def condition_id_for_consultation(consultation_id: str) -> str:
    return f"c.{consultation_id}"


def condition_id_for_document(digest_hex: str) -> str:
    return f"d.{digest_hex[:62]}"


def provenance_id(rx_id: str) -> str:
    return f"rx.{rx_id}"


#: resource types anchored by ``anchor.record``, and their kind in the label (labels are lowercase: ledger.syntax)
ANCHOR_KINDS: Final = {"Consent": "consent", "AuditEvent": "audit-event"}
#: label kind -> resource type; ledgers from before issue 12 spelt the kind as the type itself (fhir/Consent/<id>)
_ANCHORED_BY_KIND: Final = {
    **{resource_type: resource_type for resource_type in ANCHOR_KINDS},
    **{kind: resource_type for resource_type, kind in ANCHOR_KINDS.items()},
}


def anchor_label(resource_type: str, logical_id: str) -> str:
    """``anchor.record`` label for resources with no contract type of their own: ``fhir/consent/<id>``."""
    return f"fhir/{ANCHOR_KINDS[resource_type]}/{logical_id}"


def anchored_resource(label: str) -> tuple[str, str] | None:
    """(resource type, logical id) an :func:`anchor_label` names, or None for any other label."""
    parts = label.split("/")
    if len(parts) != 3 or parts[0] != "fhir" or parts[1] not in _ANCHORED_BY_KIND:
        return None
    return _ANCHORED_BY_KIND[parts[1]], parts[2]


# --- canonical resource digest ---------------------------------------------------------------
_NOT_HASHED: Final = frozenset({"id", "meta", "text"})


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_float(v) for v in value)
    return False


def canonical_resource(resource: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of the resource minus ``id``, ``meta`` and ``text`` (the parts a server may rewrite)."""
    body = {k: v for k, v in resource.items() if k not in _NOT_HASHED}
    if not _has_float(body):
        return canonical_bytes(body)  # fast path; also refuses unsafe integers
    try:
        return rfc8785.dumps(body)
    except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
        raise EncodingError(f"resource cannot be canonicalised (RFC 8785): {exc}", code="malformed") from exc


def resource_digest(resource: Mapping[str, Any]) -> bytes:
    """SHA-256 of :func:`canonical_resource`: the one digest a resource is signed and anchored by."""
    return hashlib.sha256(canonical_resource(resource)).digest()


def resource_signing_message(digest: bytes) -> tuple[bytes, bytes]:
    """(domain, message) a prescriber signs: Ed25519 over ``RESOURCE_DOMAIN + digest`` (hash-then-sign)."""
    return RESOURCE_DOMAIN, digest


# --- write-side vocabulary (documented in docs/fhir.md "Writing"; the read side renders the same) ----------
#: valueCode on an online Encounter: the mobile app (``app/<org>/<app>``) the consultation ran through
EXT_APP: Final = STRUCTURE_BASE + "app"
#: valueBoolean on Organization: whether the institution has physical premises (offline care happens there)
EXT_PHYSICAL: Final = STRUCTURE_BASE + "physical-premises"
#: CodeSystem names (see :func:`code_system`) of the contracts' enums
CS_QUALIFICATION: Final = code_system("qualification")
CS_SPECIALTY: Final = code_system("specialty")
CS_FILING: Final = code_system("filing")
CS_INSTITUTION_KIND: Final = code_system("institution-kind")
CS_ADVERSE_CATEGORY: Final = code_system("adverse-category")
CS_SERIOUSNESS: Final = code_system("seriousness")
#: v2-0203 identifier types (Patient.identifier.type)
V2_0203: Final = "http://terminology.hl7.org/CodeSystem/v2-0203"
#: v3-ActCode class of a virtual (online) encounter
ENCOUNTER_CLASS_VIRTUAL: Final = "VR"
