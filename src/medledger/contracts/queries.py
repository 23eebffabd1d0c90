"""Supervision read models over world state: institutions, practitioners, a prescription's chain.

These read the same state the rules judge by (see :mod:`medledger.contracts.world`)
and shape it for people: dates as dates, ids as the ledger writes them. They
know nothing about HTTP; the API adds transport, proofs and errors. Listings
page by state key (a stable cursor), so a regulator paging through thousands
of practitioners never sees one twice or misses one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from medledger.ledger.timefmt import format_ms


class StateScan(Protocol):
    def get_state(self, key: str) -> Any | None: ...

    def state_range(self, prefix: str, *, after: str | None = None, limit: int = 100) -> list[tuple[str, Any]]: ...


def _day(ms: int | None) -> str | None:
    return None if ms is None else format_ms(ms)[:10]


def _validity(v: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if v is None else {"valid_from": _day(v["from"]), "valid_until": _day(v["until"])}


def _scan(
    store: StateScan, prefix: str, after: str | None, limit: int, keep: Callable[[str, Any], bool]
) -> tuple[list[tuple[str, Any]], str | None]:
    """Up to ``limit`` entries under ``prefix`` that ``keep`` accepts, and the cursor to continue from
    (None once the scan reached the end)."""
    found: list[tuple[str, Any]] = []
    cursor = None if after is None else prefix + after
    page_size = max(limit, 200)
    while True:
        page = store.state_range(prefix, after=cursor, limit=page_size)
        for key, value in page:
            cursor = key
            if keep(key, value):
                found.append((key, value))
                if len(found) == limit:
                    return found, key[len(prefix) :]
        if len(page) < page_size:
            return found, None


def institution_view(org: str, inst: dict[str, Any], *, public: bool = False) -> dict[str, Any]:
    """An institution as the supervision screen shows it; ``public`` keeps what anyone may check."""
    lic = inst["licence"]
    view: dict[str, Any] = {
        "org": org,
        "name": inst["name"],
        "kind": inst["kind"],
        "status": inst["status"],
        "licence": {"number": lic["number"], **(_validity(lic) or {})},
        "internet_approval": _validity(inst.get("internet")),
    }
    if not public:
        view["physical"] = inst["physical"]
        view["admitted_tx"] = inst["tx"]
        view["status_tx"] = inst.get("status_tx")
    return view


def institutions(
    store: StateScan,
    *,
    kind: str | None = None,
    status: str | None = None,
    after: str | None = None,
    limit: int = 100,
    public: bool = False,
) -> tuple[list[dict[str, Any]], str | None]:
    def keep(_key: str, inst: Any) -> bool:
        return (kind is None or inst["kind"] == kind) and (status is None or inst["status"] == status)

    rows, cursor = _scan(store, "inst/", after, limit, keep)
    return [institution_view(key[len("inst/") :], inst, public=public) for key, inst in rows], cursor


def practitioners(
    store: StateScan,
    *,
    profession: str | None = None,
    status: str | None = None,
    org: str | None = None,
    after: str | None = None,
    limit: int = 100,
) -> tuple[list[dict[str, Any]], str | None]:
    """Practitioners by licence number, with every institution they are registered or filed at."""

    def keep(_key: str, prac: Any) -> bool:
        if profession is not None and prac["profession"] != profession:
            return False
        if status is not None and prac["status"] != status:
            return False
        return org is None or any(m.split("/")[0] == org for m in prac["members"])

    rows, cursor = _scan(store, "prac/", after, limit, keep)
    out = []
    for key, prac in rows:
        licence = key[len("prac/") :]
        sites = [
            {"org": site_key.rsplit("/", 1)[1], "filing": site["filing"], **(_validity(site) or {})}
            for site_key, site in store.state_range(f"site/{licence}/", limit=64)
        ]
        out.append(
            {
                "licence_no": licence,
                "profession": prac["profession"],
                "qualification": prac["qualification"],
                "first_practice": prac["first_practice"],
                "specialties": prac["specialties"],
                "status": prac["status"],
                "members": prac["members"],
                "sites": sites,
                "registered_tx": prac["tx"],
                "status_tx": prac.get("status_tx"),
            }
        )
    return out, cursor


def prescription_chain(store: StateScan, rx_id: str) -> list[tuple[str, str]] | None:
    """(step, tx_id) of everything one accepted prescription rests on and led to, in order; None if
    there is no accepted prescription ``rx_id`` (a REJECTED attempt changes no state: its evidence is
    the transaction itself and its alerts)."""
    rx = store.get_state("rx/" + rx_id)
    if rx is None:
        return None
    steps: list[tuple[str, str | None]] = []
    consult = store.get_state("consult/" + rx["consult"])
    if consult is not None:
        steps += [
            ("offline-diagnosis", consult.get("prior_tx")),
            ("doctor-real-name", consult.get("auth_tx")),
            ("consultation", consult["tx"]),
        ]
    steps += [("prescription", rx["tx"]), ("review", rx.get("review_tx"))]
    for dispense_id in rx["dispenses"]:
        dispense = store.get_state("dispense/" + dispense_id)
        if dispense is None:
            continue
        steps.append(("dispense", dispense["tx"]))
        steps += [("handover", tx) for tx in dispense["handover_txs"]]
        steps.append(("claim", dispense.get("claim_tx")))
    return [(step, tx) for step, tx in steps if tx is not None]
