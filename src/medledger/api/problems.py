"""Every error the HTTP layer answers is RFC 9457 ``application/problem+json``.

Clients (hospital systems, auditors' scripts) switch on one stable field,
``code``, whatever produced the error: a contract refusal from the node, a
malformed query parameter caught by FastAPI, an unknown route answered by
Starlette, or a bug. So every exception path ends in :func:`problem_response`
and nothing ever falls through to the frameworks' own ``{"detail": ...}``
bodies, which carry no code and would make clients parse prose.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from http import HTTPStatus
from pathlib import PurePath
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medledger.api.fhir import outcome
from medledger.errors import AccessError, MedledgerError, OperatorError

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_BASE = "https://medledger.dev/problems/"

#: Stable codes for the statuses Starlette raises on its own.
_HTTP_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-parameter",
}

#: Called once per problem answered, so metrics can count refusals by code.
ProblemHook = Callable[[str, int], None]


class ProblemItem(BaseModel):
    """One refused envelope of a batch (``index`` is its position in the request)."""

    model_config = ConfigDict(extra="allow")

    index: int
    code: str
    detail: str
    status: int


class InvalidParam(BaseModel):
    """One request parameter that failed validation."""

    name: str
    location: str = Field(alias="in")
    reason: str


class Problem(BaseModel):
    """RFC 9457 problem details, plus the machine-readable ``code`` clients switch on."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="URI naming the problem kind; ends in `code`")
    title: str
    status: int
    detail: str = Field(description="one sentence saying exactly what was wrong")
    code: str = Field(description="stable machine-readable code, e.g. `bad-signature`, `replayed-tx`")
    errors: list[ProblemItem] | None = Field(
        None, description="per-envelope refusals of a submission; nothing of the request was written"
    )
    invalid_params: list[InvalidParam] | None = None
    committed: list[dict[str, Any]] | None = Field(
        None, description="`store-error`: receipts of this request's envelopes that earlier blocks committed"
    )
    uncommitted: list[int] | None = Field(
        None, description="`store-error`: indices (in the request) of its envelopes that were not written"
    )


#: OpenAPI ``responses`` entry for problem bodies (the schema is added by the app's OpenAPI builder).
PROBLEM_RESPONSE: dict[str, Any] = {
    "description": "Problem details (RFC 9457)",
    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


#: What an error under /fhir is instead (``problem_response(..., fhir=True)``): a FHIR OperationOutcome.
OPERATION_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "a FHIR R4 OperationOutcome; `issue.details.coding` carries the medledger problem code",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"const": "OperationOutcome"},
        "issue": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["severity", "code"],
                "properties": {"severity": {"type": "string"}, "code": {"type": "string"}},
            },
        },
    },
}
#: OpenAPI ``responses`` entry for errors under /fhir (the schema is added by the app's OpenAPI builder).
OUTCOME_RESPONSE: dict[str, Any] = {
    "description": "a FHIR OperationOutcome (every error under /fhir, whatever raised it)",
    "content": {outcome.FHIR_JSON: {"schema": {"$ref": "#/components/schemas/OperationOutcome"}}},
}


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + code,
        "title": code.replace("-", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


def problem_response(
    body: Mapping[str, Any],
    *,
    headers: Mapping[str, str] | None = None,
    hook: ProblemHook | None = None,
    fhir: bool = False,
) -> Response:
    """The problem as problem+json, or (``fhir``: the request was under /fhir) as a FHIR OperationOutcome."""
    status = int(body["status"])
    if hook is not None:
        hook(str(body["code"]), status)
    if fhir:
        return outcome.fhir_response(outcome.from_problem(body), status, headers=headers)
    return Response(
        orjson.dumps(body, default=str),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers) if headers else None,
    )


def error_response(
    exc: MedledgerError, *, fhir: bool, hook: ProblemHook | None = None, operator_log: OperatorLog | None = None
) -> Response:
    """A refusal raised as a :class:`MedledgerError`, as the client sees it (handlers and middleware alike).

    An operator fault's cause goes to ``operator_log`` here, so a fault met in middleware (a credentials file
    that cannot be read while resolving a token) is logged exactly as one met in a route.
    """
    if operator_log is not None and isinstance(exc, OperatorError):
        operator_log.report(exc)
    # RFC 9110 §11.6.1: a 401 names the scheme that would succeed
    challenge = isinstance(exc, AccessError) and exc.status == 401
    headers = {"WWW-Authenticate": 'Bearer realm="medledger"'} if challenge else None
    return problem_response(exc.to_problem(), headers=headers, hook=hook, fhir=fhir)


def _param_name(loc: tuple[Any, ...]) -> tuple[str, str]:
    where = str(loc[0]) if loc else "request"
    name = ".".join(str(part) for part in loc[1:]) or where
    return where, name


def _validation_problem(exc: RequestValidationError) -> dict[str, Any]:
    params: list[dict[str, str]] = []
    for err in exc.errors():
        where, name = _param_name(tuple(err.get("loc", ())))
        reason = str(err.get("msg", "is invalid"))
        if "input" in err and err["input"] is not None:
            shown = repr(err["input"])
            reason += f" (got {shown[:60]}{'...' if len(shown) > 60 else ''})"
        params.append({"name": name, "in": where, "reason": reason})
    if params:
        first = params[0]
        detail = f"{first['in']} parameter {first['name']}: {first['reason']}"
        if len(params) > 1:
            detail += f" ({len(params) - 1} more; see invalid_params)"
    else:
        detail = "the request parameters are invalid"
    return problem_body(400, "invalid-parameter", detail, invalid_params=params)


def _http_problem(request: Request, exc: StarletteHTTPException) -> dict[str, Any]:
    status = exc.status_code
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    code = _HTTP_CODES.get(status, phrase.lower().replace(" ", "-"))
    given = str(exc.detail) if exc.detail else ""
    if status == 404 and given in ("", "Not Found"):
        detail = f"there is no route {request.url.path}; the API is described at /openapi.json"
    elif status == 405:
        allowed = (exc.headers or {}).get("allow", (exc.headers or {}).get("Allow", ""))
        detail = f"{request.url.path} does not accept {request.method}" + (f"; allowed: {allowed}" if allowed else "")
    elif given and given != phrase:
        detail = given
    else:
        detail = f"{phrase.lower()}"
    return problem_body(status, code, detail)


class OperatorLog:
    """Logs the cause of each operator fault once per quiet period, however many requests run into it.

    An operator fault (a key file gone, a store that cannot be opened) fails every request that needs the
    thing until someone fixes it; one log line per request would bury the cause and fill the disk.
    """

    QUIET_S = 600.0
    #: distinct causes remembered; past it the memory starts afresh (a cause may then be logged again)
    REMEMBERED = 1024

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def report(self, exc: OperatorError, *, exc_info: BaseException | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(exc.cause)
            if last is not None and now - last < self.QUIET_S:
                return
            if len(self._last) >= self.REMEMBERED:
                self._last.clear()
            self._last[exc.cause] = now
        log.error(
            "operator fault (%s): %s; requests needing it are answered 503 until it is fixed (this cause is "
            "logged again after %d s at the earliest)",
            exc.code, exc.cause, int(self.QUIET_S), exc_info=exc_info,
        )


def _storage_fault(exc: Exception) -> OperatorError:
    """An OS or SQLite error no code path expected: the node's storage, not the request, failed."""
    return OperatorError(
        "the node's storage failed while answering this request; the operator has been told. If this was a "
        "submission, look its tx_id up before resending",
        code="store-unavailable",
        cause=f"{type(exc).__name__}: {exc}",
    )


def _fhir(request: Request) -> bool:
    return outcome.is_fhir_path(request.url.path)


def _origin(exc: BaseException) -> str:
    """``file:line`` of the innermost frame: where it failed, without walking or printing the traceback."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{PurePath(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


class _Contain:
    """Answers any exception that escapes the app with a 500 problem and logs it as ONE line.

    Starlette's own handler for ``Exception`` answers and then re-raises so that the server logs
    the traceback: one hostile request (a RecursionError is ~265 KB of frames) could then write
    hundreds of kilobytes to the log, and the connection was dropped. Here nothing is re-raised;
    the log gets the exception type, where it was raised and the route (its template, so no
    identifier in a path reaches the log). Reproduce with the request to see more.
    """

    def __init__(self, app: ASGIApp, hook: ProblemHook | None = None) -> None:
        self.app = app
        self.hook = hook

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:  # noqa: BLE001 - the point: nothing escapes to the server's traceback log
            route = getattr(scope.get("route"), "path", None) or "(no route)"
            log.error("unhandled %s at %s on %s %s", type(exc).__name__, _origin(exc), scope.get("method"), route)
            if started:
                return  # the answer is half sent: nothing else can be said; the server closes the connection
            body = problem_body(
                500,
                "internal-error",
                "the server failed while handling this request; it has been logged. If this was a submission, "
                "look its tx_id up before resending",
            )
            response = problem_response(body, hook=self.hook, fhir=outcome.is_fhir_path(str(scope.get("path", ""))))
            await response(scope, receive, send)


def install(app: FastAPI, hook: ProblemHook | None = None) -> OperatorLog:
    """Route every exception the app can raise to a problem+json answer.

    Operator faults (:class:`OperatorError`, and OS or SQLite errors nothing caught) are answered 503 with
    their pathless sentence; their cause goes to the log through one :class:`OperatorLog` per app, which is
    returned so middleware outside these handlers reports to the same one.
    """
    operator_log = OperatorLog()

    async def on_medledger(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, MedledgerError)
        return error_response(exc, fhir=_fhir(request), hook=hook, operator_log=operator_log)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return problem_response(_validation_problem(exc), hook=hook, fhir=_fhir(request))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(_http_problem(request, exc), headers=exc.headers, hook=hook, fhir=_fhir(request))

    async def on_storage(request: Request, exc: Exception) -> Response:
        # its own handler, not left to _Contain: an operator fault is a 503 with its cause logged once,
        # not a 500 per request
        fault = _storage_fault(exc)
        operator_log.report(fault, exc_info=exc)
        return problem_response(fault.to_problem(), hook=hook, fhir=_fhir(request))

    async def on_gone(request: Request, exc: Exception) -> Response:
        # The client hung up, or was cut off on a deadline (api/connections.py), before its body arrived:
        # nothing was acted on, nobody is left to read an answer, and it is no fault of ours to log loudly.
        log.info("client left before its request body arrived: %s %s", request.method, request.url.path)
        body = problem_body(400, "client-disconnected", "the connection closed before the request body arrived")
        return problem_response(body, hook=hook, fhir=_fhir(request))

    app.add_exception_handler(MedledgerError, on_medledger)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(OSError, on_storage)
    app.add_exception_handler(sqlite3.Error, on_storage)
    app.add_exception_handler(ClientDisconnect, on_gone)
    app.add_middleware(_Contain, hook=hook)
    return operator_log
