"""The HTTP face of one node: submissions, receipts, blocks, tree heads and proofs.

The submission path is the ingest hot path, so it avoids what FastAPI does by
default: the body is read raw (capped, because a client must not be able to
make us buffer unbounded data), decoded once by the strict canonical parser,
checked on the node's process pool off the event loop, and receipts are built
as dicts and serialised by orjson. Pydantic models below exist to *document*
the responses in ``/openapi.json``; handlers return ready-made ``Response``
objects, which FastAPI passes through without re-validating.

Read routes are plain ``def`` functions: FastAPI runs them in its thread pool,
where each thread reads SQLite through its own WAL connection beside the
committer instead of stalling the event loop on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from medledger.api import problems
from medledger.api.access import ROLE_INSURER, Access, Authenticate, Caller, requires
from medledger.api.docs_ui import install_docs
from medledger.api.fhir import reads as fhir_reads
from medledger.api.fhir import writes as fhir_writes
from medledger.api.fhir.outcome import is_fhir_path
from medledger.api.fhir.routes import install_fhir
from medledger.api.headers import SecurityHeaders
from medledger.api.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from medledger.api.metrics import Metrics
from medledger.api.params import refuse_unknown_query
from medledger.api.public import install_public_desk
from medledger.api.stream import install_stream
from medledger.contracts import queries
from medledger.contracts.catalogue import RULES_BY_ID
from medledger.errors import AccessError, EncodingError, MedledgerError, NotFoundError, StoreError, VerificationError
from medledger.ledger import envelope, proofs
from medledger.ledger.block import BlockHeader, TreeHead
from medledger.ledger.canonical import b64e, parse_json
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.receipt import Receipt
from medledger.ledger.store import AlertQuery, TxRecord
from medledger.ledger.timefmt import format_ms, parse_ms
from medledger.node.credentials import Credentials
from medledger.node.node import MAX_BATCH, Node

DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
TX_ID_PATTERN = r"^[0-9a-f]{64}$"
#: SQLite integers are signed 64-bit; larger path/query values are refused as parameters, not crashes.
MAX_INT = 2**63 - 1
#: the rule insurers supervise (access.SCOPES)
CLAIM_RULE = "CLAIM-MATCH"
JSON_MEDIA_TYPE = "application/json"
#: a listing's page cursor: the `next` of the previous page (a state key suffix)
Cursor = Annotated[
    str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,160}$", description="`next` of the previous page")
]


# -- documentation models (responses are built as dicts; these describe them) ------------------------------


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WireItem(_Doc):
    """One signed envelope as submitted: the exact signed bytes beside the signature."""

    envelope: str = Field(description="base64url (unpadded) of the RFC 8785 canonical envelope bytes")
    signature: str = Field(description="base64url (unpadded) Ed25519 signature over the domain tag and those bytes")


class TreeHeadModel(_Doc):
    """A signed statement that the log had ``tree_size`` entries with ``root_hash``."""

    tree_size: int
    root_hash: str = Field(description="hex SHA-256 Merkle root (RFC 9162)")
    timestamp: str
    signer: str = Field(description="key id (base64url public key) of the node that signed")
    signature: str = Field(description="base64url Ed25519 signature")


class ReceiptModel(_Doc):
    """Where a committed transaction landed and what the contracts decided."""

    tx_id: str = Field(description="hex SHA-256 of the canonical envelope bytes")
    status: str = Field(description="ACCEPTED, ACCEPTED_WITH_ALERTS or REJECTED (REJECTED is committed as evidence)")
    height: int
    leaf_index: int
    block_hash: str
    tree_head: TreeHeadModel
    codes: list[str] | None = Field(None, description="rule codes that fired; omitted when none")
    reason: str | None = Field(None, description="why it was rejected; omitted when accepted")


class ReceiptList(_Doc):
    """Receipts for a list submission, in the order submitted."""

    receipts: list[ReceiptModel]


class EnvelopeFields(_Doc):
    type: str
    payload: dict[str, Any]
    signer: str
    nonce: str
    created_at: str


class OutcomeModel(_Doc):
    status: str
    rulebook: int | None = Field(None, description="rulebook version the transaction was judged under")
    codes: list[str] | None = None
    reason: str | None = None
    alerts: list[dict[str, Any]] | None = None


class TransactionModel(_Doc):
    """A committed transaction: the signed envelope, its outcome and where it sits."""

    tx_id: str
    envelope: EnvelopeFields
    signature: str
    wire: WireItem = Field(description="the exact bytes as submitted, for independent re-verification")
    outcome: OutcomeModel
    height: int
    leaf_index: int
    block_hash: str


class BlockTxModel(_Doc):
    tx_id: str
    leaf_index: int
    type: str
    signer: str
    outcome: OutcomeModel


class BlockModel(_Doc):
    """A committed block: header, its hash and signature, the tree head after it, and its transactions."""

    height: int
    block_hash: str = Field(description="hex SHA-256 of the canonical header")
    header: BlockHeader = Field(description="the signed header, field for field (see medledger.ledger.block)")
    signature: str = Field(description="base64url Ed25519 signature of the proposer over the header")
    tree_head: TreeHeadModel
    transactions: list[BlockTxModel]


class InclusionProofModel(_Doc):
    """RFC 9162 audit path of one transaction's leaf in the tree of ``tree_size``."""

    tx_id: str
    leaf_index: int
    tree_size: int
    leaf_hash: str = Field(description="hex SHA-256(0x00 || leaf data); leaf data is the canonical envelope+signature")
    proof: list[str] = Field(description="hex hashes, leaf to root")
    tree_head: TreeHeadModel | None = Field(
        description="the signed tree head of exactly this size, or null if no block ended at this size"
    )
    root_hash: str = Field(description="hex Merkle root of the tree of this size")


class ConsistencyProofModel(_Doc):
    """RFC 9162 proof that the tree of size ``first`` is a prefix of the tree of size ``second``."""

    first: int
    second: int
    first_root: str
    second_root: str
    proof: list[str]


class AlertModel(_Doc):
    """One rule violation: what fired, about whom, on what evidence, in which block."""

    model_config = ConfigDict(extra="allow")
    id: str = Field(description="<height>-<seq>: stable, and the pagination cursor")
    height: int
    block_time: str
    rule: str
    severity: str = Field(description="hard (the transaction was REJECTED) or soft (accepted with this alert)")
    why: str
    rulebook: int | None = None
    tx_id: str | None = Field(None, description="the transaction that violated the rule; absent for alerts a "
                              "block raises by itself (a deadline passing)")
    institution: str | None = None
    practitioner: str | None = Field(None, description="licence number")
    subject: dict[str, str] | None = None
    evidence: list[str] | None = Field(None, description="tx_ids of the other transactions involved")


class AlertList(_Doc):
    alerts: list[AlertModel]
    next: str | None = Field(description="pass as `before` for the next (older) page; null at the end")


class ValidityModel(_Doc):
    valid_from: str
    valid_until: str = Field(description="last valid day, inclusive, in the province's calendar")


class LicenceModel(ValidityModel):
    number: str


class InstitutionModel(_Doc):
    org: str
    name: str
    kind: str
    status: str = Field(description="active, suspended or revoked")
    licence: LicenceModel
    internet_approval: ValidityModel | None
    physical: bool | None = Field(None, description="not in the public listing")
    admitted_tx: str | None = Field(None, description="not in the public listing")
    status_tx: str | None = Field(None, description="the regulator's last status decision; not public")


class InstitutionList(_Doc):
    institutions: list[InstitutionModel]
    next: str | None = Field(description="pass as `after` for the next page; null at the end")


class SiteModel(ValidityModel):
    org: str
    filing: str = Field(description="primary or multi-site")


class PractitionerModel(_Doc):
    licence_no: str
    profession: str
    qualification: str
    first_practice: str
    specialties: list[str]
    status: str = Field(description="active, suspended or revoked: a licence action follows the person")
    members: list[str] = Field(description="the member keys (org/name) this licence practises under")
    sites: list[SiteModel]
    registered_tx: str
    status_tx: str | None


class PractitionerList(_Doc):
    practitioners: list[PractitionerModel]
    next: str | None


class TraceStepModel(_Doc):
    step: str = Field(description="offline-diagnosis, doctor-real-name, consultation, prescription, review, "
                      "dispense, handover or claim")
    tx_id: str
    type: str
    status: str
    codes: list[str] | None = None
    height: int
    leaf_index: int
    leaf_hash: str
    proof: list[str] = Field(description="RFC 9162 audit path to the trace's tree head")


class TraceModel(_Doc):
    """One prescription's chain, each step provable against one signed tree head."""

    rx_id: str
    tree_head: TreeHeadModel
    steps: list[TraceStepModel]


class HealthModel(_Doc):
    status: str
    height: int
    tree_size: int
    time: str = Field(description="the node's clock, which admission and block times follow")
    clock_rate: float = Field(
        description="node milliseconds per wall-clock millisecond: 1.0, or more on the demo's simulated province"
    )


_SUBMIT_BODY: dict[str, Any] = {
    "required": True,
    "description": f"one wire item, or a list of 1 to {MAX_BATCH} of them (all-or-nothing: if any is refused, "
    "none is written)",
    "content": {
        JSON_MEDIA_TYPE: {
            "schema": {
                "oneOf": [
                    {"$ref": "#/components/schemas/WireItem"},
                    {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/WireItem"},
                        "minItems": 1,
                        "maxItems": MAX_BATCH,
                    },
                ]
            }
        }
    },
}


# -- helpers --------------------------------------------------------------------------------------------------


def _json(value: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(value), status_code=status, media_type=JSON_MEDIA_TYPE)


def _too_large(limit: int) -> MedledgerError:
    return EncodingError(
        f"the request body is larger than the {limit}-byte limit; split the submission into smaller lists",
        code="too-large", status=413,
    )


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing early (by header) or as soon as the stream passes ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise EncodingError(f"Content-Length {declared[:40]!r} is not a byte count", code="malformed")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _require_json(request: Request) -> None:
    given = request.headers.get("content-type", "")
    if given.split(";", 1)[0].strip().lower() != JSON_MEDIA_TYPE:
        raise MedledgerError(
            f"submissions must be sent as Content-Type: {JSON_MEDIA_TYPE}, got {given[:80]!r}"
            if given else f"submissions must be sent as Content-Type: {JSON_MEDIA_TYPE}; none was given",
            code="unsupported-media-type", status=415,
        )


def _too_deep() -> MedledgerError:
    return EncodingError("the JSON is nested too deeply to be checked", code="malformed")


def _settled(future: Future[list[Receipt]]) -> asyncio.Future[None]:
    """An awaitable that completes with ``future`` but never cancels it.

    ``asyncio.wrap_future`` propagates cancellation back to the concurrent
    future; a cancelled request (client gone, shutdown timeout) would then
    cancel a pending receipt the committer is about to resolve, and the
    committer's ``set_result`` would fail on it. The envelope is admitted and
    will be committed regardless, so only our waiting may be cancelled.
    """
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    def done(_: Future[list[Receipt]]) -> None:
        # RuntimeError: the loop is gone (server stopped), so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake, waiter)

    future.add_done_callback(done)
    return waiter


async def _receipts(future: Future[list[Receipt]]) -> list[dict[str, Any]]:
    """Wait for every receipt of one request (the node resolves a request's future once, when its last
    envelope is committed: one cross-thread wake-up per request)."""
    await _settled(future)
    exc = future.exception()
    if exc is not None:
        if isinstance(exc, MedledgerError):
            raise exc
        raise StoreError(f"the block holding this submission could not be committed: {exc}")
    return [receipt.to_json() for receipt in future.result()]


def _outcome(raw: bytes) -> Any:
    return orjson.loads(raw)


def _stored_envelope(record: TxRecord) -> SignedEnvelope:
    try:
        return envelope.from_parts(record.body, record.signature, check_signature=False)
    except MedledgerError as exc:
        # Stored bytes that no longer parse are a damaged store, not a bad request.
        raise VerificationError(
            f"stored transaction {record.tx_id} does not decode: {exc.message}; run `medledger verify`",
            height=record.height, tx_id=record.tx_id,
        ) from exc


def _custom_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """OpenAPI with the problem and wire-item schemas the hand-written parts refer to."""

    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (problems.Problem, WireItem):
                js = model.model_json_schema(ref_template="#/components/schemas/{model}")
                components.update(js.pop("$defs", {}))
                components[model.__name__] = js
            components["OperationOutcome"] = problems.OPERATION_OUTCOME_SCHEMA
            # what the FHIR routes answer: CapabilityStatement, FhirResource, SearchsetBundle, BundleResponse...
            components.update(fhir_reads.OPENAPI_SCHEMAS)
            components.update(fhir_writes.OPENAPI_SCHEMAS)
            _fhir_errors_are_outcomes(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    return build


def _fhir_errors_are_outcomes(schema: dict[str, Any]) -> None:
    """The app-wide 4XX/5XX entries say problem+json, but under /fhir every error is rendered as an
    OperationOutcome (problems.install): document that instead, for those paths only."""
    for path, operations in schema.get("paths", {}).items():
        if not is_fhir_path(path):
            continue
        for operation in operations.values():
            responses = operation.get("responses", {})
            for status in ("4XX", "5XX"):
                if status in responses:
                    responses[status] = {**problems.OUTCOME_RESPONSE}


def _alert_scope(caller: Caller, rule: str | None, institution: str | None) -> tuple[str | None, str | None]:
    """Narrow an alert query to what ``caller`` may see (access.SCOPES); asking for more is a 403."""
    if caller.supervisor:
        return rule, institution
    if caller.role == ROLE_INSURER:
        if rule not in (None, CLAIM_RULE):
            raise AccessError(f"an insurer sees {CLAIM_RULE} alerts only, not {rule}")
        return CLAIM_RULE, institution
    if institution not in (None, caller.org):
        raise AccessError(f"{caller.org} sees its own alerts only, not {institution}'s")
    return rule, caller.org


# -- the app --------------------------------------------------------------------------------------------------


def create_app(
    node: Node, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, credentials: Credentials | None = None
) -> FastAPI:
    """An ASGI app serving ``node``; the caller owns the node and closes it after the server stops.

    ``credentials`` defaults to the ``credentials.json`` beside the node's ledger.
    """
    store = node.store
    access = Access(credentials or Credentials(node.config.data_dir), store.get_state)
    metrics = Metrics()
    tip = store.tip()
    if tip is not None:
        metrics.set_tip(tip.height, tip.tree_size)
    node.add_listener(metrics.on_block)

    app = FastAPI(
        title="medledger",
        version="0.1.0",
        description="Tamper-evident supervision ledger for Internet hospitals. Every error is "
        "application/problem+json with a stable `code`.",
        responses={"4XX": problems.PROBLEM_RESPONSE, "5XX": problems.PROBLEM_RESPONSE},
        # served from the package (docs_ui), not from a CDN
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_unknown_query())],
    )
    app.state.node = node
    app.state.access = access
    app.state.metrics = metrics
    app.openapi = _custom_openapi(app)  # type: ignore[method-assign]
    operator_log = problems.install(app, metrics.refused)
    app.add_middleware(Authenticate, access=access, hook=metrics.refused, operator_log=operator_log)
    # outside even Starlette's last-resort error middleware, so every response gets the headers
    build_stack = app.build_middleware_stack
    app.build_middleware_stack = lambda: SecurityHeaders(build_stack())  # type: ignore[method-assign]
    install_docs(app)

    def ingest(body: bytes) -> tuple[bool, int, Future[list[Receipt]], float]:
        """Decode, check and admit in one worker-thread hop (parsing megabytes must not stall the loop)."""
        try:
            value = parse_json(body)
        except RecursionError:
            raise _too_deep() from None
        if isinstance(value, dict):
            single, items = True, [value]
        elif isinstance(value, list):
            single, items = False, value
        else:
            raise EncodingError(
                'the body must be one wire item {"envelope": ..., "signature": ...} or a JSON list of them',
                code="malformed",
            )
        started = time.perf_counter()
        try:
            envelopes = node.check(items)
        except RecursionError:
            raise _too_deep() from None
        finally:
            metrics.check_seconds.observe(time.perf_counter() - started)
        future = node.admit(envelopes)
        return single, len(envelopes), future, time.perf_counter()

    @app.post(
        "/v1/transactions",
        response_model=ReceiptModel | ReceiptList,
        summary="Submit one signed envelope or a list of them",
        description="Answers once every envelope is durably committed. A contract-level REJECTED outcome is "
        "still 200 (committed as evidence). Envelope-level faults (encoding, signature, signer, role, replay, "
        "clock) refuse the whole request with a problem and write nothing.",
        openapi_extra={"requestBody": _SUBMIT_BODY},
        responses={
            200: {"description": "a receipt (one item submitted) or `{\"receipts\": [...]}` (a list submitted)"},
            413: problems.PROBLEM_RESPONSE,
            415: problems.PROBLEM_RESPONSE,
        },
    )
    async def submit(request: Request) -> Response:
        _require_json(request)
        body = await _read_body(request, max_body_bytes)
        single, count, future, admitted = await anyio.to_thread.run_sync(ingest, body)
        metrics.submitted.inc(count)
        receipts = await _receipts(future)
        metrics.commit_wait_seconds.observe(time.perf_counter() - admitted)
        return _json(receipts[0] if single else {"receipts": receipts})

    install_public_desk(app, node, read_body=_read_body, require_json=_require_json, receipts=_receipts)
    install_stream(app, node)
    install_fhir(app, node, read_body=_read_body, receipts=_receipts)

    @app.get("/v1/transactions/{tx_id}", response_model=TransactionModel, summary="A committed transaction")
    def get_transaction(
        tx_id: Annotated[str, Path(pattern=TX_ID_PATTERN, description="64 lowercase hex characters")],
        _: Annotated[Caller, Depends(requires("transactions.read"))],
    ) -> Response:
        record = store.tx(tx_id)
        if record is None:
            raise NotFoundError(f"no transaction {tx_id} is committed on this ledger")
        block = store.block(record.height)
        if block is None:
            raise VerificationError(
                f"transaction {tx_id} names block {record.height}, which is missing; run `medledger verify`",
                height=record.height, tx_id=tx_id,
            )
        return _json({
            **_stored_envelope(record).to_json(),
            "outcome": _outcome(record.outcome),
            "height": record.height,
            "leaf_index": record.leaf_index,
            "block_hash": block.block_hash,
        })

    @app.get("/v1/blocks/{height}", response_model=BlockModel, summary="A committed block and its transactions")
    def get_block(
        height: Annotated[int, Path(ge=0, le=MAX_INT)], _: Annotated[Caller, Depends(requires("blocks.read"))]
    ) -> Response:
        block = store.block(height)
        if block is None:
            raise NotFoundError(f"there is no block at height {height}; the latest is {node.tip.height}")
        txs = []
        for record in store.block_txs(height):
            fields = orjson.loads(record.body)
            txs.append({
                "tx_id": record.tx_id,
                "leaf_index": record.leaf_index,
                "type": fields["type"],
                "signer": fields["signer"],
                "outcome": _outcome(record.outcome),
            })
        return _json({
            "height": block.height,
            "block_hash": block.block_hash,
            "header": orjson.loads(block.header_bytes),
            "signature": b64e(block.signature),
            "tree_head": block.tree_head.to_json(),
            "transactions": txs,
        })

    @app.get("/v1/alerts", response_model=AlertList, summary="Rule violations, newest first, filtered")
    def get_alerts(
        caller: Annotated[Caller, Depends(requires("alerts.read"))],
        rule: Annotated[
            str | None, Query(pattern=r"^[A-Z][A-Z-]{1,39}$", description="rule id, e.g. RX-LIMITS")
        ] = None,
        institution: Annotated[str | None, Query(max_length=63)] = None,
        practitioner: Annotated[str | None, Query(max_length=40, description="licence number")] = None,
        since: Annotated[str | None, Query(description="block time at or after, 2026-11-24T00:00:00.000Z")] = None,
        until: Annotated[str | None, Query(description="block time before")] = None,
        before: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}-[0-9]{1,9}$", description="alert id cursor")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        if rule is not None and rule not in RULES_BY_ID:
            raise MedledgerError(
                f"there is no rule {rule!r} in the rulebook; rule ids are " + ", ".join(sorted(RULES_BY_ID)),
                code="unknown-rule",
                status=400,
            )
        rule, institution = _alert_scope(caller, rule, institution)
        cursor = None
        if before is not None:
            height, seq = before.split("-")
            cursor = (int(height), int(seq))
        records = store.alerts(AlertQuery(
            rule=rule, institution=institution, practitioner=practitioner,
            since_ms=None if since is None else parse_ms(since, what="since"),
            until_ms=None if until is None else parse_ms(until, what="until"),
            before=cursor, limit=limit,
        ))
        alerts = [
            {**orjson.loads(r.body), "id": r.alert_id, "height": r.height, "block_time": format_ms(r.block_ms)}
            for r in records
        ]
        return _json({"alerts": alerts, "next": records[-1].alert_id if len(records) == limit else None})

    @app.get("/v1/institutions", response_model=InstitutionList, summary="Institutions and their licences")
    def get_institutions(
        _: Annotated[Caller, Depends(requires("registry.read"))],
        kind: Annotated[str | None, Query(pattern=r"^[a-z-]{1,40}$")] = None,
        status: Annotated[str | None, Query(pattern=r"^(active|suspended|revoked)$")] = None,
        after: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        found, nxt = queries.institutions(store, kind=kind, status=status, after=after, limit=limit)
        return _json({"institutions": found, "next": nxt})

    @app.get(
        "/v1/public/institutions", response_model=InstitutionList,
        summary="Check an institution's licence and Internet-diagnosis approval (public)",
    )
    def get_public_institutions(
        kind: Annotated[str | None, Query(pattern=r"^[a-z-]{1,40}$")] = None,
        after: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        found, nxt = queries.institutions(store, kind=kind, after=after, limit=limit, public=True)
        return _json({"institutions": found, "next": nxt})

    @app.get("/v1/practitioners", response_model=PractitionerList, summary="Practitioners, by licence number")
    def get_practitioners(
        _: Annotated[Caller, Depends(requires("registry.read"))],
        profession: Annotated[str | None, Query(pattern=r"^(doctor|pharmacist)$")] = None,
        status: Annotated[str | None, Query(pattern=r"^(active|suspended|revoked)$")] = None,
        org: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")] = None,
        after: Cursor = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Response:
        found, nxt = queries.practitioners(
            store, profession=profession, status=status, org=org, after=after, limit=limit
        )
        return _json({"practitioners": found, "next": nxt})

    @app.get(
        "/v1/prescriptions/{rx_id}/trace", response_model=TraceModel,
        summary="A prescription's whole chain with inclusion proofs",
    )
    def get_trace(
        rx_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,79}$")],
        caller: Annotated[Caller, Depends(requires("trace.read"))],
    ) -> Response:
        chain = queries.prescription_chain(store, rx_id)
        if chain is None:
            raise NotFoundError(
                f"no accepted prescription {rx_id!r}; a REJECTED one changes no state, find it in /v1/alerts"
            )
        records = [(step, tx_id, store.tx(tx_id)) for step, tx_id in chain]
        if not caller.supervisor and not any(
            record is not None and _signer_org(_stored_envelope(record).signer) == caller.org
            for _, _, record in records
        ):
            # the same answer as for a prescription that does not exist: a hospital must not learn
            # which prescription ids other institutions use
            raise NotFoundError(f"no prescription {rx_id!r} that {caller.org} took part in")
        head = latest_head()
        steps = []
        for step, tx_id, record in records:
            if record is None:
                raise VerificationError(
                    f"state cites transaction {tx_id} that the store lacks; run `medledger verify`", tx_id=tx_id
                )
            stored = _stored_envelope(record)
            outcome = _outcome(record.outcome)
            path = proofs.inclusion_proof(store, record.leaf_index, head.tree_size, head.tree_size)
            steps.append({
                "step": step, "tx_id": tx_id, "type": stored.type, "status": outcome["status"],
                **({"codes": outcome["codes"]} if outcome.get("codes") else {}),
                "height": record.height, "leaf_index": record.leaf_index,
                "leaf_hash": hashlib.sha256(b"\x00" + stored.leaf_data()).hexdigest(),
                "proof": [p.hex() for p in path],
            })
        return _json({"rx_id": rx_id, "tree_head": head.to_json(), "steps": steps})

    def _signer_org(kid: str) -> str | None:
        key = store.get_state("key/" + kid)
        member = store.get_state("member/" + key["member"]) if isinstance(key, dict) else None
        return member.get("org") if isinstance(member, dict) else None

    def latest_head() -> TreeHead:
        head = store.tree_head()
        if head is None:
            raise NotFoundError("the ledger has no blocks yet; run `medledger init`", code="empty-ledger")
        return head

    @app.get("/v1/tree-head", response_model=TreeHeadModel, summary="The latest signed tree head, or one of a size")
    def get_tree_head(
        tree_size: Annotated[
            int | None,
            Query(ge=1, le=MAX_INT, description="the signed head of this size (a block ended there); default: latest"),
        ] = None,
    ) -> Response:
        latest = latest_head()
        if tree_size is None or tree_size == latest.tree_size:
            return _json(latest.to_json())
        # an older head is what a member checks a consistency proof from, when it did not keep that head itself
        head = store.tree_head(tree_size) if tree_size < latest.tree_size else None
        if head is None:
            raise NotFoundError(
                f"no block ended at tree size {tree_size} (the tree has {latest.tree_size} entries); "
                "signed heads exist only at block boundaries"
            )
        return _json(head.to_json())

    @app.get(
        "/v1/proofs/inclusion/{tx_id}", response_model=InclusionProofModel,
        summary="Merkle audit path of a transaction",
    )
    def get_inclusion(
        tx_id: Annotated[str, Path(pattern=TX_ID_PATTERN, description="64 lowercase hex characters")],
        tree_size: Annotated[
            int | None, Query(ge=1, le=MAX_INT, description="tree size to prove against; default: the current one")
        ] = None,
    ) -> Response:
        record = store.tx(tx_id)
        if record is None:
            raise NotFoundError(f"no transaction {tx_id} is committed on this ledger")
        latest = latest_head()
        current = latest.tree_size
        size = current if tree_size is None else tree_size
        path = proofs.inclusion_proof(store, record.leaf_index, size, current)
        head = latest if size == current else store.tree_head(size)
        leaf = _stored_envelope(record).leaf_data()
        return _json({
            "tx_id": tx_id,
            "leaf_index": record.leaf_index,
            "tree_size": size,
            "leaf_hash": hashlib.sha256(b"\x00" + leaf).hexdigest(),
            "proof": [p.hex() for p in path],
            "tree_head": None if head is None else head.to_json(),
            "root_hash": proofs.root_at(store, size).hex(),
        })

    @app.get(
        "/v1/proofs/consistency", response_model=ConsistencyProofModel,
        summary="Proof that an older tree is a prefix of a newer one",
    )
    def get_consistency(
        first: Annotated[int, Query(ge=1, le=MAX_INT, description="the older tree size")],
        second: Annotated[
            int | None, Query(ge=1, le=MAX_INT, description="the newer tree size; default: the current one")
        ] = None,
    ) -> Response:
        current = latest_head().tree_size
        newer = current if second is None else second
        path = proofs.consistency_proof(store, first, newer, current)
        return _json({
            "first": first,
            "second": newer,
            "first_root": proofs.root_at(store, first).hex(),
            "second_root": proofs.root_at(store, newer).hex(),
            "proof": [p.hex() for p in path],
        })

    @app.get("/healthz", response_model=HealthModel, summary="Liveness, with the tip")
    async def healthz() -> Response:
        # In-memory tip: health must answer even while the disk is slow.
        return _json({
            "status": "ok",
            "height": node.tip.height,
            "tree_size": node.frontier.size,
            "time": format_ms(node.config.clock()),
            "clock_rate": node.config.clock_rate,
        })

    @app.get(
        "/metrics", summary="Prometheus metrics",
        # not JSON: without this FastAPI documents an application/json 200 the route never sends
        response_class=Response,
        responses={200: {"content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    async def get_metrics() -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    return app
