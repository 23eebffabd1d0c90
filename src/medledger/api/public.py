"""The public desk: complaints and adverse-event reports from people who hold no key.

A member of the public cannot sign envelopes, so the node's own key signs on
their behalf (the node is a regulator member: DESIGN's public desk) and the
request is recorded exactly as the contracts would record any complaint or
report. What the public may send is closed: an institution, a category from a
fixed terminology, a seriousness, a drug code, a time. There is no field for a
name, a phone number or a story, so none can reach the ledger; the answer is
a receipt the person can keep and later prove included.

Every check the contracts would make that can be made before ordering is made
here (the institution exists, the time is not in the future), so an honest
mistake is a 4xx with nothing written instead of a REJECTED transaction on the
ledger for ever.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import anyio.to_thread
import orjson
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.responses import Response

from medledger.contracts.models import AdverseCategory, ComplaintCategory
from medledger.errors import EncodingError, MedledgerError, NotFoundError
from medledger.ledger import envelope
from medledger.ledger.canonical import parse_json
from medledger.ledger.chain import max_skew_ms
from medledger.ledger.identity import explain
from medledger.ledger.timefmt import format_ms, parse_ms
from medledger.node.node import Node

#: a complaint or report is a few dozen bytes; anything bigger is not one
MAX_PUBLIC_BODY = 4096
_ORG = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class _Form(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ComplaintForm(_Form):
    """A public complaint: which institution, what kind. Nothing that identifies anyone."""

    about: str = Field(pattern=_ORG, description="the institution's id, as listed by /v1/public/institutions")
    category: ComplaintCategory


class AdverseEventForm(_Form):
    """An adverse event or medical error seen by the public; always anonymous."""

    category: AdverseCategory
    seriousness: Literal["non-serious", "serious", "death"]
    occurred_at: str = Field(description="when it happened, 2026-11-24T01:14:25.123Z; not in the future")
    org: str | None = Field(None, pattern=_ORG, description="the institution involved, if known")
    rxnorm: str | None = Field(None, pattern=r"^[0-9]{1,9}$", description="the drug involved, if known")


class DeskReceipt(BaseModel):
    """What the person keeps: the id of their filing and the node's receipt (provable by inclusion)."""

    id: str
    receipt: dict[str, Any]


def _form(model: type[_Form], body: bytes) -> Any:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise EncodingError("the form must be a JSON object", code="malformed")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise MedledgerError(
            f"the {model.__name__} is not valid: {explain(exc, 'form')} (only the listed fields are accepted: "
            "no names, contacts or free text)",
            code="invalid-payload",
            status=422,
        ) from None


def _filing_id(prefix: str) -> str:
    # letters only: record ids refuse long digit runs (they would look like ID or phone numbers)
    return prefix + "".join(secrets.choice(string.ascii_lowercase) for _ in range(20))


def install_public_desk(
    app: FastAPI,
    node: Node,
    *,
    read_body: Callable[[Request, int], Awaitable[bytes]],
    require_json: Callable[[Request], None],
    receipts: Callable[[Any], Awaitable[list[dict[str, Any]]]],
) -> None:
    """Add the public POST routes; the app's body reading, media-type check and receipt waiting are reused."""
    store = node.store

    def institution(org: str) -> None:
        if store.get_state("inst/" + org) is None:
            raise NotFoundError(f"no institution {org!r}; see GET /v1/public/institutions", code="unknown-institution")

    async def file(type_: str, payload: dict[str, Any]) -> list[dict[str, Any]]:
        env = envelope.build(node.key, type_, payload, created_ms=node.config.clock())
        future = await anyio.to_thread.run_sync(node.submit, [env.to_wire()])
        return await receipts(future)

    @app.post(
        "/v1/public/complaints",
        status_code=201,
        response_model=DeskReceipt,
        summary="File a complaint about an institution (anonymous, no key needed)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ComplaintForm.model_json_schema()}},
            }
        },
    )
    async def post_complaint(request: Request) -> Response:
        require_json(request)
        form: ComplaintForm = _form(ComplaintForm, await read_body(request, MAX_PUBLIC_BODY))
        institution(form.about)
        filing = _filing_id("pc-")
        clock = node.config.clock()
        (receipt,) = await file(
            "complaint.file",
            {"complaint_id": filing, "about": form.about, "category": form.category, "filed_at": format_ms(clock)},
        )
        return _created(filing, receipt)

    @app.post(
        "/v1/public/adverse-events",
        status_code=201,
        response_model=DeskReceipt,
        summary="Report an adverse event or medical error (anonymous, fixed categories)",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": AdverseEventForm.model_json_schema()}},
            }
        },
    )
    async def post_adverse_event(request: Request) -> Response:
        require_json(request)
        form: AdverseEventForm = _form(AdverseEventForm, await read_body(request, MAX_PUBLIC_BODY))
        occurred = parse_ms(form.occurred_at, what="occurred_at")
        now = node.config.clock()
        if occurred > now + max_skew_ms(store.get_state):
            raise MedledgerError(
                f"occurred_at {form.occurred_at} is in the future (the node's clock reads {format_ms(now)})",
                code="invalid-payload",
                status=422,
            )
        if form.org is not None:
            institution(form.org)
        filing = _filing_id("pae-")
        payload: dict[str, Any] = {
            "report_id": filing,
            "category": form.category,
            "seriousness": form.seriousness,
            "occurred_at": form.occurred_at,
            "anonymous": True,
        }
        if form.org is not None:
            payload["org"] = form.org
        if form.rxnorm is not None:
            payload["rxnorm"] = form.rxnorm
        (receipt,) = await file("report.adverse-event", payload)
        return _created(filing, receipt)


def _created(filing: str, receipt: dict[str, Any]) -> Response:
    return Response(orjson.dumps({"id": filing, "receipt": receipt}), status_code=201, media_type="application/json")


__all__ = ["MAX_PUBLIC_BODY", "AdverseEventForm", "ComplaintForm", "install_public_desk"]
