"""The synthetic province: institutions, their staff and keys, and the setup that registers them.

Everything is drawn from one ``random.Random(seed)`` and keyed by
:class:`~medledger.sim.seeded.Seeded`, so a seed names one province. The
cast is what DESIGN §2 lists: Internet hospitals (physical, licensed, with an
Internet-diagnosis approval, doctors, pharmacists, a gateway and mobile
apps), offline hospitals and clinics (no approval: they record the offline
encounters online follow-ups cite), pharmacies, one insurer, and a regulator
public desk that files public complaints and anonymous reports.

Some members exist only to be caught: three "bad" Internet hospitals (one
suspended, one with a lapsed licence, one never approved for Internet
diagnosis), a doctor with under three years of practice, a doctor registered
at two hospitals whose licence the regulator revokes (the revocation follows
the person), one suspended doctor, a doctor who practises at a second
hospital without a site filing, one whose multi-site filing expired, a
doctor who never authenticates, and a suspended pharmacist. They never
appear in clean traffic.

Setup is returned in stages. Admission checks a signer against *committed*
state, so each stage is committed before the next is submitted: the regulator
admits institutions and their admins, the admins register staff keys, then
link them to licences, then file practice sites; last, the regulator reviews
apps and takes its licence actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Any

from medledger.ledger.identity import ADMIN, REGULATOR
from medledger.ledger.keys import SigningKey
from medledger.sim.medicine import GENERAL_PRACTICE, PEDIATRICS, Medicine
from medledger.sim.seeded import Seeded, SimKey

#: the regulator's public desk: files public complaints and anonymous reports on the public's behalf
PUBLIC_DESK = "regulator/public-desk"

_INTERNET_NAMES = ("Eastlake", "Riverside", "Westgate", "Northhill", "Harbour", "Maple Valley", "Stonebridge")
_OFFLINE_NAMES = ("Central People's", "Second Municipal", "Lakeside District", "Old Town", "Garden Road")
_PHARMACY_NAMES = ("Greenleaf", "Kangning", "Willow Street", "Sunrise", "Bamboo Lane")
_BAD = (("suspended", "Hilltop"), ("lapsed", "Quarry Road"), ("unapproved", "Pine Ridge"))


@dataclass
class Staff:
    """A member key of an institution: an admin, a doctor, a pharmacist, a gateway or an insurer clerk."""

    member: str
    org: str
    role: str
    key: SigningKey


@dataclass
class Person:
    """A practitioner: one licence, possibly several member keys at several institutions.

    Scheduling is per person, not per key: one doctor holds one consultation
    at a time and their daily count (VOLUME) is kept by licence.
    """

    licence: str
    profession: str
    qualification: str
    first_practice: str
    specialties: tuple[str, ...]
    #: why this person exists: "clean" or the injection they serve
    kind: str = "clean"
    free_at: int = 0
    per_day: dict[int, int] = field(default_factory=dict)


@dataclass
class Doctor:
    """A doctor's key at one institution."""

    staff: Staff
    person: Person

    @property
    def member(self) -> str:
        return self.staff.member

    @property
    def org(self) -> str:
        return self.staff.org


@dataclass
class Institution:
    org: str
    name: str
    kind: str
    physical: bool
    licence_no: str
    licence_until: str
    internet: bool
    #: "internet", "offline", "pharmacy", "insurer", or the flaw of a bad Internet hospital
    role: str
    admin: Staff
    gateway: Staff | None = None
    doctors: list[Doctor] = field(default_factory=list)
    pharmacists: list[Staff] = field(default_factory=list)
    clerks: list[Staff] = field(default_factory=list)
    #: app review status -> app slug ("approved", "rejected", "pending")
    apps: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetupTx:
    signer: str
    type: str
    payload: dict[str, Any]


class Province:
    """The cast of one simulation and the transactions that register it."""

    def __init__(self, rng: Random, seeded: Seeded, medicine: Medicine, regulator: SigningKey) -> None:
        self.rng = rng
        self.seeded = seeded
        self.medicine = medicine
        self.keys: dict[str, SigningKey] = {REGULATOR: SimKey(regulator.seed)}
        self.institutions: list[Institution] = []
        #: practitioner registrations to file, in setup order: (institution, member key, person)
        self._prac: list[tuple[Institution, Staff, Person]] = []
        #: practice-site filings: (institution, person, filing, valid from, valid until)
        self._sites: list[tuple[Institution, Person, str, str, str]] = []
        self._licence_actions: list[SetupTx] = []
        self._n = 0
        prefix = f"{seeded.tag}-" if seeded.tag else ""
        self.prefix = prefix
        # after the serial, not before: "DOC-R12-00005" would glue the run's digits to the serial's
        self.licence_suffix = "-" + seeded.tag.upper() if seeded.tag else ""
        self.public_desk = PUBLIC_DESK if not seeded.tag else f"regulator/{prefix}public-desk"
        self.keys[self.public_desk] = seeded.key(self.public_desk)
        self._build()
        self._by_org = {i.org: i for i in self.institutions}
        self.internet = self.of_role("internet")
        self.offline = self.of_role("offline")
        self.pharmacies = self.of_role("pharmacy")
        self.insurer = self.of_role("insurer")[0]
        self._clean: dict[str, list[Doctor]] = {}

    # -- the cast ----------------------------------------------------------------

    def _next(self) -> int:
        self._n += 1
        return self._n

    def _staff(self, inst_org: str, name: str, role: str) -> Staff:
        member = f"{inst_org}/{name}"
        key = self.seeded.key(member)
        self.keys[member] = key
        return Staff(member, inst_org, role, key)

    def _institution(
        self, slug: str, name: str, kind: str, role: str, *, internet: bool, until: str = "2030-12-31"
    ) -> Institution:
        org = self.prefix + slug
        inst = Institution(
            org,
            # the ledger keeps names as lowercase words joined by - (ledger.syntax.Title)
            name.lower().replace(" ", "-").replace("'", ""),
            kind,
            True,
            f"INS-{self._next():05d}{self.licence_suffix}",
            until,
            internet,
            role,
            self._staff(org, "admin", ADMIN),
        )
        if kind != "insurer":
            inst.gateway = self._staff(org, "gw", "gateway")
        self.institutions.append(inst)
        return inst

    def _person(self, specialties: tuple[str, ...], kind: str = "clean", first_practice: str | None = None) -> Person:
        rng = self.rng
        year = rng.randint(1992, 2019)
        person = Person(
            f"DOC-{self._next():05d}{self.licence_suffix}",
            "doctor",
            rng.choice(("physician", "physician", "chief-physician")),
            first_practice or f"{year:04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
            specialties,
            kind,
        )
        return person

    def _doctor(
        self, inst: Institution, person: Person, *, filing: str | None = "primary", until: str = "2030-12-31"
    ) -> Doctor:
        staff = self._staff(inst.org, f"dr-{len(inst.doctors) + 1:03d}", "doctor")
        doctor = Doctor(staff, person)
        inst.doctors.append(doctor)
        self._prac.append((inst, staff, person))
        if filing is not None:
            since = "2019-01-01" if filing == "primary" else "2025-01-01"
            self._sites.append((inst, person, filing, since, until))
        return doctor

    def _pharmacist(self, inst: Institution, kind: str = "clean") -> Staff:
        staff = self._staff(inst.org, f"ph-{len(inst.pharmacists) + 1:02d}", "pharmacist")
        year = self.rng.randint(1995, 2020)
        person = Person(
            f"PHA-{self._next():05d}{self.licence_suffix}",
            "pharmacist",
            self.rng.choice(("pharmacist", "pharmacist", "chief-pharmacist")),
            f"{year:04d}-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}",
            (),
            kind,
        )
        self._prac.append((inst, staff, person))
        self._sites.append((inst, person, "primary", "2019-01-01", "2030-12-31"))
        if kind == "clean":
            inst.pharmacists.append(staff)
        return staff

    def _build(self) -> None:
        rng, med = self.rng, self.medicine
        specialties = [s for s in med.specialties if s != GENERAL_PRACTICE]
        for i, place in enumerate(_INTERNET_NAMES[:5]):
            inst = self._institution(
                f"ih-{place.lower().replace(' ', '-')}",
                f"{place} Internet Hospital",
                "internet-hospital",
                "internet",
                internet=True,
            )
            for specialty in [GENERAL_PRACTICE, *specialties]:
                for _ in range(2 if specialty in (GENERAL_PRACTICE, PEDIATRICS) else 1 + (i + len(specialty)) % 2):
                    extra = rng.choice(specialties)
                    scope = tuple(sorted({specialty, extra})) if rng.random() < 0.3 else (specialty,)
                    self._doctor(inst, self._person(scope))
            for _ in range(3):
                self._pharmacist(inst)
            base = inst.org.removeprefix(self.prefix)
            inst.apps = {"approved": f"{base}-app", "rejected": f"{base}-lite", "pending": f"{base}-beta"}
        for i, place in enumerate(_OFFLINE_NAMES):
            kind = "hospital" if i < 3 else "clinic"
            inst = self._institution(
                f"{kind}-{place.lower().replace(' ', '-').replace(chr(39), '')}",
                f"{place} {'Hospital' if kind == 'hospital' else 'Clinic'}",
                kind,
                "offline",
                internet=False,
            )
            for _ in range(3 if kind == "hospital" else 1):
                self._doctor(inst, self._person((GENERAL_PRACTICE,)))
        for place in _PHARMACY_NAMES[:4]:
            inst = self._institution(
                f"pharmacy-{place.lower().replace(' ', '-')}",
                f"{place} Pharmacy",
                "pharmacy",
                "pharmacy",
                internet=False,
            )
            for _ in range(2):
                self._pharmacist(inst)
        insurer = self._institution(
            "medical-insurance", "Provincial Medical Insurance Fund", "insurer", "insurer", internet=False
        )
        insurer.clerks = [self._staff(insurer.org, f"claims-{n}", "insurer") for n in (1, 2)]
        for flaw, place in _BAD:
            inst = self._institution(
                f"ih-{place.lower().replace(' ', '-')}",
                f"{place} Internet Hospital",
                "internet-hospital",
                flaw,
                internet=flaw != "unapproved",
                until="2026-01-31" if flaw == "lapsed" else "2030-12-31",
            )
            self._doctor(inst, self._person((GENERAL_PRACTICE,), kind=f"inst-{flaw}"))
        self._special_doctors()

    def _special_doctors(self) -> None:
        """The doctors injections need, each flawed in exactly one way."""
        ih = self.of_role("internet")
        gp = (GENERAL_PRACTICE,)
        revoked = self._person(gp, "revoked")
        self._doctor(ih[0], revoked)
        self._doctor(ih[1], revoked, filing="multi-site")
        self._licence_actions.append(
            SetupTx(REGULATOR, "practitioner.revoke", {"licence_no": revoked.licence, "reason": "misconduct"})
        )
        suspended = self._person(gp, "suspended")
        self._doctor(ih[2], suspended)
        self._licence_actions.append(
            SetupTx(REGULATOR, "practitioner.suspend", {"licence_no": suspended.licence, "reason": "investigation"})
        )
        # practises at a second hospital with no filing there: the clean key at ih[0] keeps working
        roaming = self._person(gp, "no-site")
        self._doctor(ih[0], roaming)
        self._doctor(ih[3], roaming, filing=None)
        expired = self._person(gp, "expired-site")
        self._doctor(ih[1], expired)
        self._doctor(ih[2], expired, filing="multi-site", until="2026-02-15")
        junior = self._person(gp, "junior", first_practice="2024-07-01")
        self._doctor(ih[3], junior)
        self._doctor(ih[4], self._person(gp, "no-auth"))
        bad_pharmacist = self._pharmacist(ih[0], kind="suspended")
        self.suspended_pharmacist = bad_pharmacist
        licence = next(p.licence for i, s, p in self._prac if s is bad_pharmacist)
        self._licence_actions.append(
            SetupTx(REGULATOR, "practitioner.suspend", {"licence_no": licence, "reason": "investigation"})
        )

    # -- views -------------------------------------------------------------------

    def of_role(self, role: str) -> list[Institution]:
        return [i for i in self.institutions if i.role == role]

    def institution(self, org: str) -> Institution:
        return self._by_org[org]

    def special(self, kind: str) -> list[Doctor]:
        """The keys of the doctor kept for one injection, at the institution where the flaw shows."""
        found = [d for i in self.institutions for d in i.doctors if d.person.kind == kind]
        if kind in ("no-site", "expired-site", "revoked"):
            # the flaw shows at the second institution (revoked: anywhere; the second proves it follows)
            return found[1:]
        return found

    def clean_doctors(self, specialty: str) -> list[Doctor]:
        """The keys that see patients of a specialty in clean traffic.

        The roaming doctors' keys at their own hospital are clean: only their
        second key, where the filing is missing or expired, is not.
        """
        found = self._clean.get(specialty)
        if found is None:
            found = self._clean[specialty] = [
                d
                for i in self.internet
                for d in i.doctors
                if d.person.kind in ("clean", "no-site", "expired-site")
                and specialty in d.person.specialties
                and (d.person.kind == "clean" or d is self._first_key(d.person))
            ]
        return found

    def _first_key(self, person: Person) -> Doctor:
        return next(d for i in self.institutions for d in i.doctors if d.person is person)

    # -- setup transactions ------------------------------------------------------

    def setup_stages(self, rulebook_version: int, params: dict[str, int]) -> list[list[SetupTx]]:
        """The transactions that register the province, in stages to commit one after another."""
        first: list[SetupTx] = [
            SetupTx(
                REGULATOR,
                "rulebook.publish",
                {"version": rulebook_version, "params": params, "formulary": self.medicine.formulary.digest},
            ),
            SetupTx(
                REGULATOR,
                "member.register",
                {
                    "member": self.public_desk,
                    "org": REGULATOR,
                    "role": "gateway",
                    "key": self.keys[self.public_desk].key_id,
                },
            ),
        ]
        staff: list[SetupTx] = []
        for inst in self.institutions:
            first.append(
                SetupTx(
                    REGULATOR,
                    "institution.admit",
                    {
                        "org": inst.org,
                        "name": inst.name,
                        "kind": inst.kind,
                        "physical": inst.physical,
                        "licence": {
                            "number": inst.licence_no,
                            "valid_from": "2015-01-01",
                            "valid_until": inst.licence_until,
                        },
                    },
                )
            )
            if inst.internet:
                first.append(
                    SetupTx(
                        REGULATOR,
                        "institution.internet-approval",
                        {"org": inst.org, "approval": {"valid_from": "2019-01-01", "valid_until": "2029-12-31"}},
                    )
                )
            first.append(self._register(REGULATOR, inst.admin))
            members = [inst.gateway, *inst.clerks, *(d.staff for d in inst.doctors)]
            members += [s for i, s, p in self._prac if i is inst and p.profession == "pharmacist"]
            staff += [self._register(inst.admin.member, s) for s in members if s is not None]
            staff += [
                SetupTx(inst.admin.member, "app.register", {"app": slug, "name": f"{inst.name}-{status}-app"})
                for status, slug in inst.apps.items()
            ]
        licences = [
            SetupTx(
                inst.admin.member,
                "practitioner.register",
                {
                    "member": s.member,
                    "licence_no": p.licence,
                    "profession": p.profession,
                    "qualification": p.qualification,
                    "first_practice": p.first_practice,
                    "specialties": list(p.specialties),
                },
            )
            for inst, s, p in self._prac
        ]
        sites = [
            SetupTx(
                inst.admin.member,
                "practitioner.site",
                {"licence_no": p.licence, "filing": filing, "validity": {"valid_from": since, "valid_until": until}},
            )
            for inst, p, filing, since, until in self._sites
        ]
        actions: list[SetupTx] = []
        for inst in self.institutions:
            for status, slug in inst.apps.items():
                if status != "pending":
                    actions.append(SetupTx(REGULATOR, "app.review", {"org": inst.org, "app": slug, "decision": status}))
            if inst.role == "suspended":
                actions.append(SetupTx(REGULATOR, "institution.suspend", {"org": inst.org, "reason": "inspection"}))
        return [first, staff, licences, sites, actions + self._licence_actions]

    def _register(self, by: str, staff: Staff) -> SetupTx:
        return SetupTx(
            by,
            "member.register",
            {"member": staff.member, "org": staff.org, "role": staff.role, "key": staff.key.key_id},
        )
