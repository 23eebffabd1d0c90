"""The FHIR read side: ``GET /fhir/metadata``, ``GET /fhir/{Type}/{id}`` and ``GET /fhir/{Type}`` (search).

Reads are answered from the projection (:mod:`medledger.api.fhir.projection`),
which indexes committed blocks, so every resource shown is one the ledger
holds, whichever path wrote it. Routes are plain ``def``: FastAPI runs them
in its thread pool, where each thread reads SQLite through its own WAL
connection instead of stalling the event loop.

Search refuses what it does not apply: an unknown parameter, a modifier or an
unsupported ``_lastUpdated`` prefix is a 400 OperationOutcome naming it,
because a client whose filter was silently dropped would act on the wrong
set of records. ``Prefer: handling=lenient`` makes them ignored instead, and
the ``self`` link then shows only what was applied (FHIR R4 §3.1.1.5.2).

Scoping: the regulator and auditors (supervisors) see every row; any other
member sees the rows its own institution's members recorded, and a row it may
not see is answered exactly like one that does not exist (404, or absent from
a search), so nobody learns which ids other institutions use.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import Depends, FastAPI, Path, Request
from starlette.responses import Response

from medledger.api.access import Caller, requires
from medledger.api.fhir import conventions as cv
from medledger.api.fhir import outcome
from medledger.api.fhir.capability import (
    COMMON_PARAMS,
    CONTROL_PARAMS,
    FHIR_VERSION,
    TYPE_PARAMS,
    capability_statement,
    search_params,
)
from medledger.api.fhir.outcome import FHIR_JSON
from medledger.api.fhir.projection import Projection, Query
from medledger.api.fhir.render import RESOURCE_TYPES
from medledger.errors import MedledgerError, NotFoundError
from medledger.ledger.timefmt import format_ms
from medledger.node.node import Node

DEFAULT_COUNT = 50
MAX_COUNT = 500
#: `_format` values meaning JSON (FHIR R4 §3.1.0.1.7); XML ones are refused with 406
JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "application/json+fhir"})
XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml", "application/xml+fhir"})
#: Accept media ranges under which we can answer
ACCEPTABLE = frozenset({"*/*", "application/*", *JSON_FORMATS - {"json"}})
_TYPES = frozenset(RESOURCE_TYPES)
_DATE = re.compile(
    r"(?P<prefix>[a-z]{2})?(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2}):(?P<minute>\d{2})(:(?P<second>\d{2})(\.(?P<fraction>\d{1,9}))?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
#: what _DATE accepts with a supported prefix, as an OpenAPI (ECMA) pattern
_DATE_PATTERN = (
    r"^(eq|ge|gt|le|lt)?[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|[+-][0-9]{2}:[0-9]{2})?)?)?)?$"
)
#: FHIR comparison prefix -> how a value's implicit range [start, end) bounds last_updated
_PREFIXES = ("eq", "ge", "gt", "le", "lt")


# -- what /openapi.json says about these routes (component schemas are added by the app's OpenAPI builder) --


#: component schemas of the read side's answers; ``FhirResource`` is shared with the write side
OPENAPI_SCHEMAS: dict[str, dict[str, Any]] = {
    "FhirResource": {
        "type": "object",
        "description": "a FHIR R4 resource of one of the types the facade serves, as the ledger holds it",
        "required": ["resourceType", "id"],
        "properties": {
            "resourceType": {"enum": list(RESOURCE_TYPES)},
            "id": {"type": "string"},
            "meta": {"type": "object"},
        },
    },
    "CapabilityStatement": {
        "type": "object",
        "description": "the FHIR R4 CapabilityStatement of this facade",
        "required": ["resourceType", "status", "kind", "fhirVersion", "format", "rest"],
        "properties": {
            "resourceType": {"const": "CapabilityStatement"},
            "status": {"const": "active"},
            "kind": {"const": "instance"},
            "fhirVersion": {"const": FHIR_VERSION},
            "format": {"type": "array", "items": {"type": "string"}},
            "rest": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["mode", "resource"],
                    "properties": {
                        "mode": {"const": "server"},
                        "resource": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["type", "interaction"],
                                "properties": {"type": {"enum": list(RESOURCE_TYPES)}},
                            },
                        },
                    },
                },
            },
        },
    },
    "SearchsetBundle": {
        "type": "object",
        "description": "a FHIR R4 Bundle of type searchset: one page of matches, `total` counting them all",
        "required": ["resourceType", "type", "total", "link"],
        "properties": {
            "resourceType": {"const": "Bundle"},
            "type": {"const": "searchset"},
            "total": {"type": "integer", "minimum": 0},
            "link": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["relation", "url"],
                    "properties": {"relation": {"enum": ["self", "next"]}, "url": {"type": "string"}},
                },
            },
            "entry": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["fullUrl", "resource", "search"],
                    "properties": {
                        "fullUrl": {"type": "string"},
                        "resource": outcome.schema_ref("FhirResource"),
                        "search": {
                            "type": "object",
                            "required": ["mode"],
                            "properties": {"mode": {"const": "match"}},
                        },
                    },
                },
            },
        },
    },
}


def _fhir_json(description: str, schema: str) -> dict[str, Any]:
    """A ``responses`` entry: ``application/fhir+json`` only (the routes' ``response_class=Response`` keeps
    FastAPI from documenting an ``application/json`` answer they never send)."""
    return {"description": description, "content": {FHIR_JSON: {"schema": outcome.schema_ref(schema)}}}


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False, "description": description}
    if schema.get("type") == "array":
        param.update(style="form", explode=True)  # repeat the parameter, one value each
    param["schema"] = schema
    return param


def _format_parameter() -> dict[str, Any]:
    """``_format``, which every read interaction honours (``negotiate``); documented so it is accepted."""
    return _query(
        "_format", "overrides Accept; this server answers FHIR JSON only (XML formats are a 406)",
        {"enum": sorted(JSON_FORMATS)},
    )


def _search_parameters() -> list[dict[str, Any]]:
    """The query parameters ``parse_search`` applies, documented; it validates them itself (unknown ones are
    a 400 OperationOutcome unless ``Prefer: handling=lenient``), so FastAPI never sees them."""
    where: dict[str, list[str]] = {}
    docs: dict[str, str] = {}
    for resource_type, own in TYPE_PARAMS.items():
        for name, (_, doc) in own.items():
            where.setdefault(name, []).append(resource_type)
            docs.setdefault(name, doc.split(":")[0])
    repeated = "; repeat the parameter to AND several"
    params: list[dict[str, Any]] = [
        _query("_id", COMMON_PARAMS["_id"][1] + repeated, {"type": "array", "items": {"type": "string"}}),
        _query(
            "_lastUpdated",
            COMMON_PARAMS["_lastUpdated"][1],
            {"type": "array", "items": {"type": "string", "pattern": _DATE_PATTERN}},
        ),
        _query("_count", COMMON_PARAMS["_count"][1], {"type": "integer", "minimum": 0}),
    ]
    for name, types in where.items():
        params.append(
            _query(
                name,
                f"{docs[name]}; several separated by commas{repeated}. Only on " + ", ".join(types),
                {"type": "array", "items": {"type": "string"}},
            )
        )
    params += [
        _query("_cursor", "page cursor: copy it from the `next` link of the previous page", {"type": "string"}),
        _format_parameter(),
        _query(
            "_total", "totals are always exact, whatever is asked", {"enum": sorted(CONTROL_PARAMS["_total"] or ())}
        ),
        _query(
            "_totalMethod",
            "fhirpy's spelling of _total; totals are always exact",
            {"enum": sorted(CONTROL_PARAMS["_totalMethod"] or ())},
        ),
        _query("_summary", "count: the total only, no entries", {"enum": sorted(CONTROL_PARAMS["_summary"] or ())}),
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": "`handling=lenient`: ignore unknown search parameters instead of refusing them with "
            "400 (the `self` link shows what was applied)",
            "schema": {"type": "string"},
        },
    ]
    return params


def _bad(message: str, code: str = "invalid-search") -> MedledgerError:
    return MedledgerError(message, code=code, status=400)


def negotiate(request: Request) -> None:
    """JSON only: ``_format`` or an Accept header asking for something else is a 406."""
    formats = request.query_params.getlist("_format")
    for value in formats:
        media = value.strip().split(";")[0].strip().lower()
        if media in XML_FORMATS:
            raise MedledgerError(
                "this server speaks FHIR JSON only; use _format=json (or application/fhir+json)",
                code="not-acceptable",
                status=406,
            )
        if media not in JSON_FORMATS:
            raise MedledgerError(
                f"_format={value!r} is not a format this server knows; use json or application/fhir+json",
                code="not-acceptable",
                status=406,
            )
    if formats:
        return  # _format overrides Accept (FHIR R4 §3.1.0.1.7)
    accept = request.headers.get("accept")
    if not accept or not accept.strip():
        return
    for part in accept.split(","):
        fields = [f.strip() for f in part.split(";")]
        media = fields[0].lower()
        quality = next((f[2:] for f in fields[1:] if f.lower().startswith("q=")), "1")
        try:
            acceptable = float(quality) > 0
        except ValueError:
            acceptable = True
        if acceptable and (media in ACCEPTABLE or media.endswith("+json")):
            return
    raise MedledgerError(
        f"Accept: {accept[:80]} names nothing this server produces; it answers application/fhir+json only",
        code="not-acceptable",
        status=406,
    )


def _known_type(resource_type: str) -> None:
    if resource_type not in _TYPES:
        raise MedledgerError(
            f"resource type {resource_type[:64]!r} is not served here; the facade serves " + ", ".join(RESOURCE_TYPES),
            code="not-supported",
            status=404,
        )


def prefers_lenient(request: Request) -> bool:
    """Whether the request asks (FHIR `Prefer: handling=lenient`) to have unknown parameters ignored."""
    prefer = request.headers.get("prefer", "")
    return any(p.strip().lower() == "handling=lenient" for p in prefer.split(","))


def _range(value: str) -> tuple[str, int, int]:
    """(prefix, start ms, end ms) of a FHIR date/dateTime search value: the implicit range [start, end)."""
    match = _DATE.fullmatch(value)
    if match is None:
        raise _bad(
            f"_lastUpdated={value!r} is not a FHIR date or dateTime (e.g. ge2026-11-24 or lt2026-11-24T08:00:00Z)"
        )
    prefix = match["prefix"] or "eq"
    if prefix not in _PREFIXES:
        raise _bad(f"_lastUpdated prefix {prefix!r} is not supported; use one of {', '.join(_PREFIXES)}")
    year, month, day = int(match["year"]), int(match["month"] or 1), int(match["day"] or 1)
    hour, minute, second = int(match["hour"] or 0), int(match["minute"] or 0), int(match["second"] or 0)
    fraction = match["fraction"] or ""
    try:
        start_s = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
        if not (
            1 <= month <= 12
            and 1 <= day <= calendar.monthrange(year, month)[1]
            and hour < 24
            and minute < 60
            and second < 60
        ):
            raise ValueError
    except (ValueError, OverflowError):
        raise _bad(f"_lastUpdated={value!r} is not a real date or time") from None
    zone = match["zone"]
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        start_s -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    start = start_s * 1000 + int((fraction + "000")[:3])
    if match["day"] is None:
        if match["month"] is None:
            end = calendar.timegm((year + 1, 1, 1, 0, 0, 0, 0, 0, 0)) * 1000
        else:
            nxt = (year + month // 12, month % 12 + 1)
            end = calendar.timegm((nxt[0], nxt[1], 1, 0, 0, 0, 0, 0, 0)) * 1000
    elif match["hour"] is None:
        end = start + 86_400_000
    elif match["second"] is None:
        end = start + 60_000
    elif not fraction:
        end = start + 1000
    else:
        end = start + max(1, 10 ** (3 - min(len(fraction), 3)))
    return prefix, start, end


def _bounds(prefix: str, start: int, end: int) -> list[tuple[str, int]]:
    return {
        "eq": [(">=", start), ("<", end)],
        "ge": [(">=", start)],
        "gt": [(">=", end)],
        "le": [("<", end)],
        "lt": [("<", start)],
    }[prefix]


def _reference(name: str, value: str, target: str) -> str:
    """The logical id a reference search value names: ``Type/id``, a URL ending in it, or a bare id."""
    text = value.strip()
    if "/" in text:
        parts = text.rstrip("/").split("/")
        if len(parts) < 2 or parts[-2] != target:
            raise _bad(f"{name}={value[:80]!r} must reference a {target} ({target}/<id> or the bare id)")
        text = parts[-1]
    if not cv.is_fhir_id(text):
        raise _bad(f"{name}={value[:80]!r} does not name a valid FHIR logical id")
    return text


@dataclass
class _Search:
    """A parsed search: the projection query, whether it can match anything, and the params applied."""

    query: Query
    empty: bool = False
    applied: list[tuple[str, str]] = field(default_factory=list)


def parse_search(resource_type: str, request: Request, org: str | None) -> _Search:
    supported = search_params(resource_type)
    lenient = prefers_lenient(request)
    unknown: list[str] = []
    values: dict[str, set[str] | None] = {"_id": None, "patient": None, "practitioner": None}
    updated: list[tuple[str, int]] = []
    count, after, summary_count = DEFAULT_COUNT, None, False
    applied: list[tuple[str, str]] = []
    for name, value in request.query_params.multi_items():
        if name in CONTROL_PARAMS:
            allowed = CONTROL_PARAMS[name]
            if allowed is not None and value not in allowed:
                raise _bad(f"{name}={value[:40]!r} is not supported; use one of {', '.join(sorted(allowed))}")
            if name == "_cursor":
                if not cv.is_fhir_id(value):
                    raise _bad(f"_cursor={value[:80]!r} is not a page cursor this server issued")
                after = value
            elif name == "_summary" and value == "count":
                summary_count = True
            if name != "_format":
                applied.append((name, value))
            continue
        if name not in supported:
            unknown.append(name)
            continue
        applied.append((name, value))
        if name == "_count":
            try:
                count = int(value)
            except ValueError:
                raise _bad(f"_count={value[:40]!r} must be a whole number (0 to {MAX_COUNT})") from None
            if count < 0:
                raise _bad(f"_count={value!r} must not be negative")
            count = min(count, MAX_COUNT)
        elif name == "_lastUpdated":
            updated += _bounds(*_range(value))
        else:
            target = "Patient" if name == "patient" else "Practitioner"
            ids = {
                _reference(name, part, target) if name != "_id" else _reference(name, part, resource_type)
                for part in value.split(",")
            }
            current = values[name]
            values[name] = ids if current is None else current & ids  # repeated parameters AND
    if unknown and not lenient:
        raise _bad(
            f"search parameter(s) {', '.join(sorted(set(unknown)))} not supported on {resource_type}; supported: "
            + ", ".join(supported)
            + " (send `Prefer: handling=lenient` to have unknown parameters ignored)",
            code="unsupported-search-parameter",
        )
    empty = any(v is not None and not v for v in values.values())
    query = Query(
        resource_type,
        ids=sorted(values["_id"] or ()),
        patients=sorted(values["patient"] or ()),
        practitioners=sorted(values["practitioner"] or ()),
        updated=updated,
        org=org,
        after=after,
        count=0 if summary_count else count,
    )
    return _Search(query, empty, applied)


def _scope(caller: Caller) -> str | None:
    """None for supervisors (every row); otherwise the caller's institution ("" matches nothing)."""
    return None if caller.supervisor else (caller.org or "")


def _http_date(ms: int) -> str:
    return formatdate(ms / 1000, usegmt=True)


#: the ``{type}`` path parameter; its enum is documentation only (others are answered 404 by ``_known_type``)
TypeParam = Annotated[
    str,
    Path(
        alias="type",
        max_length=64,
        description="a FHIR resource type the facade serves",
        json_schema_extra={"enum": list(RESOURCE_TYPES)},
    ),
]


def install_reads(app: FastAPI, node: Node) -> None:
    """Add GET /fhir/metadata, GET /fhir/{Type}/{id} and GET /fhir/{Type} (search)."""
    projection = Projection(node)
    node.add_listener(projection.on_block)
    projection.start_follower()  # catch up from the ledger in the background; reads catch up themselves
    app.state.fhir_projection = projection
    started = format_ms(node.config.clock())[:10]
    writes: list[bool] = []

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/") + "/fhir"

    def writes_mounted() -> bool:
        """Whether POST /fhir is served (decided once, after every route is installed)."""
        if not writes:
            writes.append(
                any(
                    getattr(route, "path", None) == "/fhir" and "POST" in (getattr(route, "methods", None) or ())
                    for route in app.routes
                )
            )
        return writes[0]

    @app.get(
        "/fhir/metadata",
        summary="FHIR CapabilityStatement",
        tags=["fhir"],
        response_class=Response,
        responses={200: _fhir_json("an R4 CapabilityStatement", "CapabilityStatement")},
        openapi_extra={"parameters": [_format_parameter()]},
    )
    def fhir_metadata(request: Request, _: Annotated[Caller, Depends(requires("fhir.metadata"))]) -> Response:
        negotiate(request)
        body = capability_statement(base_url(request), writes=writes_mounted(), date=started)
        return Response(orjson.dumps(body), media_type=FHIR_JSON)

    @app.get(
        "/fhir/{type}/{id}",
        summary="Read one FHIR resource",
        tags=["fhir"],
        response_class=Response,
        responses={200: _fhir_json("the resource's latest version", "FhirResource")},
        openapi_extra={"parameters": [_format_parameter()]},
    )
    def fhir_read(
        request: Request,
        resource_type: TypeParam,
        logical_id: Annotated[str, Path(alias="id", max_length=200, description="the logical id")],
        caller: Annotated[Caller, Depends(requires("fhir.read"))],
    ) -> Response:
        negotiate(request)
        _known_type(resource_type)
        found = projection.read(resource_type, logical_id, _scope(caller)) if cv.is_fhir_id(logical_id) else None
        if found is None:
            raise NotFoundError(f"no {resource_type}/{logical_id[:64]} that this caller may read")
        body, version, updated = found
        return Response(
            body,
            media_type=FHIR_JSON,
            headers={"ETag": f'W/"{version}"', "Last-Modified": _http_date(updated)},
        )

    @app.get(
        "/fhir/{type}",
        summary="Search FHIR resources of one type",
        description="Unknown parameters, modifiers and unsupported prefixes are refused with a 400 "
        "OperationOutcome naming them, unless the request says `Prefer: handling=lenient`.",
        tags=["fhir"],
        response_class=Response,
        responses={200: _fhir_json("a searchset Bundle", "SearchsetBundle")},
        openapi_extra={"parameters": _search_parameters()},
    )
    def fhir_search(
        request: Request,
        resource_type: TypeParam,
        caller: Annotated[Caller, Depends(requires("fhir.read"))],
    ) -> Response:
        negotiate(request)
        _known_type(resource_type)
        search = parse_search(resource_type, request, _scope(caller))
        base = base_url(request)
        query = search.query
        page = projection.search(query) if not search.empty else None
        own = [(k, v) for k, v in search.applied if k not in ("_count", "_cursor")] + [("_count", str(query.count))]
        links = [{"relation": "self", "url": _url(base, resource_type, own, query.after)}]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": 0}
        entries: list[dict[str, Any]] = []
        if page is not None:
            bundle["total"] = page.total
            if page.more and page.last_id is not None and query.count > 0:
                links.append({"relation": "next", "url": _url(base, resource_type, own, page.last_id)})
            for logical_id, raw in page.resources:
                entries.append(
                    {
                        "fullUrl": f"{base}/{resource_type}/{logical_id}",
                        "resource": orjson.Fragment(raw),
                        "search": {"mode": "match"},
                    }
                )
        bundle["link"] = links
        if entries:
            bundle["entry"] = entries
        return Response(orjson.dumps(bundle), media_type=FHIR_JSON)


def _url(base: str, resource_type: str, params: list[tuple[str, str]], cursor: str | None) -> str:
    query = list(params) + ([("_cursor", cursor)] if cursor is not None else [])
    return f"{base}/{resource_type}" + ("?" + urlencode(query) if query else "")
