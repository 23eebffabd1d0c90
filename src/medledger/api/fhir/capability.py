"""The facade's CapabilityStatement: what ``GET /fhir/metadata`` promises, derived from what is served.

A FHIR client plans its requests from this statement, so it must not claim
more than works: no update, delete, history or vread; only the search
parameters :mod:`medledger.api.fhir.reads` actually applies (anything else is
refused with 400, not ignored); ``create`` and the transaction/batch
interactions only when the write routes are mounted on the app, and
``create`` not for Condition or Provenance, which the facade accepts only
inside a Bundle beside the Encounter or MedicationRequest they belong to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medledger.api.fhir import conventions as cv
from medledger.api.fhir.render import RESOURCE_TYPES

FHIR_VERSION = "4.0.1"
SOFTWARE_VERSION = "0.1.0"

#: search parameter -> (FHIR type, documentation), common to every type
COMMON_PARAMS: Mapping[str, tuple[str, str]] = {
    "_id": ("token", "logical id; several ids separated by commas"),
    "_lastUpdated": (
        "date",
        "when the ledger committed the resource's latest version (block time); prefixes eq, ge, gt, le, lt; "
        "repeat the parameter to bound a range",
    ),
    "_count": ("number", "page size: default 50, at most 500; 0 answers the total only"),
}
#: resource type -> its further search parameters
TYPE_PARAMS: Mapping[str, Mapping[str, tuple[str, str]]] = {
    "Encounter": {
        "patient": ("reference", "Patient/<pseudonym> or the bare pseudonym"),
        "practitioner": ("reference", "Practitioner/<licence>: the consulting doctor"),
    },
    "Condition": {"patient": ("reference", "Patient/<pseudonym> or the bare pseudonym")},
    "MedicationRequest": {
        "patient": ("reference", "Patient/<pseudonym> or the bare pseudonym"),
        "practitioner": ("reference", "Practitioner/<licence>: the prescriber (requester)"),
    },
    "MedicationDispense": {
        "patient": ("reference", "Patient/<pseudonym> or the bare pseudonym"),
        "practitioner": ("reference", "Practitioner/<licence>: the dispensing pharmacist (performer)"),
    },
    "Claim": {"patient": ("reference", "Patient/<pseudonym> or the bare pseudonym")},
    "Provenance": {
        "patient": ("reference", "Patient/<pseudonym> of the signed prescription"),
        "practitioner": ("reference", "Practitioner/<licence>: the signing doctor"),
    },
    "PractitionerRole": {"practitioner": ("reference", "Practitioner/<licence>")},
}
#: result and format parameters accepted everywhere beside the search parameters, with the values they may
#: take (None: any; ``_cursor`` is checked as a page cursor). Totals are always exact, so every ``_total``
#: (FHIR R4) and ``_totalMethod`` (fhirpy's spelling) is honoured; ``_summary=count`` answers the total only.
CONTROL_PARAMS: Mapping[str, frozenset[str] | None] = {
    "_format": None,
    "_cursor": None,
    "_total": frozenset({"none", "estimate", "accurate"}),
    "_totalMethod": frozenset({"count", "estimate", "accurate"}),
    "_summary": frozenset({"count", "false"}),
}
#: types a single ``POST /fhir/<Type>`` creates (Condition and Provenance travel in Bundles only)
CREATABLE = frozenset(RESOURCE_TYPES) - {"Condition", "Provenance"}


def search_params(resource_type: str) -> dict[str, tuple[str, str]]:
    return {**COMMON_PARAMS, **TYPE_PARAMS.get(resource_type, {})}


def capability_statement(base_url: str, *, writes: bool, date: str) -> dict[str, Any]:
    """The statement for a server at ``base_url`` (``.../fhir``); ``writes``: the write routes are mounted."""
    resources = []
    for resource_type in RESOURCE_TYPES:
        interactions = ["read", "search-type"]
        if writes and resource_type in CREATABLE:
            interactions.insert(0, "create")
        resources.append(
            {
                "type": resource_type,
                "interaction": [{"code": code} for code in interactions],
                "versioning": "versioned",
                "readHistory": False,
                "updateCreate": False,
                "conditionalCreate": False,
                "conditionalRead": "not-supported",
                "conditionalUpdate": False,
                "conditionalDelete": "not-supported",
                "searchParam": [
                    {"name": name, "type": kind, "documentation": doc}
                    for name, (kind, doc) in search_params(resource_type).items()
                ],
            }
        )
    rest: dict[str, Any] = {
        "mode": "server",
        "documentation": "Every resource is rendered from committed ledger transactions; meta.extension "
        f"{cv.EXT_TX_ID} names the transaction. Institutions see the resources their own members recorded; "
        "the regulator and auditors see all. Unsupported search parameters are refused (400) unless the "
        "request says `Prefer: handling=lenient`.",
        "security": {
            "cors": False,
            "service": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                            "code": "OAuth",
                            "display": "OAuth",
                        }
                    ],
                    "text": "Bearer credentials (`Authorization: Bearer <token>`) bound to a ledger member",
                }
            ],
            "description": "Bearer tokens are issued per ledger member (`medledger credentials issue`); what a "
            "member may read and write is decided from ledger state at each request.",
        },
        "resource": resources,
    }
    if writes:
        rest["interaction"] = [
            {"code": "transaction", "documentation": "all entries or none; entries are processed in Bundle order"},
            {"code": "batch", "documentation": "each entry on its own"},
        ]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "medledger",
        "kind": "instance",
        "software": {"name": "medledger", "version": SOFTWARE_VERSION},
        "implementation": {"description": "medledger FHIR R4 facade over a supervision ledger", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [rest],
    }
