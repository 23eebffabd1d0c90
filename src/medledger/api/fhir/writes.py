"""The FHIR write side: ``POST /fhir/{Type}`` and ``POST /fhir`` (transaction and batch Bundles).

A request is checked in the order a client can act on: credential (401/403,
and a credential must be bound to a signing key, since the node signs the
ledger transactions with the member's own key), media type (415), size (413),
JSON (400), the resource against the R4 models of ``fhir.resources`` (400,
one issue per fault with its FHIRPath), whether the facade maps that type
(404 unknown, 422 known but unmapped), then the mapping (:mod:`.mapping`,
422 naming the element). Only then are envelopes built and submitted.

A transaction Bundle is all-or-nothing up to the ledger: every entry is
mapped first, and any fault refuses the whole Bundle with nothing written;
then all its envelopes go to the node as one list (admission is atomic). A
contract's REJECTED outcome is different: the ledger commits it as evidence
(a prescription a gateway signed alone is proof that someone tried), so the
Bundle answers ``transaction-response`` with that entry's 422 and its rule
codes. Entries are processed in Bundle order; FHIR's reordering of
transaction entries by method is not applied (every entry is a create).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import anyio.to_thread
import orjson
from fastapi import Depends, FastAPI, Path, Request
from fhir.resources.R4B import get_fhir_model_class
from starlette.responses import Response

from medledger.api.access import Caller, requires
from medledger.api.fhir import conventions as cv
from medledger.api.fhir import mapping, outcome, structure
from medledger.api.fhir.pseudonyms import Pseudonymiser
from medledger.api.fhir.structure import MAX_BUNDLE_ENTRIES
from medledger.errors import AccessError, MedledgerError
from medledger.ledger import envelope
from medledger.ledger.receipt import Receipt
from medledger.ledger.txtypes import REJECTED
from medledger.node.node import Node

#: one resource is a few kilobytes; a Bundle of a whole patient history a few megabytes
MAX_RESOURCE_BYTES = 1024 * 1024
MAX_BUNDLE_BYTES = 8 * 1024 * 1024
T = TypeVar("T")
FHIR_MEDIA_TYPES = frozenset({"application/fhir+json", "application/json"})


#: component schemas of the write side (the app's OpenAPI builder adds them; ``FhirResource`` and
#: ``OperationOutcome`` come from the read side and problems.py)
OPENAPI_SCHEMAS: dict[str, dict[str, Any]] = {
    "Bundle": {
        "type": "object",
        "description": "a FHIR R4 Bundle of type transaction or batch; every entry a create (request.method POST)",
        "required": ["resourceType", "type"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"enum": ["transaction", "batch"]},
            "entry": {
                "type": "array",
                "maxItems": MAX_BUNDLE_ENTRIES,
                "items": {
                    "type": "object",
                    "required": ["resource"],
                    "properties": {
                        "fullUrl": {"type": "string"},
                        "resource": {"type": "object", "required": ["resourceType"]},
                        "request": {"type": "object", "properties": {"method": {"const": "POST"}}},
                    },
                },
            },
        },
    },
    "BundleResponse": {
        "type": "object",
        "description": "a FHIR R4 Bundle of type transaction-response or batch-response, its entries in the "
        "order of the request's",
        "required": ["resourceType", "type", "entry"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"enum": ["transaction-response", "batch-response"]},
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["response"],
                    "properties": {
                        "fullUrl": {"type": "string"},
                        "resource": outcome.schema_ref("FhirResource"),
                        "response": {
                            "type": "object",
                            "required": ["status"],
                            "properties": {
                                "status": {"type": "string", "pattern": "^[1-5][0-9]{2}( .*)?$"},
                                "location": {"type": "string"},
                                "etag": {"type": "string"},
                                "lastModified": {"type": "string"},
                                "outcome": outcome.schema_ref("OperationOutcome"),
                            },
                        },
                    },
                },
            },
        },
    },
}
_WRITE_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        media: {
            "schema": {
                "type": "object",
                "description": "a FHIR R4 resource (JSON) of the type the path names",
                "required": ["resourceType"],
                "properties": {"resourceType": {"type": "string"}},
            }
        }
        for media in sorted(FHIR_MEDIA_TYPES)
    },
}
_BUNDLE_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        media: {"schema": {**outcome.schema_ref("Bundle"), "description": "a transaction or batch Bundle of creates"}}
        for media in sorted(FHIR_MEDIA_TYPES)
    },
}


def _outcome(description: str) -> dict[str, Any]:
    return {
        "description": f"a FHIR OperationOutcome: {description}",
        "content": {outcome.FHIR_JSON: {"schema": outcome.schema_ref("OperationOutcome")}},
    }


#: the refusals the write routes answer themselves (any other 4XX/5XX is documented app-wide)
_OUTCOME_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _outcome("the body is not JSON, not a valid R4 resource, or not what this route takes"),
    401: _outcome("no valid credential"),
    403: _outcome("the credential may not write this (or is not bound to a signing key)"),
    404: _outcome("not a FHIR R4 resource type"),
    409: _outcome("conflicts with what the ledger holds"),
    413: _outcome("the body is too large"),
    415: _outcome("not sent as application/fhir+json (or application/json)"),
    422: _outcome(
        "the facade does not record this, the mapping refused an element, or the rulebook REJECTED it "
        "(recorded on the ledger as evidence, with the rule codes)"
    ),
}
_CREATED: dict[str, Any] = {
    "description": "the resource as the ledger holds it (meta names the transaction), or an OperationOutcome "
    "saying so under `Prefer: return=OperationOutcome`, or no body under `Prefer: return=minimal`; 201 when "
    "written, 200 when the ledger already held it",
    "content": {
        outcome.FHIR_JSON: {
            "schema": {"oneOf": [outcome.schema_ref("FhirResource"), outcome.schema_ref("OperationOutcome")]}
        }
    },
}


@dataclass
class _Item:
    """One entry on its way through: mapped (or refused), then its receipts."""

    entry: mapping.Entry
    method_ok: bool = True
    mapped: mapping.Mapped | None = None
    refusal: MedledgerError | None = None
    receipts: list[dict[str, Any]] = field(default_factory=list)
    #: the entry whose transaction stands for this one (a Condition's Encounter, a Provenance's request)
    partner: tuple[str, int] | None = None


def _require_media(request: Request) -> None:
    given = request.headers.get("content-type", "")
    if given.split(";", 1)[0].strip().lower() not in FHIR_MEDIA_TYPES:
        raise MedledgerError(
            "FHIR resources must be sent as Content-Type: application/fhir+json (or application/json), got "
            + (repr(given[:80]) if given else "none"),
            code="unsupported-media-type",
            status=415,
        )


def _require_key(caller: Caller) -> None:
    if caller.key is None:
        raise AccessError(
            f"this credential of {caller.member} is read-only: FHIR writes are signed by the node with the "
            "member's own key, so they need a credential bound to a signing key (`medledger credentials issue "
            "--signing-key`)",
            code="read-only-credential",
            status=403,
        )


def _unmapped(kind: str, path: str) -> MedledgerError:
    return mapping.Refusal(
        422,
        [
            outcome.issue(
                f"the facade does not record {kind} resources on the ledger; it writes "
                + ", ".join(sorted(mapping.MAPPED_TYPES)),
                code="not-supported",
                expression=[path],
            )
        ],
    )


def _issues(exc: MedledgerError) -> list[dict[str, Any]]:
    if isinstance(exc, mapping.Refusal):
        return exc.issues
    return [outcome.issue(exc.message, code=outcome.issue_type(exc.status), details=[exc.code])]


def _refusal_response(exc: MedledgerError) -> Response:
    return outcome.fhir_response(outcome.operation_outcome(_issues(exc)), exc.status)


def _meta(receipt: Mapping[str, Any] | None, existing_tx: str | None = None) -> dict[str, Any]:
    tx_id = receipt["tx_id"] if receipt is not None else existing_tx
    meta: dict[str, Any] = {"versionId": "1"}
    if receipt is not None:
        meta["lastUpdated"] = receipt["tree_head"]["timestamp"]
    extension = []
    if tx_id:
        extension.append({"url": cv.EXT_TX_ID, "valueString": tx_id})
    if receipt is not None:
        extension.append({"url": cv.EXT_LEDGER_STATUS, "valueCode": receipt["status"]})
        codes = receipt.get("codes") or []
        if codes:
            meta["tag"] = [{"system": cv.RULE_SYSTEM, "code": c} for c in codes]
    if extension:
        meta["extension"] = extension
    return meta


def _rejected_outcome(kind: str, receipt: Mapping[str, Any]) -> dict[str, Any]:
    """The contract refused: the transaction is on the ledger as evidence, with its rule codes."""
    return outcome.operation_outcome(
        [
            outcome.issue(
                f"{receipt.get('reason') or 'rejected by the rulebook'} (the {kind} was recorded on the ledger as "
                f"REJECTED evidence, tx {receipt['tx_id']}; it changes no state)",
                code="business-rule",
                details=list(receipt.get("codes") or ()),
            )
        ]
    )


def _standing(item: _Item) -> Mapping[str, Any] | None:
    """The receipt that speaks for an item: the first rejected one, else the first."""
    for receipt in item.receipts:
        if receipt["status"] == REJECTED:
            return receipt
    return item.receipts[0] if item.receipts else None


def install_writes(
    app: FastAPI,
    node: Node,
    *,
    read_body: Callable[[Request, int], Awaitable[bytes]],
    receipts: Callable[[Future[list[Receipt]]], Awaitable[list[dict[str, Any]]]],
) -> None:
    """Add POST /fhir (transaction and batch Bundles) and POST /fhir/{Type}."""
    store = node.store
    pseudonyms = Pseudonymiser(node.config.data_dir)

    def context(caller: Caller, bundle: mapping.BundleIndex | None) -> mapping.Context:
        return mapping.Context(
            org=caller.org,
            member=str(caller.member),
            get=store.get_state,
            pseudonymise=pseudonyms.pseudonym,
            now_ms=node.config.clock(),
            bundle=bundle,
        )

    def may_sign(caller: Caller, resource_type: str, tx_types: Sequence[str], path: str) -> None:
        """Refuse up front what the gateway would refuse for the signer's role, with the resource named."""
        record = store.get_state("member/" + str(caller.member))
        role = record.get("role") if isinstance(record, dict) else None
        for tx_type in tx_types:
            allowed = node.registry.types[tx_type].roles
            if allowed is not None and role not in allowed:
                raise mapping.Refusal(
                    403,
                    [
                        outcome.issue(
                            f"{'an' if resource_type[0] in 'AEIOU' else 'a'} {resource_type} is recorded as "
                            f"{tx_type}, which only a "
                            f"{' or '.join(sorted(allowed))} key may sign; {caller.member} holds a {role} key",
                            code="forbidden",
                            expression=[path],
                        )
                    ],
                )

    def map_items(caller: Caller, items: list[_Item], bundle: mapping.BundleIndex | None) -> None:
        ctx = context(caller, bundle)
        for item in items:
            if item.refusal is not None or not item.method_ok:
                continue
            kind = str(item.entry.resource["resourceType"])
            try:
                may_sign(caller, kind, mapping.WRITTEN_AS.get(kind, ())[:1], item.entry.path)
                mapped = mapping.map_entry(item.entry, ctx)
                if mapped is not None:
                    may_sign(caller, kind, [t for t, _ in mapped.txs], item.entry.path)
            except MedledgerError as exc:
                item.refusal = _kept(exc)
                continue
            item.mapped = mapped
            if mapped is not None and bundle is not None and item.entry.full_url is not None:
                bundle.refs[item.entry.full_url] = (mapped.resource_type, mapped.logical_id)
        if bundle is None:
            return
        by_index = {item.entry.index: item for item in items}
        for item in items:
            rtype = str(item.entry.resource.get("resourceType"))
            if item.refusal is not None or rtype not in mapping.BUNDLE_ONLY:
                continue
            if rtype == "Condition":
                used = bundle.conditions_used.get(item.entry.full_url or "")
                why = (
                    "a Condition is recorded only as the diagnosis of an Encounter in the same Bundle "
                    "(Encounter.diagnosis.condition or Condition.encounter); no accepted Encounter uses this one"
                )
            else:
                used = bundle.provenance_used.get(item.entry.index)
                why = (
                    "a Provenance is recorded only as the prescriber signature of a MedicationRequest in the "
                    "same Bundle (target); no accepted MedicationRequest is its target"
                )
            partner = by_index.get(used[1]) if used is not None else None
            if used is None or partner is None or partner.mapped is None:
                item.refusal = mapping.Refusal(
                    422, [outcome.issue(why, code="not-supported", expression=[item.entry.path])]
                )
            else:
                item.partner = used

    def wires(caller: Caller, item: _Item) -> list[dict[str, str]]:
        assert caller.key is not None and item.mapped is not None
        now = node.config.clock()
        return [envelope.build(caller.key, t, p, created_ms=now).to_wire() for t, p in item.mapped.txs]

    def submit_items(
        caller: Caller, items: list[_Item], atomic: bool
    ) -> list[tuple[list[_Item], Future[list[Receipt]]]]:
        """Build and submit envelopes: one list (transaction) or one submission per entry (batch)."""
        writing = [i for i in items if i.mapped is not None and i.mapped.txs]
        if not writing:
            return []
        if atomic:
            flat: list[dict[str, str]] = []
            for item in writing:
                flat.extend(wires(caller, item))
            return [(writing, node.submit(flat))]
        futures = []
        for item in writing:
            try:
                futures.append(([item], node.submit(wires(caller, item))))
            except MedledgerError as exc:
                item.refusal = _kept(exc)
        return futures

    async def settle(futures: list[tuple[list[_Item], Future[list[Receipt]]]]) -> None:
        for group, future in futures:
            try:
                got = await receipts(future)
            except MedledgerError as exc:
                for item in group:
                    item.refusal = _kept(exc)
                continue
            cursor = 0
            for item in group:
                assert item.mapped is not None
                n = len(item.mapped.txs)
                item.receipts = got[cursor : cursor + n]
                cursor += n

    limiter: list[anyio.CapacityLimiter] = []

    async def in_thread(fn: Callable[[], T]) -> T:
        """Run the request's mapping (or answer building) in a worker thread, one request at a time:
        it is interpreter-bound Python, so more threads would only take the lock from the event loop
        more often without finishing sooner."""
        if not limiter:
            limiter.append(anyio.CapacityLimiter(1))  # created inside the event loop it serves
        return await anyio.to_thread.run_sync(fn, limiter=limiter[0])

    def prefer(request: Request) -> str:
        value = request.headers.get("prefer", "")
        for part in value.split(","):
            key, _, setting = part.strip().partition("=")
            if key.strip().lower() == "return":
                return setting.strip().strip('"').lower()
        return "representation"

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/fhir/"

    # -- single resources ----------------------------------------------------------------------------------

    @app.post(
        "/fhir/{type}",
        status_code=201,
        summary="Create one FHIR resource (mapped to ledger transactions)",
        description="Patient, Practitioner, PractitionerRole, Organization, Encounter, MedicationRequest, "
        "MedicationDispense, Claim, AdverseEvent, Consent, AuditEvent. Answers 201 with the resource as the "
        "ledger holds it (Prefer: return=minimal|representation|OperationOutcome), 422 with the rule codes "
        "when the rulebook rejected it (recorded as evidence), 4xx OperationOutcome otherwise.",
        openapi_extra={"requestBody": _WRITE_BODY},
        response_class=Response,  # FHIR JSON only: FastAPI would otherwise document an application/json 201
        responses={201: _CREATED, 200: _CREATED, **_OUTCOME_RESPONSES},
        tags=["fhir"],
    )
    async def create(
        resource_type: Annotated[
            str, Path(alias="type", pattern=r"^[A-Za-z]{1,64}$", description="a FHIR resource type")
        ],
        request: Request,
        caller: Annotated[Caller, Depends(requires("fhir.write"))],
    ) -> Response:
        try:
            get_fhir_model_class(resource_type)
        except (ValueError, KeyError, AttributeError):
            raise MedledgerError(
                f"{resource_type!r} is not a FHIR R4 resource type; the facade writes "
                + ", ".join(sorted(mapping.MAPPED_TYPES)),
                code="not-supported",
                status=404,
            ) from None
        _require_key(caller)
        _require_media(request)
        checked = await structure.offload(
            structure.check_resource, await read_body(request, MAX_RESOURCE_BYTES), resource_type
        )
        if isinstance(checked, structure.Failure):
            raise checked.error()
        if checked.issues:
            return outcome.fhir_response(outcome.operation_outcome(checked.issues), 400)
        if resource_type not in mapping.MAPPED_TYPES:
            return _refusal_response(_unmapped(resource_type, resource_type))
        assert checked.resource is not None
        item = _Item(mapping.Entry(0, {}, None, resource_type))

        def run() -> list[tuple[list[_Item], Future[list[Receipt]]]]:
            item.entry.resource = orjson.loads(checked.resource or b"{}")
            map_items(caller, [item], None)
            if item.refusal is not None:
                return []
            return submit_items(caller, [item], atomic=True)

        futures = await in_thread(run)
        if item.refusal is not None:
            return _refusal_response(item.refusal)
        await settle(futures)
        if item.refusal is not None:
            return _refusal_response(item.refusal)
        mapped = item.mapped
        assert mapped is not None
        receipt = _standing(item)
        if receipt is not None and receipt["status"] == REJECTED:
            return outcome.fhir_response(_rejected_outcome(resource_type, receipt), 422)
        status = 201 if receipt is not None else 200
        location = f"{base_url(request)}{resource_type}/{mapped.logical_id}/_history/1"
        headers = {"Location": location, "ETag": 'W/"1"'}
        if receipt is not None:
            headers["Last-Modified"] = receipt["tree_head"]["timestamp"]
        body = {**mapped.representation, "meta": _meta(receipt, mapped.existing_tx)}
        wanted = prefer(request)
        if wanted == "minimal":
            return Response(status_code=status, headers=headers)
        if wanted == "operationoutcome":
            note = outcome.issue(
                f"{resource_type}/{mapped.logical_id} recorded"
                + (f" in tx {receipt['tx_id']} ({receipt['status']})" if receipt else " already (nothing new written)"),
                code="informational",
                severity="information",
                details=list((receipt or {}).get("codes") or ()),
            )
            return outcome.fhir_response(outcome.operation_outcome([note]), status, headers=headers)
        return outcome.fhir_response(body, status, headers=headers)

    # -- Bundles -------------------------------------------------------------------------------------------

    @app.post(
        "/fhir",
        summary="A transaction or batch Bundle of creates",
        description="transaction: every entry is mapped first; any fault refuses the whole Bundle and writes "
        "nothing; then all envelopes are submitted atomically and the answer is a transaction-response (an entry "
        "the rulebook REJECTED is 422 inside it, recorded as evidence). batch: entries succeed or fail one by one.",
        openapi_extra={"requestBody": _BUNDLE_BODY},
        response_class=Response,
        responses={
            200: {
                "description": "a transaction-response or batch-response Bundle",
                "content": {outcome.FHIR_JSON: {"schema": outcome.schema_ref("BundleResponse")}},
            },
            **_OUTCOME_RESPONSES,
        },
        tags=["fhir"],
    )
    async def post_bundle(request: Request, caller: Annotated[Caller, Depends(requires("fhir.write"))]) -> Response:
        _require_key(caller)
        _require_media(request)
        check = await structure.offload(structure.check_bundle, await read_body(request, MAX_BUNDLE_BYTES))
        if isinstance(check, structure.Failure):
            raise check.error()
        kind = check.kind
        if kind not in ("transaction", "batch"):
            return outcome.fhir_response(outcome.operation_outcome(check.issues), 400)
        atomic = kind == "transaction"
        if atomic and check.issues:
            return outcome.fhir_response(outcome.operation_outcome(check.issues), 400)
        items: list[_Item] = []

        def run() -> list[tuple[list[_Item], Future[list[Receipt]]]]:
            # entry by entry: each decode holds the interpreter lock briefly, so the event loop keeps answering
            items.extend(_item(checked) for checked in check.entries)
            if atomic and any(item.refusal is not None for item in items):
                return []  # structural faults already refuse the transaction: skip mapping
            index = mapping.BundleIndex([item.entry for item in items])
            map_items(caller, items, index)
            if atomic and any(item.refusal is not None for item in items):
                return []
            return submit_items(caller, items, atomic)

        futures = await in_thread(run)
        refused = [item for item in items if item.refusal is not None]
        if atomic and refused:
            statuses = {item.refusal.status for item in refused if item.refusal is not None}
            status = next((s for s in (403, 400, 409) if s in statuses), 422)
            all_issues = [issue for item in refused if item.refusal is not None for issue in _issues(item.refusal)]
            return outcome.fhir_response(outcome.operation_outcome(all_issues), status)
        await settle(futures)
        if atomic and any(item.refusal is not None for item in items):
            failed = next(item.refusal for item in items if item.refusal is not None)
            assert failed is not None
            raise failed
        wanted = prefer(request)

        def answer() -> Response:
            # thousands of entries: built and serialised off the event loop too
            by_index = {item.entry.index: item for item in items}
            entries = [_response_entry(item, by_index, wanted) for item in items]
            return outcome.fhir_response({"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries}, 200)

        return await in_thread(answer)


def _kept(exc: MedledgerError) -> MedledgerError:
    """A refusal to keep on its item, without its traceback: the traceback's frames hold the item,
    a reference cycle per refused entry that only a full garbage collection frees (a 2,000-entry
    Bundle made ~50,000 such objects, and the collection paused every thread for ~0.4 s)."""
    return exc.with_traceback(None)


def _item(checked: structure.Checked) -> _Item:
    """An entry as the worker checked it, decoded for mapping (or refused with the worker's issues)."""
    resource = {} if checked.resource is None else orjson.loads(checked.resource)
    item = _Item(mapping.Entry(checked.index, resource, checked.full_url, checked.path), method_ok=checked.method_ok)
    if checked.issues:
        item.refusal = mapping.Refusal(400, checked.issues)
    elif str(resource["resourceType"]) not in mapping.MAPPED_TYPES:
        item.refusal = _unmapped(str(resource["resourceType"]), checked.path)
    return item


def _response_entry(item: _Item, by_index: Mapping[int, _Item], wanted: str) -> dict[str, Any]:
    """One entry of a transaction-response / batch-response."""
    if item.refusal is not None:
        return {
            "response": {
                "status": str(item.refusal.status),
                "outcome": outcome.operation_outcome(_issues(item.refusal)),
            }
        }
    kind = str(item.entry.resource["resourceType"])
    if item.partner is not None:
        logical, partner_index = item.partner
        partner = by_index[partner_index]
        receipt = _standing(partner)
        resource: dict[str, Any] = {
            "resourceType": kind,
            "id": logical,
            **{k: v for k, v in item.entry.resource.items() if k not in cv.SERVER_FIELDS},
        }
        existing = None
    else:
        assert item.mapped is not None
        receipt = _standing(item)
        logical = item.mapped.logical_id
        resource = item.mapped.representation
        existing = item.mapped.existing_tx
    response: dict[str, Any] = {"location": f"{kind}/{logical}/_history/1", "etag": 'W/"1"'}
    if receipt is not None and receipt["status"] == REJECTED:
        response["status"] = "422 Unprocessable Entity"
        response["outcome"] = _rejected_outcome(kind, receipt)
    else:
        response["status"] = "201 Created" if receipt is not None else "200 OK"
    meta = _meta(receipt, existing)
    if receipt is not None:
        response["lastModified"] = receipt["tree_head"]["timestamp"]
    if meta.get("extension"):
        response["extension"] = [e for e in meta["extension"] if e["url"] == cv.EXT_TX_ID]
    out: dict[str, Any] = {"response": response}
    if item.entry.full_url is not None:
        out["fullUrl"] = item.entry.full_url
    if wanted == "representation" and response["status"] != "422 Unprocessable Entity":
        out["resource"] = {**resource, "meta": meta}
    return out
