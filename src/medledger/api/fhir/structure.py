"""The structural half of a FHIR write, run in worker processes: parse, bound, validate against R4.

Why processes: validating a 2,000-entry Bundle against the ``fhir.resources``
models is seconds of pure-Python work that holds the interpreter lock. On the
event loop it froze every route (health checks, native submissions) for
~3 s; moved to a thread it still starves the loop's thread of the lock. So a
small pool of worker processes, at lower CPU priority than the node, does it
(``bench/fhir_load.py`` measures the effect). What comes back is small and
plain: the issues found, and each acceptable resource as its JSON bytes,
which the request's thread then decodes one entry at a time (short holds of
the lock) for mapping. Nothing here reads ledger state: that stays in the
node's process, with the mapping.

Every body goes through :func:`medledger.ledger.canonical.parse_document`:
duplicate keys and nesting deeper than MAX_DEPTH are refused before any R4
model (which recurses once per level) sees the value.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from medledger.api.fhir import outcome
from medledger.errors import EncodingError, MedledgerError, StoreError
from medledger.ledger.canonical import parse_document

MAX_BUNDLE_ENTRIES = 2000
#: worker processes validating FHIR bodies: the node's checks and the event loop keep the rest of the machine
MAX_WORKERS = max(1, min(2, (os.cpu_count() or 1) // 2))
#: CPU priority of the workers, below the node's: bulk validation yields to ingest and to answering
WORKER_NICENESS = 10

T = TypeVar("T")


@dataclass(frozen=True)
class Failure:
    """The body as a whole is refused (not JSON, too deep, a duplicate key, not a Bundle, too many entries)."""

    message: str
    code: str
    status: int

    def error(self) -> MedledgerError:
        return EncodingError(self.message, code=self.code, status=self.status)


@dataclass(frozen=True)
class Checked:
    """One resource after the structural checks: its JSON bytes (None: the entry had no resource object)
    and the issues found (none: it passed)."""

    index: int
    path: str
    full_url: str | None = None
    resource: bytes | None = None
    issues: list[dict[str, Any]] = field(default_factory=list)
    method_ok: bool = True


@dataclass(frozen=True)
class BundleCheck:
    """A Bundle after the structural checks: its type, Bundle-level issues, every entry in order."""

    kind: str
    issues: list[dict[str, Any]]
    entries: list[Checked]


def _expression(base: str, loc: Sequence[Any]) -> str:
    out = base
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = str(part)
            out += "." + (name[: -len("__ext")] if name.endswith("__ext") else name)
    return out


def validate_resource(resource: Any, path: str, expected: str | None = None) -> list[dict[str, Any]]:
    """Issues (empty when valid) of a JSON value against the R4 model of its resourceType."""
    if not isinstance(resource, dict):
        return [outcome.issue("a resource must be a JSON object", code="structure", expression=[path])]
    kind = resource.get("resourceType")
    if not isinstance(kind, str):
        return [outcome.issue("the resource has no resourceType", code="required", expression=[path])]
    if expected is not None and kind != expected:
        return [
            outcome.issue(
                f"the body is a {kind[:40]}, but was posted to /fhir/{expected}", code="invalid", expression=[path]
            )
        ]
    try:
        model = get_fhir_model_class(kind)
    except (ValueError, KeyError, AttributeError):
        return [outcome.issue(f"{kind[:40]!r} is not a FHIR R4 resource type", code="not-supported", expression=[path])]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            outcome.issue(
                f"{_expression(path, err.get('loc', ()))}: {err['msg']}",
                code="structure" if err.get("type") == "extra_forbidden" else "value",
                expression=[_expression(path, err.get("loc", ()))],
            )
            for err in exc.errors()[:50]
        ]
    except (TypeError, ValueError) as exc:  # fhir.resources raises a few plain errors on odd shapes
        return [outcome.issue(f"{path}: {exc}", code="value", expression=[path])]
    return []


def check_resource(body: bytes, expected: str) -> Checked | Failure:
    """The single resource of ``POST /fhir/{expected}`` (worker side)."""
    try:
        resource = parse_document(body)
    except MedledgerError as exc:
        return Failure(exc.message, exc.code, exc.status)
    issues = validate_resource(resource, expected, expected)
    return Checked(0, expected, resource=body, issues=issues)


def check_bundle(body: bytes) -> BundleCheck | Failure:
    """A transaction or batch Bundle of ``POST /fhir`` (worker side): every entry checked, in order."""
    try:
        bundle = parse_document(body)
    except MedledgerError as exc:
        return Failure(exc.message, exc.code, exc.status)
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return Failure('POST /fhir takes a Bundle (resourceType "Bundle")', "invalid", 400)
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        issue = outcome.issue(
            f"POST /fhir processes Bundles of type transaction or batch, not {str(kind)[:40]!r}",
            code="not-supported",
            expression=["Bundle.type"],
        )
        return BundleCheck(str(kind), [issue], [])
    raw_entries = bundle.get("entry") or []
    if not isinstance(raw_entries, list):
        return Failure("Bundle.entry must be a list of entries", "invalid", 400)
    if len(raw_entries) > MAX_BUNDLE_ENTRIES:
        return Failure(
            f"Bundle.entry holds {len(raw_entries)} entries; a Bundle may hold at most {MAX_BUNDLE_ENTRIES} "
            "entries: split it",
            "too-large",
            413,
        )
    issues = validate_resource({k: v for k, v in bundle.items() if k != "entry"}, "Bundle")
    entries: list[Checked] = []
    for i, raw in enumerate(raw_entries):
        path = f"Bundle.entry[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("resource"), dict):
            missing = outcome.issue("each entry needs a resource", code="required", expression=[path])
            issues.append(missing)
            # a batch answers every entry it was sent, in order: this one with its own refusal
            entries.append(Checked(i, f"{path}.resource", issues=[missing]))
            continue
        resource = raw["resource"]
        full_url = raw.get("fullUrl") if isinstance(raw.get("fullUrl"), str) else None
        problems = validate_resource(resource, f"{path}.resource")
        request_part: dict[str, Any] = raw["request"] if isinstance(raw.get("request"), dict) else {}
        method = request_part.get("method", "POST")
        method_ok = method == "POST"
        if not method_ok:
            problems.append(
                outcome.issue(
                    f"the facade only creates resources (request.method POST), not {str(method)[:10]}: the ledger "
                    "never updates or deletes a record",
                    code="not-supported",
                    expression=[f"{path}.request.method"],
                )
            )
        entries.append(
            Checked(
                i,
                f"{path}.resource",
                full_url,
                resource=orjson.dumps(resource),
                issues=problems,
                method_ok=method_ok,
            )
        )
    return BundleCheck(str(kind), issues, entries)


# -- the pool ----------------------------------------------------------------------------------------------

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _start_worker() -> None:
    with contextlib.suppress(OSError):  # not permitted: run at the node's priority
        os.nice(WORKER_NICENESS)
    get_fhir_model_class("Patient")  # import the R4 models before the first request needs them


def _executor() -> ProcessPoolExecutor:
    """One pool per process, started on the first FHIR write, shared by every app in it (spawned:
    the node's threads and SQLite handles must not be forked)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                MAX_WORKERS, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
            )
        return _pool


async def offload(fn: Callable[..., T], *args: Any) -> T:
    """Run a check of this module in the worker pool; a pool that broke (a worker killed) is replaced."""
    global _pool
    pool = _executor()
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    except BrokenProcessPool:
        with _pool_lock:
            if _pool is pool:
                _pool = None
        raise StoreError(
            "the FHIR validation worker stopped while checking this request; nothing was written, resend it",
            code="worker-lost",
            status=503,
        ) from None
