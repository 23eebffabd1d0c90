"""The province's clinical vocabulary, derived from the packaged formulary.

Specialties, the conditions each treats and the drugs a doctor may prescribe
for them all come from one place, the formulary the rulebook pins: a
condition exists in the simulation only if at least one ordinary
(prescribable online) drug is indicated for its ICD-10 category, so a clean
prescription is always indicated, within limits and priced. Injections ask
this module for the opposite: a special-management drug that *is* indicated
(so RX-PROHIBITED fires alone, not with RX-INDICATION), an ordinary drug that
is not indicated, a drug whose limits are small enough to exceed.
"""

from __future__ import annotations

from dataclasses import dataclass
from random import Random

from medledger.contracts import formulary
from medledger.contracts.formulary import Drug

ORDINARY = "ordinary"
GENERAL_PRACTICE = "general-practice"
PEDIATRICS = "pediatrics"

#: which specialty follows up a condition, by the first ICD-10 category of its block
SPECIALTY_BY_BLOCK = (
    ("H60", "otolaryngology"),
    ("J30", "otolaryngology"),
    ("J34", "respiratory"),
    ("N70", "gynecology"),
    ("O00", "gynecology"),
)
#: ... and otherwise by ICD-10 chapter letter (first character)
SPECIALTY_BY_CHAPTER = {
    "A": "infectious-disease",
    "B": "infectious-disease",
    "C": "oncology",
    "D": "hematology",
    "E": "endocrinology",
    "F": "psychiatry",
    "G": "neurology",
    "H": "ophthalmology",
    "I": "cardiology",
    "J": "respiratory",
    "K": "gastroenterology",
    "L": "dermatology",
    "M": "rheumatology",
    "N": "urology",
}
#: categories children are commonly followed up online for (kept only if the formulary treats them)
PEDIATRIC_CATEGORIES = ("J06", "J02", "J03", "J20", "J45", "A09", "K59", "H66", "L20", "L30", "R05", "R50", "B35")
#: conditions a general practitioner follows up besides their own
GP_CATEGORIES = ("I10", "E11", "E78", "J06", "J20", "K21", "K29", "M54", "R05", "R51", "N39")


@dataclass(frozen=True, slots=True)
class Condition:
    """A diagnosis the simulated province follows up online."""

    code: str
    specialty: str

    @property
    def category(self) -> str:
        return self.code[:3]


@dataclass(frozen=True, slots=True)
class Dose:
    """One prescription line: a drug, units a day, days of supply and the quantity they imply."""

    drug: Drug
    daily_units: int
    days: int
    quantity: int

    @property
    def rxnorm(self) -> str:
        return self.drug.rxnorm[0]

    @property
    def amount_fen(self) -> int:
        return self.drug.unit_price_fen * self.quantity


def _specialty(category: str) -> str:
    for first, specialty in SPECIALTY_BY_BLOCK:
        if (
            category[0] == first[0]
            and category >= first
            and (first != "J30" or category < "J34")
            and (first != "H60" or category <= "H95")
        ):
            return specialty
    return SPECIALTY_BY_CHAPTER.get(category[0], GENERAL_PRACTICE)


class Medicine:
    """Conditions by specialty and drugs by indication, from one formulary."""

    def __init__(self, table: formulary.Formulary | None = None) -> None:
        self.formulary = table or formulary.default()
        self.drugs: tuple[Drug, ...] = tuple(self.formulary.drugs)
        self.ordinary = tuple(d for d in self.drugs if d.drug_class == ORDINARY)
        # a drug with no RxNorm code (radiopharmaceuticals) cannot even be written on a prescription
        self.special = tuple(d for d in self.drugs if d.drug_class != ORDINARY and d.rxnorm)
        categories = sorted({c for d in self.ordinary for c in d.indications})
        self._treats: dict[str, tuple[Drug, ...]] = {
            c: tuple(d for d in self.ordinary if c in d.indications) for c in categories
        }
        self.adult_conditions = tuple(Condition(c, _specialty(c)) for c in categories)
        # common conditions (many drugs) are seen more often, but not overwhelmingly
        self.adult_weights = tuple(len(self._treats[c.code]) ** 0.5 for c in self.adult_conditions)
        children = [c for c in PEDIATRIC_CATEGORIES if c in self._treats]
        self.child_conditions = tuple(Condition(c, PEDIATRICS) for c in children) or tuple(
            Condition(c.code, PEDIATRICS) for c in self.adult_conditions[:5]
        )
        self.specialties: tuple[str, ...] = tuple(
            sorted({c.specialty for c in self.adult_conditions} | {PEDIATRICS, GENERAL_PRACTICE})
        )
        gp = [c for c in GP_CATEGORIES if c in self._treats]
        self.gp_conditions = tuple(Condition(c, GENERAL_PRACTICE) for c in gp) or self.adult_conditions
        #: conditions a special-management drug is indicated for, with an ordinary alternative too
        self.prohibitable = tuple(
            c for c in self.adult_conditions if any(c.category in d.indications for d in self.special)
        )

    def conditions_of(self, specialty: str) -> tuple[Condition, ...]:
        if specialty == PEDIATRICS:
            return self.child_conditions
        if specialty == GENERAL_PRACTICE:
            return self.gp_conditions
        return tuple(c for c in self.adult_conditions if c.specialty == specialty)

    def indicated(self, category: str) -> tuple[Drug, ...]:
        """Ordinary drugs indicated for an ICD-10 category."""
        return self._treats.get(category, ())

    def not_indicated(self, category: str) -> tuple[Drug, ...]:
        return tuple(d for d in self.ordinary if category not in d.indications)

    def prohibited_for(self, category: str) -> tuple[Drug, ...]:
        return tuple(d for d in self.special if category in d.indications)

    @staticmethod
    def dose(rng: Random, drug: Drug, *, max_days: int = 14) -> Dose:
        """A dose within the drug's limits: quantity is exactly units a day times days."""
        daily = rng.randint(1, max(1, min(3, drug.max_daily_units)))
        days = rng.randint(min(3, drug.max_days), max(min(3, drug.max_days), min(max_days, drug.max_days)))
        return Dose(drug, daily, days, daily * days)

    def adult_condition(self, rng: Random) -> Condition:
        if rng.random() < 0.2:
            return self.gp_conditions[rng.randrange(len(self.gp_conditions))]
        return rng.choices(self.adult_conditions, weights=self.adult_weights)[0]
