"""FHIR's error shape: every refusal under ``/fhir`` is an ``OperationOutcome``, never problem+json.

FHIR clients (fhirpy, fhirclient, HAPI) parse ``OperationOutcome`` and show
its ``diagnostics``; they do not know RFC 9457. The facade therefore speaks
the same sentences and codes as the rest of the API, in FHIR's envelope:
``issue.code`` from FHIR's IssueType value set, ``issue.details`` carrying
medledger's machine-readable code (a problem code or contract rule ids), and
``issue.expression`` pointing at the offending element when one is known.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
from starlette.responses import Response

FHIR_JSON = "application/fhir+json"
#: system of ``issue.details.coding``: medledger problem codes and contract rule ids
CODE_SYSTEM = "https://medledger.dev/fhir/CodeSystem/codes"

#: HTTP status -> FHIR IssueType (http://hl7.org/fhir/R4/valueset-issue-type.html)
_ISSUE_TYPE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    503: "transient",
}


def issue(
    diagnostics: str,
    *,
    code: str = "invalid",
    severity: str = "error",
    details: Iterable[str] = (),
    expression: Sequence[str] = (),
) -> dict[str, Any]:
    """One ``OperationOutcome.issue``; ``details`` are medledger codes (problem codes or rule ids)."""
    item: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    codes = list(details)
    if codes:
        item["details"] = {"coding": [{"system": CODE_SYSTEM, "code": c} for c in codes]}
    if expression:
        item["expression"] = list(expression)
    return item


def operation_outcome(issues: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [dict(i) for i in issues]}


def issue_type(status: int) -> str:
    if status >= 500:
        return "exception"
    return _ISSUE_TYPE.get(status, "invalid")


def from_problem(problem: Mapping[str, Any]) -> dict[str, Any]:
    """The OperationOutcome saying what an RFC 9457 problem body says."""
    status = int(problem.get("status", 500))
    code = str(problem.get("code", "error"))
    issues = [issue(str(problem.get("detail", code)), code=issue_type(status), details=[code])]
    for param in problem.get("invalid_params") or ():
        if isinstance(param, Mapping):
            issues.append(
                issue(
                    f"{param.get('in', 'request')} parameter {param.get('name')}: {param.get('reason')}",
                    code="invalid",
                    details=[code],
                )
            )
    return operation_outcome(issues)


def fhir_response(
    body: Mapping[str, Any], status: int = 200, *, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type=FHIR_JSON, headers=dict(headers) if headers else None
    )


def is_fhir_path(path: str) -> bool:
    return path == "/fhir" or path.startswith("/fhir/")


def schema_ref(name: str) -> dict[str, str]:
    """An OpenAPI reference to a component schema (the app's OpenAPI builder adds the FHIR ones)."""
    return {"$ref": f"#/components/schemas/{name}"}
