"""Query parameters a route does not accept are refused, on every route.

A misspelt filter that is silently ignored answers a different question than
the one asked (``/v1/alerts?rules=RX-LIMITS`` returned every alert), and the
client cannot tell. So each route accepts exactly the query parameters
``/openapi.json`` documents for it (those FastAPI parses, and those a route
parses itself and documents in ``openapi_extra``, as the FHIR search does), and
anything else is a 400 naming it: the documentation is the one place of the fact.

Under ``/fhir`` the FHIR rule applies: strict by default, and a request that
says ``Prefer: handling=lenient`` has unknown parameters ignored instead.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from medledger.api.fhir.outcome import is_fhir_path
from medledger.api.fhir.reads import prefers_lenient
from medledger.errors import MedledgerError


def documented_query(schema: Mapping[str, Any], path: str, method: str) -> frozenset[str]:
    """The query parameter names ``/openapi.json`` documents for ``method path`` (none if undocumented)."""
    operation = schema.get("paths", {}).get(path, {}).get("get" if method == "HEAD" else method.lower(), {})
    return frozenset(str(p["name"]) for p in operation.get("parameters", ()) if p.get("in") == "query")


def refuse_unknown_query() -> Callable[[Request], Awaitable[None]]:
    """An app-wide dependency: 400 ``unknown-parameter`` for a query parameter the matched route does not take.

    One per app: the accepted names are worked out once per route, on its first request.
    """
    # (id(route), method): routes live as long as their app, and so does this
    accepted: dict[tuple[int, str], frozenset[str]] = {}

    async def dependency(request: Request) -> None:
        route = request.scope.get("route")
        if not isinstance(route, APIRoute) or not request.query_params:
            return
        key = (id(route), request.method)
        names = accepted.get(key)
        if names is None:
            names = accepted[key] = documented_query(request.app.openapi(), route.path, request.method)
        unknown = sorted({name for name in request.query_params if name not in names})
        if not unknown:
            return
        fhir = is_fhir_path(request.url.path)
        if fhir and prefers_lenient(request):
            return
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        offered = ", ".join(sorted(names)) if names else "none"
        detail = (
            f"query parameter(s) {shown} not accepted by {request.method} {route.path}; it accepts: {offered}"
            + (" (send `Prefer: handling=lenient` to have unknown parameters ignored)" if fhir else "")
        )
        raise MedledgerError(
            detail,
            code="unknown-parameter",
            status=400,
            invalid_params=[{"name": n, "in": "query", "reason": "not a parameter of this route"} for n in unknown],
        )

    return dependency
