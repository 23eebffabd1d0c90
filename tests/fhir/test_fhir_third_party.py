"""Issue 4, acceptance 2: third-party FHIR client libraries work against the facade over real HTTP.

``fhirpy`` (Beda Software) and ``fhirclient`` (SMART on FHIR) are used as a
hospital integrator would: read the CapabilityStatement, create a Patient,
read it back, search by patient and practitioner, and page through a search
by following the server's ``next`` links. ``fhirclient`` parses every
response with its own R4 models, which refuse elements R4 does not define,
so it is also an independent check that what the facade serves is R4.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from fhir_read_world import ReadProvince, build
from fhirclient.models.capabilitystatement import CapabilityStatement
from fhirclient.models.encounter import Encounter
from fhirclient.models.medicationrequest import MedicationRequest
from fhirclient.models.patient import Patient as ClientPatient
from fhirclient.server import FHIRServer
from fhirpy import SyncFHIRClient

from medledger._serving import BackgroundServer
from medledger.api.fhir import conventions as cv
from medledger.api.fhir.projection import DB_NAME

#: privacy canaries: none of them may reach the ledger or the projection
CANARIES = ("Zebedee", "Canarywood", "999-41-7733", "555-0142-777")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReadProvince, str]]:
    p = build(tmp_path_factory.mktemp("fhir-third-party"))
    try:
        with BackgroundServer(p.w.node) as server:
            yield p, server.url + "/fhir"
    finally:
        p.w.close()


def fhirpy_client(p: ReadProvince, base: str, who: str) -> SyncFHIRClient:
    return SyncFHIRClient(base, authorization=p.headers[who]["authorization"])


def a_synthetic_patient() -> dict[str, Any]:
    """A Patient as a hospital system sends it: a national identifier, name, phone and address included."""
    return {
        "resourceType": "Patient",
        "identifier": [
            {
                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "SS"}]},
                "system": "http://hl7.org/fhir/sid/us-ssn",
                "value": CANARIES[2],
            }
        ],
        "name": [{"family": CANARIES[1], "given": [CANARIES[0]]}],
        "telecom": [{"system": "phone", "value": CANARIES[3]}],
        "gender": "female",
        "birthDate": "1990-04-12",
    }


def test_fhirpy_reads_the_capability_statement_creates_reads_and_searches(
    served: tuple[ReadProvince, str],
) -> None:
    p, base = served
    client = fhirpy_client(p, base, "hosp")
    capability = client.execute("metadata", method="get")
    assert capability["resourceType"] == "CapabilityStatement" and capability["fhirVersion"] == "4.0.1"
    patient_caps = next(r for r in capability["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"create", "read", "search-type"} == {i["code"] for i in patient_caps["interaction"]}

    patient = client.resource("Patient", **a_synthetic_patient())
    patient.save()
    assert patient["id"] and cv.HEX64.fullmatch(patient["id"]), patient.serialize()
    read = client.reference("Patient", patient["id"]).to_resource()
    assert read["id"] == patient["id"]
    assert [e["valueString"] for e in read["extension"] if e["url"] == cv.EXT_BIRTH_MONTH] == ["1990-04"]
    assert "name" not in read and "identifier" not in read and "telecom" not in read
    found = client.resources("Patient").search(_id=patient["id"]).fetch_all()
    assert [r["id"] for r in found] == [patient["id"]]

    alice = p.facts["alice"]
    encounters = client.resources("Encounter").search(patient=f"Patient/{alice}").fetch_all()
    assert {e["id"] for e in encounters} == {p.facts["cid"]}  # the clinic's offline encounter is not the hospital's
    requests = client.resources("MedicationRequest").search(practitioner="Practitioner/DOC-0001").fetch_all()
    assert [r["id"] for r in requests] == [p.facts["rx_id"]]


def test_fhirpy_pages_by_following_next_links(served: tuple[ReadProvince, str]) -> None:
    p, base = served
    client = fhirpy_client(p, base, "regulator")
    expected = client.resources("Condition").search(_count=500).fetch()
    paged = client.resources("Condition").limit(2).fetch_all()
    assert [c["id"] for c in paged] == [c["id"] for c in expected] and len(paged) >= 3
    assert client.resources("Condition").count() == len(paged)


def test_fhirclient_parses_what_the_facade_serves_with_its_r4_models(served: tuple[ReadProvince, str]) -> None:
    p, base = served
    server = FHIRServer(None, base_uri=base + "/")
    server.session.headers["Authorization"] = p.headers["regulator"]["authorization"]
    server.get_capability()
    capability = server.capabilityStatement
    assert isinstance(capability, CapabilityStatement) and capability.fhirVersion == "4.0.1"
    alice = p.facts["alice"]
    encounters = list(Encounter.where(struct={"patient": alice}).perform_resources_iter(server))
    assert {e.id for e in encounters} == {p.facts["cid"], p.facts["document"]}
    request = MedicationRequest.read(p.facts["rx_id"], server)
    assert request.subject.reference == f"Patient/{alice}"
    patient = ClientPatient.read(alice, server)
    assert patient.id == alice and patient.name is None


def test_no_canary_reaches_the_ledger_or_the_projection(served: tuple[ReadProvince, str]) -> None:
    p, base = served
    client = fhirpy_client(p, base, "hosp")
    client.resource("Patient", **a_synthetic_patient()).save()  # again: idempotent, still nothing personal kept
    client.resources("Patient").fetch()  # the projection has caught up
    for name in ("ledger.sqlite", DB_NAME):
        conn = sqlite3.connect(p.data / name)
        try:
            conn.execute("PRAGMA wal_checkpoint(FULL)")
        finally:
            conn.close()
    for path in p.data.rglob("*.sqlite*"):
        raw = path.read_bytes()
        for canary in CANARIES:
            assert canary.encode() not in raw, (canary, path.name)
