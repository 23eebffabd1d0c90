"""The rule catalogue: what each regulatory rule says, where it comes from and
what it reads. Definitions only, in the in-toto spirit of keeping rule syntax
apart from rule evaluation: :mod:`medledger.contracts.rules` evaluates these,
``docs/rulebook.md`` is generated from them, and the simulator injects a
violation of each. Nothing here executes anything.

Parameters (limits, windows, deadlines) have a default here and a value on
the ledger: the regulator publishes them by ``rulebook.publish`` and every
outcome records the rulebook version it was judged under.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["hard", "soft"]


@dataclass(frozen=True, slots=True)
class Regulation:
    """A source text a rule comes from."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class Param:
    """One published rulebook parameter: an integer with bounds (signed data has no floats)."""

    name: str
    default: int
    unit: str
    minimum: int
    maximum: int
    text: str


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: its id and severities, the sentence it enforces, where it comes
    from, the transactions it judges, the state it reads and its parameters.

    Each rule is a module constant named after its id (``RX_LIMITS`` for
    ``RX-LIMITS``): the checks of :mod:`medledger.contracts.rules` bind the
    constant, so the id is spelled here only and a misspelt rule fails at import.
    ``applies_to`` is exactly the transaction types whose execution evaluates
    the rule (:data:`EVERY_BLOCK` for the block-start check), which
    ``tests/contracts/test_rule_coverage.py`` asserts by executing every type.
    ``reads`` names the state keys the rule's facts come from; that test can
    only check it per transaction type, see its docstring.
    """

    id: str
    severities: tuple[Severity, ...]
    sentence: str
    regulation: tuple[str, ...]
    applies_to: tuple[str, ...]
    reads: tuple[str, ...]
    params: tuple[str, ...] = ()
    detail: str = ""

    @property
    def kind(self) -> str:
        return " / ".join(self.severities)

    def severity(self, hard: bool | None = None) -> Severity:
        """The severity a violation carries (``hard`` picks one for a two-severity rule)."""
        if len(self.severities) == 1:
            return self.severities[0]
        return "hard" if hard else "soft"


REGULATIONS = (
    Regulation("NHC-2018-ID", "Measures for the Administration of Internet Diagnosis and Treatment (Trial), NHC 2018"),
    Regulation("NHC-2018-IH", "Measures for the Administration of Internet Hospitals (Trial), NHC 2018"),
    Regulation(
        "NHC-2022-SUP", "Detailed Rules for the Supervision of Internet Diagnosis and Treatment (Trial), NHC 2022"
    ),
    Regulation("NHC-2017-REG", "Measures for the Administration of Physician Practice Registration, NHFPC 2017"),
    Regulation("MOH-2007-RX", "Measures for the Administration of Prescriptions, MOH 2007"),
    Regulation("NHC-2021-LRX", "Long-term Prescription Management Norms (Trial), NHC 2021"),
    Regulation("NHC-2018-REV", "Norms for Prescription Review in Medical Institutions, NHC 2018"),
    Regulation(
        "SC-2005-NARC", "Regulations on the Administration of Narcotic Drugs and Psychotropic Substances, State Council"
    ),
    Regulation("SC-2021-MIF", "Regulations on the Supervision of Medical Security Fund Use, State Council 2021"),
    Regulation("MOH-2011-ADR", "Measures for Adverse Drug Reaction Reporting and Monitoring, MOH 2011"),
    Regulation("NHC-2022-NET", "Measures for Cybersecurity Management of Medical and Health Institutions, NHC 2022"),
    Regulation("SC-2022-PET", "Regulations on Letters and Visits (complaint handling), 2022"),
    Regulation("MLDA", "Medical Licensure compacts: a licence action follows the practitioner (seed document, §3)"),
)

PARAMS = (
    Param("realname_window_min", 30, "minutes", 1, 24 * 60, "a doctor's real-name authentication counts this long"),
    Param("experience_years", 3, "years", 0, 30, "independent clinical practice required to consult online"),
    Param("guardian_age_years", 6, "years", 0, 18, "patients younger than this need an identified guardian"),
    Param("rx_window_h", 24, "hours", 1, 24 * 30, "a prescription must follow its consultation within this time"),
    Param(
        "rx_min_s", 60, "seconds", 0, 3600, "a prescription sooner than this after the consultation opened is suspect"
    ),
    Param("rx_validity_h", 72, "hours", 1, 24 * 30, "a prescription may be dispensed within this time of issue"),
    Param("report_deadline_h", 24, "hours", 1, 24 * 30, "clinical events must reach the ledger within this time"),
    Param(
        "leak_deadline_h", 72, "hours", 1, 24 * 30, "a data-leak incident must be reported this soon after detection"
    ),
    Param("adverse_deadline_d", 15, "days", 1, 90, "an institution reports an adverse event within this time"),
    Param("complaint_sla_d", 15, "days", 1, 90, "the regulator answers a public complaint within this time"),
    Param("max_consults_per_day", 80, "consultations", 1, 1000, "one doctor's online consultations in one local day"),
    Param("min_consult_s", 120, "seconds", 0, 3600, "shortest plausible online consultation"),
    Param("max_consult_s", 4 * 3600, "seconds", 60, 24 * 3600, "longest plausible online consultation"),
    Param("claim_tolerance_bp", 100, "basis points", 0, 10_000, "allowed gap between a claim and price x quantity"),
    Param("local_offset_min", 480, "minutes", -720, 840, "the province's UTC offset, for per-day counts"),
)

#: the pseudo transaction type of checks run at the start of every block (``Registry.on_block``)
EVERY_BLOCK = "(every block)"

_CONSULT = ("consultation.open",)
_RX = ("prescription.issue",)

INST_LICENCE = Rule(
    "INST-LICENCE",
    ("hard",),
    "The institution's licence is valid and its Internet-diagnosis approval is in force at the time of the event.",
    ("NHC-2018-ID", "NHC-2018-IH"),
    (*_CONSULT, *_RX),
    ("inst/<org>",),
    detail="Suspended or revoked institutions, lapsed licences and missing approvals all fail. Validity dates "
    "are the province's calendar dates (`local_offset_min`): a licence valid until a date runs to 23:59:59.999 "
    "local time that day.",
)

DOC_LICENCE = Rule(
    "DOC-LICENCE",
    ("hard",),
    "The practitioner's licence is valid and not suspended or revoked anywhere in the consortium.",
    ("NHC-2017-REG", "MLDA"),
    (*_CONSULT, *_RX),
    ("staff/<member>", "prac/<licence>"),
    detail="The licence record is keyed by licence number, so a revocation at one institution follows the person.",
)

DOC_SITE = Rule(
    "DOC-SITE",
    ("hard",),
    "The practitioner has an active practice registration (primary or multi-site filing) at this institution.",
    ("NHC-2017-REG",),
    _CONSULT,
    ("site/<licence>/<org>",),
)

DOC_EXPERIENCE = Rule(
    "DOC-EXPERIENCE",
    ("hard",),
    "The practitioner has at least the required years of independent clinical practice.",
    ("NHC-2018-IH",),
    _CONSULT,
    ("prac/<licence>",),
    ("experience_years",),
)

DOC_SCOPE = Rule(
    "DOC-SCOPE",
    ("hard",),
    "The consultation's specialty is within the practitioner's registered scope.",
    ("NHC-2017-REG",),
    _CONSULT,
    ("prac/<licence>",),
)

DOC_REALNAME = Rule(
    "DOC-REALNAME",
    ("hard",),
    "The same doctor passed a real-name authentication (face or CA) shortly before the consultation.",
    ("NHC-2022-SUP",),
    _CONSULT,
    ("auth/<member>",),
    ("realname_window_min",),
)

PAT_REALNAME = Rule(
    "PAT-REALNAME",
    ("hard",),
    "The patient's identity was verified (a pseudonym issued by the pseudonymisation service).",
    ("NHC-2022-SUP",),
    _CONSULT,
    ("patient/<pseudonym>",),
)

NO_FIRST_VISIT = Rule(
    "NO-FIRST-VISIT",
    ("hard",),
    "An online consultation cites a prior offline diagnosis of the same patient at a physical institution "
    "and treats the same condition.",
    ("NHC-2018-ID",),
    _CONSULT,
    ("dx/<document>", "inst/<org>"),
    detail="Same condition means the same ICD-10 category (the first three characters).",
)

CHILD_GUARDIAN = Rule(
    "CHILD-GUARDIAN",
    ("hard",),
    "A patient under the guardian age is accompanied by an identified guardian.",
    ("NHC-2022-SUP",),
    _CONSULT,
    ("patient/<pseudonym>", "patient/<guardian>"),
    ("guardian_age_years",),
)

RX_PRESCRIBER = Rule(
    "RX-PRESCRIBER",
    ("hard",),
    "The prescriber is the consultation's doctor, signs with their own key, within the window after the consultation.",
    ("NHC-2022-SUP", "MOH-2007-RX"),
    _RX,
    ("consult/<id>",),
    ("rx_window_h",),
)

RX_NO_AI = Rule(
    "RX-NO-AI",
    ("hard", "soft"),
    "A prescription is written by a doctor: one signed by a service or system key is refused (hard) unless "
    "it carries that institution's doctor's own signature over the prescription document; one issued "
    "within seconds of the consultation opening is flagged (soft).",
    ("NHC-2022-SUP",),
    _RX,
    ("consult/<id>",),
    ("rx_min_s",),
)

RX_PROHIBITED = Rule(
    "RX-PROHIBITED",
    ("hard",),
    "No online prescription of narcotic, psychotropic, toxic, radioactive or other special-management drugs.",
    ("NHC-2018-ID", "SC-2005-NARC"),
    _RX,
    ("formulary",),
)

RX_LIMITS = Rule(
    "RX-LIMITS",
    ("hard",),
    "Daily dose, days of supply and quantity are within the formulary's limits and consistent with each other.",
    ("MOH-2007-RX", "NHC-2021-LRX"),
    _RX,
    ("formulary",),
)

RX_INDICATION = Rule(
    "RX-INDICATION",
    ("soft",),
    "The drug is indicated for the consultation's diagnosis.",
    ("NHC-2018-REV",),
    _RX,
    ("consult/<id>", "formulary"),
)

RX_DUPLICATE = Rule(
    "RX-DUPLICATE",
    ("soft",),
    "The patient has no overlapping supply of the same therapeutic group from another prescription, at any "
    "institution (doctor shopping).",
    ("NHC-2018-REV", "SC-2021-MIF"),
    _RX,
    ("supply/<pseudonym>/<group>",),
)

RX_EXPIRY = Rule(
    "RX-EXPIRY",
    ("hard",),
    "A prescription is dispensed within its validity window.",
    ("MOH-2007-RX",),
    ("prescription.dispense",),
    ("rx/<id>",),
    ("rx_validity_h",),
)

PH_REVIEW = Rule(
    "PH-REVIEW",
    ("hard",),
    "A licensed pharmacist other than the prescriber approves the prescription before any dispense.",
    ("NHC-2018-REV",),
    ("prescription.review", "prescription.dispense"),
    ("rx/<id>", "staff/<member>", "prac/<licence>"),
)

PH_DISPENSE = Rule(
    "PH-DISPENSE",
    ("hard",),
    "A registered pharmacy dispenses no more than remains of an approved, not rejected, prescription.",
    ("NHC-2018-REV", "MOH-2007-RX"),
    ("prescription.dispense",),
    ("rx/<id>", "inst/<org>"),
)

DELIVERY_TRACE = Rule(
    "DELIVERY-TRACE",
    ("soft",),
    "Delivery hand-overs follow the dispense, in order, and end with the prescription's patient.",
    ("NHC-2022-SUP",),
    ("delivery.handover",),
    ("dispense/<id>", "rx/<id>"),
)

CLAIM_MATCH = Rule(
    "CLAIM-MATCH",
    ("hard",),
    "A claim cites a dispense, its amount matches the formulary price times the quantity, and each dispense "
    "is claimed once.",
    ("SC-2021-MIF",),
    ("claim.submit",),
    ("dispense/<id>", "rx/<id>", "formulary"),
    ("claim_tolerance_bp",),
)

LATE_REPORT = Rule(
    "LATE-REPORT",
    ("soft",),
    "An event reaches the ledger within its reporting deadline (clinical events, adverse events, data leaks).",
    ("NHC-2022-SUP", "MOH-2011-ADR", "NHC-2022-NET"),
    (
        "doctor.authenticate",
        "consultation.open",
        "consultation.close",
        "prescription.issue",
        "prescription.review",
        "prescription.dispense",
        "delivery.handover",
        "report.adverse-event",
        "report.data-leak",
    ),
    (),
    ("report_deadline_h", "leak_deadline_h", "adverse_deadline_d"),
    detail="Lateness is the block time minus the event time the payload states. Anonymous public reports have "
    "no deadline.",
)

VOLUME = Rule(
    "VOLUME",
    ("soft",),
    "A doctor's online consultations per local day, and each consultation's duration, are within plausible bounds.",
    ("NHC-2022-SUP",),
    ("consultation.open", "consultation.close"),
    ("count/<licence>/<day>", "consult/<id>"),
    ("max_consults_per_day", "min_consult_s", "max_consult_s", "local_offset_min"),
)

COMPLAINT_SLA = Rule(
    "COMPLAINT-SLA",
    ("soft",),
    "The regulator answers a public complaint within the deadline.",
    ("SC-2022-PET",),
    (EVERY_BLOCK,),
    ("complaints/open", "complaint/<id>"),
    ("complaint_sla_d",),
    detail="Checked at the start of every block against the block time, so an unanswered complaint raises its "
    "alert even if nothing else happens. An answer (`complaint.answer`) takes the complaint off the queue; the "
    "answer itself is not judged.",
)

APP_APPROVED = Rule(
    "APP-APPROVED",
    ("hard",),
    "A consultation through a mobile app happens only if that app's review is approved.",
    ("NHC-2022-SUP",),
    _CONSULT,
    ("app/<org>/<app>",),
)

RULES = (
    INST_LICENCE,
    DOC_LICENCE,
    DOC_SITE,
    DOC_EXPERIENCE,
    DOC_SCOPE,
    DOC_REALNAME,
    PAT_REALNAME,
    NO_FIRST_VISIT,
    CHILD_GUARDIAN,
    RX_PRESCRIBER,
    RX_NO_AI,
    RX_PROHIBITED,
    RX_LIMITS,
    RX_INDICATION,
    RX_DUPLICATE,
    RX_EXPIRY,
    PH_REVIEW,
    PH_DISPENSE,
    DELIVERY_TRACE,
    CLAIM_MATCH,
    LATE_REPORT,
    VOLUME,
    COMPLAINT_SLA,
    APP_APPROVED,
)

RULES_BY_ID = {rule.id: rule for rule in RULES}
PARAMS_BY_NAME = {param.name: param for param in PARAMS}
DEFAULT_PARAMS = {param.name: param.default for param in PARAMS}
HARD_RULES = frozenset(r.id for r in RULES if "hard" in r.severities)
