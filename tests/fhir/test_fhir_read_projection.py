"""The read projection: every accepted transaction of a mapped type becomes a valid R4 resource.

A province is built through the native path (signed envelopes through a real
node), then read back through ``GET /fhir`` with the regulator's credential.
Each resource must validate against the ``fhir.resources`` R4B model of its
type and carry ``meta.versionId``, ``meta.lastUpdated`` (the block time) and
the tx-id extension naming the transaction behind it; REJECTED transactions
and ledger ids that are not FHIR ids never appear; deleting ``fhir.sqlite``
rebuilds exactly the same rows.
"""

from __future__ import annotations

import base64
import sqlite3
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir_read_world import ReadProvince, build

from medledger.api import create_app
from medledger.api.fhir import conventions as cv
from medledger.api.fhir.projection import DB_NAME, SCHEMA, Projection
from medledger.api.fhir.render import RESOURCE_TYPES
from medledger.ledger import keys
from medledger.ledger.timefmt import format_ms

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

FHIR_JSON = "application/fhir+json"


@pytest.fixture(scope="module")
def province(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReadProvince, TestClient]]:
    p = build(tmp_path_factory.mktemp("fhir-read"))
    try:
        with TestClient(create_app(p.w.node), headers=p.headers["regulator"]) as client:
            yield p, client
    finally:
        p.w.close()


def everything(client: TestClient, resource_type: str) -> list[dict[str, Any]]:
    """Every resource of a type, following `next` links."""
    found: list[dict[str, Any]] = []
    url: str | None = f"/fhir/{resource_type}?_count=7"
    while url is not None:
        r = client.get(url)
        assert r.status_code == 200, r.text
        bundle = r.json()
        found += [e["resource"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    return found


def tx_of(resource: dict[str, Any]) -> str:
    (tx_id,) = [e["valueString"] for e in resource["meta"]["extension"] if e["url"] == cv.EXT_TX_ID]
    return str(tx_id)


def block_time(p: ReadProvince, tx_id: str) -> str:
    record = p.w.node.store.tx(tx_id)
    assert record is not None, tx_id
    block = p.w.node.store.block(record.height)
    assert block is not None
    return str(orjson.loads(block.header_bytes)["timestamp"])


def test_every_rendered_resource_is_valid_r4_with_ledger_meta(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    seen: dict[str, int] = {}
    for resource_type in RESOURCE_TYPES:
        resources = everything(client, resource_type)
        seen[resource_type] = len(resources)
        model = get_fhir_model_class(resource_type)
        for resource in resources:
            model.model_validate(resource)  # raises on anything R4B does not accept
            assert resource["resourceType"] == resource_type and cv.is_fhir_id(resource["id"])
            meta = resource["meta"]
            assert int(meta["versionId"]) >= 1
            tx_id = tx_of(resource)
            assert meta["lastUpdated"] == block_time(p, tx_id)
            record = p.w.node.store.tx(tx_id)
            assert record is not None
            assert orjson.loads(record.outcome)["status"] in ("ACCEPTED", "ACCEPTED_WITH_ALERTS")
    assert all(seen[t] >= 1 for t in RESOURCE_TYPES), seen


def test_the_chain_of_one_prescription_reads_back(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    f = p.facts
    rx = client.get(f"/fhir/MedicationRequest/{f['rx_id']}")
    assert rx.status_code == 200 and rx.headers["content-type"].startswith(FHIR_JSON)
    assert rx.headers["etag"] == 'W/"1"'
    body = rx.json()
    assert tx_of(body) == f["rx_tx"]
    assert body["subject"] == {"reference": f"Patient/{f['alice']}"}
    assert body["requester"] == {"reference": "Practitioner/DOC-0001"}
    assert body["encounter"] == {"reference": f"Encounter/{f['cid']}"}
    dispense = client.get("/fhir/MedicationDispense/d-alice").json()
    assert dispense["authorizingPrescription"] == [{"reference": f"MedicationRequest/{f['rx_id']}"}]
    assert dispense["performer"] == [{"actor": {"reference": "Practitioner/PHA-0001"}}]
    claim = client.get("/fhir/Claim/k-alice").json()
    assert claim["supportingInfo"][0]["valueReference"] == {"reference": "MedicationDispense/d-alice"}
    assert claim["total"]["currency"] == "CNY"
    offline = client.get(f"/fhir/Encounter/{f['document']}").json()
    assert offline["class"]["code"] != "VR" and offline["serviceProvider"] == {"reference": "Organization/clinic"}
    condition = client.get(f"/fhir/Condition/{cv.condition_id_for_document(f['document'])}").json()
    assert condition["code"]["coding"][0] == {"system": cv.ICD10, "code": "I10"}


def test_a_closed_consultation_is_version_2_of_its_virtual_encounter(
    province: tuple[ReadProvince, TestClient],
) -> None:
    p, client = province
    r = client.get(f"/fhir/Encounter/{p.facts['cid']}")
    encounter = r.json()
    assert encounter["class"]["code"] == "VR"
    assert encounter["status"] == "finished" and encounter["meta"]["versionId"] == "2"
    assert r.headers["etag"] == 'W/"2"'
    assert encounter["period"]["end"] == format_ms(p.facts["close_ms"])
    assert encounter["partOf"] == {"reference": f"Encounter/{p.facts['document']}"}
    assert encounter["participant"] == [{"individual": {"reference": "Practitioner/DOC-0001"}}]


def test_the_prescribers_signature_in_provenance_verifies_from_the_resource(
    province: tuple[ReadProvince, TestClient],
) -> None:
    p, client = province
    provenance = client.get(f"/fhir/Provenance/{cv.provenance_id(p.facts['rx_id'])}").json()
    assert provenance["target"] == [{"reference": f"MedicationRequest/{p.facts['rx_id']}"}]
    (signature,) = provenance["signature"]
    assert signature["who"]["reference"] == "Practitioner/DOC-0001"
    digest = provenance["entity"][0]["what"]["identifier"]
    assert digest == {"system": cv.SID_DOCUMENT_SHA256, "value": p.facts["rx_digest"]}
    public = p.w.keys["hosp/dr-li"].public_key
    keys.verify(keys.RESOURCE_DOMAIN, public, bytes.fromhex(digest["value"]), base64.b64decode(signature["data"]))


def test_patients_carry_a_pseudonym_and_a_birth_month_and_nothing_else(
    province: tuple[ReadProvince, TestClient],
) -> None:
    p, client = province
    patient = client.get(f"/fhir/Patient/{p.facts['alice']}").json()
    assert set(patient) == {"resourceType", "id", "meta", "extension"}
    assert patient["extension"] == [{"url": cv.EXT_BIRTH_MONTH, "valueString": "1980-05"}]


def test_rejected_transactions_and_non_fhir_ids_are_not_resources(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    r = client.get("/fhir/MedicationRequest/rx-by-gateway")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"
    odd = client.get("/fhir/Encounter", params={"patient": p.facts["odd"]}).json()
    ids = [e["resource"]["id"] for e in odd.get("entry", [])]
    assert ids and all(":" not in i for i in ids)  # the offline encounter is there, the c:odd consultation is not
    assert all(e["resource"]["class"]["code"] != "VR" for e in odd["entry"])


def test_anchors_render_consent_and_audit_event_only_for_their_labels(
    province: tuple[ReadProvince, TestClient],
) -> None:
    _, client = province
    consent = client.get("/fhir/Consent/consent-a").json()
    assert consent["identifier"] == [{"system": cv.SID_DOCUMENT_SHA256, "value": "ab" * 32}]
    audit = client.get("/fhir/AuditEvent/audit-a").json()
    assert audit["entity"][0]["what"]["identifier"]["value"] == "cd" * 32
    assert client.get("/fhir/Consent").json()["total"] == 1


def _rows(path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return (
            conn.execute("SELECT * FROM resources ORDER BY type, id").fetchall()
            + conn.execute("SELECT * FROM readers ORDER BY type, id, org").fetchall()
        )
    finally:
        conn.close()


def test_deleting_the_projection_rebuilds_the_same_rows(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    projection: Projection = client.app.state.fhir_projection  # type: ignore[attr-defined]
    projection.catch_up()
    before = _rows(p.data / DB_NAME)
    assert len(before) > 50
    rebuilt_path = p.data / "rebuilt.sqlite"
    rebuilt = Projection(p.w.node, rebuilt_path)
    assert rebuilt.indexed_height == -1
    assert rebuilt.catch_up() == p.w.node.tip.height
    assert _rows(rebuilt_path) == before


def test_a_projection_of_another_schema_or_ledger_is_rebuilt(province: tuple[ReadProvince, TestClient]) -> None:
    p, _ = province
    path = p.data / "stale.sqlite"
    first = Projection(p.w.node, path)
    first.catch_up()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value='fhir-projection/0' WHERE key='schema'")
    conn.close()
    assert Projection(p.w.node, path).indexed_height == -1  # another schema: wiped
    again = Projection(p.w.node, path)
    again.catch_up()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value=? WHERE key='block_hash'", ("00" * 32,))
    conn.close()
    assert Projection(p.w.node, path).indexed_height == -1  # another ledger at that height: wiped
    assert SCHEMA.startswith("fhir-projection/")


def test_a_read_right_after_a_write_sees_it(province: tuple[ReadProvince, TestClient]) -> None:
    p, client = province
    receipt = p.w.ok("hosp/gw", "anchor.record", {"label": "fhir/consent/fresh", "sha256": "12" * 32})
    r = client.get("/fhir/Consent/fresh")
    assert r.status_code == 200, r.text
    assert tx_of(r.json()) == receipt.tx_id
