"""Day-shaped arrivals: when cases start, and what kind of case each one is.

Online consultations in a province follow the day: almost nothing between
midnight and six, a morning peak, a lunch dip, an afternoon peak and an
evening one when people are home from work. Arrivals are a non-homogeneous
Poisson process over that shape in the province's local time (drawn by
thinning, from the simulation's one random source), so a run looks like a
real day on the supervision screen and the night stresses nothing.

Each arrival is a consultation most of the time, otherwise a public
complaint, an adverse-event report or a data-leak report; with probability
``violation_rate`` it carries a violation chosen by the
:class:`~medledger.sim.injection.Scheduler`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random

from medledger.sim.cases import ConsultCase, Planner
from medledger.sim.filings import FilingCase
from medledger.sim.injection import DAY, HOUR, MINUTE, Scheduler, Variant

#: relative arrival intensity for each local hour, 00:00 to 23:00
DAY_SHAPE = (
    0.15, 0.08, 0.05, 0.05, 0.05, 0.10, 0.30, 0.70, 1.40, 1.90, 1.90, 1.50,
    0.90, 1.00, 1.60, 1.70, 1.50, 1.10, 1.00, 1.40, 1.60, 1.30, 0.80, 0.40,
)  # fmt: skip
_MEAN = sum(DAY_SHAPE) / len(DAY_SHAPE)
#: what a clean arrival is, and how often
CLEAN_KINDS = ("consult", "complaint", "adverse", "leak")
CLEAN_WEIGHTS = (930, 30, 25, 15)
_REPORT_TRIGGERS = ("complaint", "leak", "adverse")


@dataclass
class Arrivals:
    """Arrival instants of a non-homogeneous Poisson process with the day's shape."""

    rng: Random
    start_ms: int
    cases_per_day: int
    offset_min: int
    _t: int = field(init=False)

    def __post_init__(self) -> None:
        self._t = self.start_ms
        self._peak = max(DAY_SHAPE) / _MEAN * self.cases_per_day / DAY

    def intensity(self, ms: int) -> float:
        """Expected arrivals per millisecond at ``ms``."""
        hour = (ms + self.offset_min * MINUTE) % DAY // HOUR
        return DAY_SHAPE[hour] / _MEAN * self.cases_per_day / DAY

    def next(self) -> int:
        while True:
            self._t += max(1, int(self.rng.expovariate(self._peak)))
            if self.rng.random() * self._peak <= self.intensity(self._t):
                return self._t


@dataclass
class Traffic:
    """Turns arrivals into planned cases, up to a given instant."""

    planner: Planner
    scheduler: Scheduler
    arrivals: Arrivals
    violation_rate: float
    _next: int = field(init=False)

    def __post_init__(self) -> None:
        self._next = self.arrivals.next()
        self.rng = self.planner.rng

    def plan_until(self, until: int) -> None:
        """Plan every case that starts before ``until`` (their later steps wait in the planner's queue)."""
        while self._next < until:
            self._case(self._next)
            self._next = self.arrivals.next()

    def _case(self, at: int) -> None:
        variant: Variant | None = None
        if self.rng.random() < self.violation_rate:
            variant = self.scheduler.pick(at)
        if variant is not None:
            kind = variant.trigger if variant.trigger in _REPORT_TRIGGERS else "consult"
        else:
            kind = self.rng.choices(CLEAN_KINDS, weights=CLEAN_WEIGHTS)[0]
        if kind == "consult":
            planned = ConsultCase(self.planner, at, variant).plan()
        else:
            planned = FilingCase(self.planner, at, kind, variant).plan()
        if not planned and variant is not None:
            self.scheduler.release(variant)
