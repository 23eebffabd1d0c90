"""World-state keys of the contracts and the small readers rules share.

State is the ledger's flat key-value map; this module is the one place that
knows how medical facts are laid out in it, so rules, handlers and queries
agree. Times are epoch milliseconds; dates are midnight UTC of that day.

* ``rulebook``: ``{version, params, formulary}``
* ``inst/<org>``: institution, its licence and Internet-diagnosis approval
* ``prac/<licence>``: a practitioner (the person, across institutions)
* ``staff/<member>``: which licence a member key belongs to
* ``site/<licence>/<org>``: a practice registration
* ``app/<org>/<app>``: a mobile app and its review
* ``auth/<member>``: a doctor's latest real-name authentication
* ``patient/<pseudonym>``: a verified patient
* ``dx/<document>``: an offline diagnosis, by its document digest
* ``consult/<id>``, ``count/<licence>/<day>``: consultations and daily counts
* ``rx/<id>``, ``supply/<pseudonym>/<group>``: prescriptions and supply windows
* ``rxdoc/<sha256>``: the prescription a doctor-signed prescription document backs (one each)
* ``dispense/<id>``, ``claim/<id>``
* ``complaint/<id>``, ``complaints/open``: complaints and the deadline queue
* ``report/<id>``: adverse-event and data-leak reports
"""

from __future__ import annotations

from typing import Any

from medledger.contracts import formulary
from medledger.contracts.catalogue import DEFAULT_PARAMS
from medledger.ledger.state import BlockState
from medledger.ledger.timefmt import format_ms

RULEBOOK = "rulebook"
OPEN_COMPLAINTS = "complaints/open"
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def rulebook(state: BlockState) -> tuple[int, dict[str, int], str]:
    """(version, params, formulary digest) in force; version 0 is the catalogue's defaults."""
    record = state.get(RULEBOOK)
    if record is None:
        return 0, DEFAULT_PARAMS, formulary.default().digest
    return int(record["version"]), record["params"], record["formulary"]


def local_ms(ms: int, params: dict[str, int]) -> int:
    """An instant shifted to the province's clock, for comparing with calendar dates.

    Dates on the ledger (licence validity, first practice, encounter dates,
    birth months) are the province's calendar dates, stored as midnight UTC of
    that date; an instant shifted by the published UTC offset compares with
    them directly, so a licence valid until 2026-03-31 runs to 23:59:59.999
    local time, not to 08:00 the next morning.
    """
    return ms + params["local_offset_min"] * 60_000


def local_day(ms: int, params: dict[str, int]) -> int:
    """The province's calendar day number of an instant (for per-day counts)."""
    return local_ms(ms, params) // DAY_MS


def months_between(birth_month: str, at_ms: int) -> int:
    """Whole calendar months from a birth month to the month of ``at_ms`` (an instant in province time).

    The ledger holds birth months, not dates, so the month a child turns N is
    still counted as under N: the rule errs toward asking for a guardian.
    """
    at = format_ms(at_ms)
    return (int(at[:4]) * 12 + int(at[5:7])) - (int(birth_month[:4]) * 12 + int(birth_month[5:7]))


def get(state: BlockState, kind: str, *parts: str) -> Any | None:
    return state.get(kind + "/" + "/".join(parts))


def put(state: BlockState, value: Any, kind: str, *parts: str) -> None:
    state.put(kind + "/" + "/".join(parts), value)
