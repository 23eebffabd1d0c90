"""Who may consult online, at each rule's boundary: institution and practitioner licences,
practice sites, experience, scope, real-name checks, the first-visit ban, guardians, apps and
plausible volume. Each case pairs the last compliant value with the first violating one; the
violating receipt must carry exactly the rule under test and nothing else."""

from __future__ import annotations

import pytest
from contracts_world import (
    DAY,
    HOUR,
    MIN,
    OK,
    SEC,
    Expect,
    World,
    day_of,
    doc,
    drug_for,
    hard,
    midnight,
    months_before,
    outcome,
    pseudonym,
    shift_day,
    soft,
    standard,
)

from medledger.ledger.timefmt import parse_ms

#: the province's UTC offset (rulebook parameter local_offset_min = 480)
LOCAL = 8 * HOUR


# --- INST-LICENCE / DOC-SITE: validity is inclusive of its last day -----------


@pytest.mark.parametrize(
    ("which", "offset", "expected"),
    [
        pytest.param("licence", -1, OK, id="licence-valid_until-23h59m59.999s-local-inside"),
        pytest.param("licence", 0, hard("INST-LICENCE"), id="licence-next-day-00h00-local-outside-by-1ms"),
        pytest.param("approval", -1, OK, id="internet-approval-last-ms-inside"),
        pytest.param("approval", 0, hard("INST-LICENCE"), id="internet-approval-next-day-outside-by-1ms"),
        pytest.param("site", -1, OK, id="practice-site-last-ms-inside"),
        pytest.param("site", 0, hard("DOC-SITE"), id="practice-site-next-day-outside-by-1ms"),
    ],
)
def test_validity_runs_to_the_end_of_its_last_day(w: World, which: str, offset: int, expected: Expect) -> None:
    # dates are the province's calendar (UTC+8): validity ends at local midnight, 16:00 UTC
    edge = midnight(w.now + LOCAL, 2) - LOCAL  # 00:00 local after the last valid day
    last_day = day_of(edge + LOCAL - DAY)
    org = w.name("edge")
    w.institution(
        org,
        valid_until=last_day if which == "licence" else "2030-12-31",
        approval_until=last_day if which == "approval" else "2030-12-31",
    )
    doctor = w.doctor(org, site=False)
    w.file_site(org, w.licence_of[doctor], until=last_day if which == "site" else "2030-12-31")
    patient, prior = w.visit(w.name("edge-p"))
    w.advance_to(edge - 10 * MIN)
    w.authenticate(doctor, 0, by=f"{org}/admin")
    w.advance_to(edge)
    receipt = w.consult(doctor, w.name("c-edge"), patient, prior, started_ms=edge + offset)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        pytest.param((), OK, id="active"),
        pytest.param(("institution.suspend",), hard("INST-LICENCE"), id="suspended"),
        pytest.param(("institution.revoke",), hard("INST-LICENCE"), id="revoked"),
        pytest.param(("institution.suspend", "institution.reinstate"), OK, id="reinstated"),
    ],
)
def test_institution_status_at_consultation_and_prescription(
    w: World, actions: tuple[str, ...], expected: Expect
) -> None:
    """A consultation and a prescription (on a consultation opened while the institution was
    in good standing) are both judged against the institution's status at their own time."""
    org = w.name("inst")
    w.institution(org)
    doctor = w.doctor(org)
    before = w.follow_up(w.name("inst-before"), doctor)
    for action in actions:
        reason = {"institution.reinstate": None}.get(action, "inspection")
        w.ok("regulator", action, {"org": org} | ({"reason": reason} if reason else {}))
    visit = w.follow_up(w.name("inst-after"), doctor, check=False)
    assert outcome(visit.receipt) == expected, visit.receipt.reason
    w.advance(2 * MIN)
    rx = w.prescribe(w.name("rx-inst"), before.cid, drug_for("I10"), by=doctor)
    assert outcome(rx) == expected, rx.reason


def test_no_internet_approval(w: World) -> None:
    """The clinic is licensed and physical but has no Internet-diagnosis approval."""
    patient, prior = w.visit(w.name("no-approval"))
    w.authenticate("clinic/dr-offline", by="clinic/admin")
    receipt = w.consult("clinic/dr-offline", w.name("c-clinic"), patient, prior, specialty="general-practice")
    assert outcome(receipt) == hard("INST-LICENCE"), receipt.reason


# --- DOC-LICENCE / DOC-SITE: the licence is the person's, across institutions --

SCOPE = ("cardiology", "general-practice")


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        pytest.param((), OK, id="active-everywhere"),
        pytest.param(("practitioner.revoke",), hard("DOC-LICENCE"), id="revoked"),
        pytest.param(("practitioner.suspend",), hard("DOC-LICENCE"), id="suspended"),
        pytest.param(("practitioner.suspend", "practitioner.reinstate"), OK, id="reinstated"),
    ],
)
def test_a_licence_action_follows_the_practitioner(w: World, actions: tuple[str, ...], expected: Expect) -> None:
    """Misconduct at institution A: the regulator acts on the licence; the same person's key at B
    (a multi-site filing) is refused too, and so is a prescription on an earlier consultation."""
    a, b = w.name("home"), w.name("away")
    w.institution(a)
    w.institution(b)
    licence = w.new_licence("DOC")
    at_a = w.practitioner(a, "dr-m", licence, specialties=SCOPE)
    at_b = w.practitioner(b, "dr-m", licence, specialties=SCOPE, site=False)
    w.file_site(b, licence, filing="multi-site")
    earlier = w.follow_up(w.name("lic-early"), at_b)
    for action in actions:
        w.ok("regulator", action, {"licence_no": licence} | ({} if "reinstate" in action else {"reason": "misconduct"}))
    for doctor in (at_b, at_a):
        visit = w.follow_up(w.name("lic"), doctor, check=False)
        assert outcome(visit.receipt) == expected, (doctor, visit.receipt.reason)
    w.advance(2 * MIN)
    rx = w.prescribe(w.name("rx-lic"), earlier.cid, drug_for("I10"), by=at_b)
    assert outcome(rx) == expected, rx.reason


def test_a_doctor_key_without_a_licence(w: World) -> None:
    member = "hosp/" + w.name("unlicensed")
    w.register("hosp/admin", member, "hosp", "doctor")
    visit = w.follow_up(w.name("nolic"), member, check=False)
    assert outcome(visit.receipt) == hard("DOC-LICENCE"), visit.receipt.reason


@pytest.mark.parametrize(
    ("filing", "expected"),
    [
        pytest.param("multi-site", OK, id="multi-site-filing-here"),
        pytest.param(None, hard("DOC-SITE"), id="registered-elsewhere-only"),
    ],
)
def test_practice_site_at_this_institution(w: World, filing: str | None, expected: Expect) -> None:
    org = w.name("site")
    w.institution(org)
    licence = w.new_licence("DOC")
    w.practitioner("hosp", w.name("dr-s"), licence, specialties=SCOPE)  # primary site at hosp
    here = w.practitioner(org, "dr-s", licence, specialties=SCOPE, site=False)
    if filing is not None:
        w.file_site(org, licence, filing=filing)
    visit = w.follow_up(w.name("site"), here, check=False)
    assert outcome(visit.receipt) == expected, visit.receipt.reason


# --- DOC-EXPERIENCE, DOC-SCOPE -------------------------------------------------


@pytest.mark.parametrize(
    ("shift_days", "expected"),
    [
        pytest.param(0, OK, id="first-practice-exactly-3-years-before"),
        pytest.param(1, hard("DOC-EXPERIENCE"), id="3-years-less-1-day"),
    ],
)
def test_experience(w: World, shift_days: int, expected: Expect) -> None:
    today = day_of(w.now + LOCAL)  # the province's date
    first = shift_day(f"{int(today[:4]) - 3:04d}{today[4:]}", shift_days)
    doctor = w.doctor(first_practice=first)
    visit = w.follow_up(w.name("exp"), doctor, check=False)
    assert outcome(visit.receipt) == expected, visit.receipt.reason


@pytest.mark.parametrize(
    ("specialty", "expected"),
    [
        pytest.param("cardiology", OK, id="in-scope"),
        pytest.param("general-practice", hard("DOC-SCOPE"), id="out-of-scope"),
    ],
)
def test_scope(w: World, specialty: str, expected: Expect) -> None:
    doctor = w.doctor(specialties=("cardiology",))
    visit = w.follow_up(w.name("scope"), doctor, specialty=specialty, check=False)
    assert outcome(visit.receipt) == expected, visit.receipt.reason


# --- DOC-REALNAME, PAT-REALNAME --------------------------------------------------

WINDOW = 30 * MIN  # realname_window_min, default


@pytest.mark.parametrize(
    ("auth_before_start", "expected"),
    [
        pytest.param(WINDOW, OK, id="exactly-30min-before-inside"),
        pytest.param(WINDOW + 1, hard("DOC-REALNAME"), id="30min+1ms-before-outside-by-1ms"),
        pytest.param(0, OK, id="at-the-start-inside"),
        pytest.param(-1, hard("DOC-REALNAME"), id="1ms-after-the-start-outside-by-1ms"),
        pytest.param(None, hard("DOC-REALNAME"), id="never-authenticated"),
        pytest.param("colleague", hard("DOC-REALNAME"), id="only-another-doctor-authenticated"),
    ],
)
def test_doctor_realname(w: World, auth_before_start: int | str | None, expected: Expect) -> None:
    doctor = w.doctor()
    patient, prior = w.visit(w.name("rn"))
    auth_at = w.now
    if isinstance(auth_before_start, int):
        w.authenticate(doctor, 0, by="hosp/admin")
        w.advance(max(auth_before_start, 0))
    elif auth_before_start == "colleague":
        w.authenticate(w.doctor(), 0, by="hosp/admin")
    started = auth_at + (auth_before_start if isinstance(auth_before_start, int) else 0)
    receipt = w.consult(doctor, w.name("c-rn"), patient, prior, started_ms=started)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("verified", "expected"),
    [pytest.param(True, OK, id="verified"), pytest.param(False, hard("PAT-REALNAME"), id="never-verified")],
)
def test_patient_realname(w: World, verified: bool, expected: Expect) -> None:
    name = w.name("pat")
    patient = w.patient(name) if verified else pseudonym(name)
    prior = w.encounter(patient, name)
    w.authenticate("hosp/dr-li")
    receipt = w.consult("hosp/dr-li", w.name("c-pat"), patient, prior)
    assert outcome(receipt) == expected, receipt.reason


# --- NO-FIRST-VISIT -------------------------------------------------------------

FIRST_VISIT = [
    pytest.param("same-category-other-subcode", OK, id="E11.9-recorded-E11.65-treated-inside"),
    pytest.param("other-category", hard("NO-FIRST-VISIT"), id="E11.9-recorded-E10.9-treated-outside"),
    pytest.param("no-prior", hard("NO-FIRST-VISIT"), id="no-citation"),
    pytest.param("unknown-document", hard("NO-FIRST-VISIT"), id="document-not-on-ledger"),
    pytest.param("other-patient", hard("NO-FIRST-VISIT"), id="another-patients-document"),
    pytest.param("date-mismatch", hard("NO-FIRST-VISIT"), id="cited-date-differs-from-record"),
    pytest.param("org-mismatch", hard("NO-FIRST-VISIT"), id="cited-institution-differs"),
    pytest.param("code-mismatch", hard("NO-FIRST-VISIT"), id="cited-code-differs-same-category"),
]


@pytest.mark.parametrize(("case", "expected"), FIRST_VISIT)
def test_prior_offline_diagnosis(w: World, case: str, expected: Expect) -> None:
    name = w.name("fv")
    patient = w.patient(name)
    prior: dict[str, str] | None = w.encounter(patient, name, "E11.9")
    assert prior is not None
    diagnosis = "E11.65"
    if case == "other-category":
        diagnosis = "E10.9"
    elif case == "no-prior":
        prior = None
    elif case == "unknown-document":
        prior = {**prior, "document": doc(name + "-never-recorded")}
    elif case == "other-patient":
        other = w.name("fv-other")
        prior = w.encounter(w.patient(other), other, "E11.9")
    elif case == "date-mismatch":
        prior = {**prior, "date": shift_day(prior["date"], -1)}
    elif case == "org-mismatch":
        prior = {**prior, "org": "hosp"}
    elif case == "code-mismatch":
        prior = {**prior, "diagnosis": "E11.8"}
    w.authenticate("hosp/dr-li")
    receipt = w.consult("hosp/dr-li", w.name("c-fv"), patient, prior, diagnosis=diagnosis)
    assert outcome(receipt) == expected, receipt.reason


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(0, OK, id="encounter-same-day-inside"),
        pytest.param(-1, hard("NO-FIRST-VISIT"), id="consultation-1ms-before-encounter-day-outside-by-1ms"),
    ],
)
def test_prior_diagnosis_dated_after_the_consultation(w: World, offset: int, expected: Expect) -> None:
    today = midnight(w.now + LOCAL, 0) - LOCAL  # local midnight starting today's province date
    name = w.name("fvd")
    patient = w.patient(name)
    prior = w.encounter(patient, name, "I10", date=day_of(today + LOCAL))
    started = today + offset
    w.authenticate("hosp/dr-li", started - 5 * MIN - w.now)
    receipt = w.consult("hosp/dr-li", w.name("c-fvd"), patient, prior, started_ms=started)
    assert outcome(receipt) == expected, receipt.reason


# --- CHILD-GUARDIAN -------------------------------------------------------------


@pytest.mark.parametrize(
    ("age_months", "guardian", "expected"),
    [
        pytest.param(72, 217, OK, id="72-months-adult-guardian"),
        pytest.param(72, None, hard("CHILD-GUARDIAN"), id="72-months-is-still-under-6-no-guardian"),
        pytest.param(73, None, OK, id="73-months-no-guardian-needed"),
        pytest.param(72, 216, hard("CHILD-GUARDIAN"), id="guardian-216-months-may-be-a-minor"),
        pytest.param(72, "unverified", hard("CHILD-GUARDIAN"), id="guardian-never-verified"),
        pytest.param(72, "self", hard("CHILD-GUARDIAN"), id="child-named-as-own-guardian"),
    ],
)
def test_child_guardian(w: World, age_months: int, guardian: int | str | None, expected: Expect) -> None:
    name = w.name("child")
    patient, prior = w.visit(name, birth_month=months_before(w.now, age_months))
    guardian_id = None
    if isinstance(guardian, int):
        guardian_id = w.patient(name + "-guardian", birth_month=months_before(w.now, guardian))
    elif guardian == "unverified":
        guardian_id = pseudonym(name + "-guardian")
    elif guardian == "self":
        guardian_id = patient
    w.authenticate("hosp/dr-li")
    receipt = w.consult("hosp/dr-li", w.name("c-child"), patient, prior, guardian=guardian_id)
    assert outcome(receipt) == expected, receipt.reason


# --- APP-APPROVED ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        pytest.param("approved", OK, id="approved"),
        pytest.param(None, hard("APP-APPROVED"), id="pending"),
        pytest.param("rejected", hard("APP-APPROVED"), id="rejected"),
        pytest.param("unregistered", hard("APP-APPROVED"), id="never-registered"),
    ],
)
def test_app_approved(w: World, review: str | None, expected: Expect) -> None:
    app = w.name("app")
    if review != "unregistered":
        w.ok("hosp/admin", "app.register", {"app": app, "name": f"{app}-test"})
    if review in ("approved", "rejected"):
        w.ok("regulator", "app.review", {"org": "hosp", "app": app, "decision": review})
    visit = w.follow_up(w.name("app-p"), app=app, check=False)
    assert outcome(visit.receipt) == expected, visit.receipt.reason


# --- VOLUME ---------------------------------------------------------------------

MAX_S = 4 * 3600  # max_consult_s, default


@pytest.mark.parametrize(
    ("duration_ms", "expected"),
    [
        pytest.param(120 * SEC, OK, id="min-120s-inside"),
        pytest.param(119 * SEC, soft("VOLUME"), id="min-1s-outside"),
        pytest.param(120 * SEC - 1, soft("VOLUME"), id="min-1ms-outside-by-1ms-whole-seconds"),
        pytest.param(MAX_S * SEC, OK, id="max-4h-inside"),
        pytest.param(MAX_S * SEC + 999, OK, id="max+999ms-still-14400-whole-seconds"),
        pytest.param((MAX_S + 1) * SEC, soft("VOLUME"), id="max+1s-outside"),
    ],
)
def test_consultation_duration(w: World, duration_ms: int, expected: Expect) -> None:
    visit = w.follow_up(w.name("dur"))
    w.advance(duration_ms)
    receipt = w.send("hosp/gw", "consultation.close", {"consultation_id": visit.cid, "ended_at": w.t()})
    assert outcome(receipt) == expected, receipt.reason


def test_daily_volume_counts_per_local_day(tmp_path_factory: pytest.TempPathFactory) -> None:
    """At most ``max_consults_per_day`` (published as 2) per doctor per local day (UTC+8): the third
    of the day is flagged; one millisecond later, at local midnight, a new day starts."""
    w = standard(tmp_path_factory.mktemp("volume"))
    try:
        assert outcome(w.publish(1, {"max_consults_per_day": 2})) == OK
        local_midnight = midnight(w.now + LOCAL) - LOCAL  # 16:00 UTC
        w.advance_to(local_midnight - 20 * MIN)
        w.authenticate("hosp/dr-li", 0)
        w.advance_to(local_midnight)
        cases = [
            (local_midnight - 10 * MIN, OK),
            (local_midnight - 5 * MIN, OK),
            (local_midnight - 1, soft("VOLUME")),  # third of the local day
            (local_midnight, OK),  # first of the next local day
            (local_midnight + 1, OK),
        ]
        for started, expected in cases:
            patient, prior = w.visit(w.name("vol"))
            receipt = w.consult("hosp/dr-li", w.name("c-vol"), patient, prior, started_ms=started)
            assert outcome(receipt) == expected, (started - local_midnight, receipt.reason)
        patient, prior = w.visit(w.name("vol"))
        receipt = w.consult("hosp/dr-li", w.name("c-vol"), patient, prior, started_ms=local_midnight + 2)
        assert outcome(receipt) == soft("VOLUME"), receipt.reason
    finally:
        w.close()


# --- found while writing these tests (see the reasons) --------------------------


def test_a_delayed_older_authentication_does_not_erase_a_newer_one(w: World) -> None:
    doctor = w.doctor()
    patient, prior = w.visit(w.name("rn-order"))
    w.authenticate(doctor, 0, by="hosp/admin")  # face check now
    fresh = w.now
    w.advance(MIN)
    w.authenticate(doctor, fresh - 2 * HOUR - w.now, by="hosp/admin")  # an older check, reported late (not LATE)
    w.advance(4 * MIN)
    receipt = w.consult(doctor, w.name("c-rn-order"), patient, prior)  # 5 min after the fresh check
    assert outcome(receipt) == OK, receipt.reason


@pytest.mark.parametrize(
    ("first_practice", "expected"),
    [
        pytest.param(
            "2024-02-29",
            OK,
            id="leap-day-exactly-4-years-before-2028-02-29",
        ),
        pytest.param("2024-03-01", hard("DOC-EXPERIENCE"), id="4-years-less-1-day"),
    ],
)
def test_experience_across_a_leap_day(
    tmp_path_factory: pytest.TempPathFactory, first_practice: str, expected: Expect
) -> None:
    w = standard(tmp_path_factory.mktemp("leap"))
    try:
        assert outcome(w.publish(1, {"experience_years": 4})) == OK
        w.advance_to(parse_ms("2028-02-29T08:00:00.000Z"))
        doctor = w.doctor(first_practice=first_practice)
        visit = w.follow_up(w.name("leap"), doctor, check=False)
        assert outcome(visit.receipt) == expected, visit.receipt.reason
    finally:
        w.close()
