"""No patient-identifying value reaches the ledger, even when an integrator tries to put one there.

Canaries (a name, a phone number, a resident ID number) are planted where a
careless hospital integration would put them: in the patient and guardian
fields, in a complaint, in a delivery recipient, and in extra fields beside
them. The gateway must refuse every one before ordering, writing nothing.
Then the SQLite files a two-day simulation left behind are scanned, byte by
byte for the canaries and common names, and value by value for anything
shaped like an ID number or a phone number: patients travel only as 64-hex
pseudonyms.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sim_support import SimRun

from medledger.errors import MedledgerError
from medledger.ledger import envelope
from medledger.ledger.timefmt import format_ms
from medledger.sim import EmbeddedDriver, SimConfig, run_simulation
from medledger.sim.run import SIM_START
from medledger.sim.seeded import Seeded

NAME = "Zhang Wei"
NAME_HAN = "张伟"
PHONE = "13800138000"
ID_NUMBER = "11010519491231002X"
CANARIES = (NAME, NAME_HAN, PHONE, ID_NUMBER, "CANARY-c0ffee")
#: a resident ID number (18 characters: region, birth date, sequence, check) or a mobile number,
#: standing alone: inside a longer hex or base64 string a run of digits is not an identifier
ID_PATTERN = re.compile(
    rb"(?<![0-9A-Za-z])[1-9][0-9]{5}(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]"
    rb"(?![0-9A-Za-z])"
)
PHONE_PATTERN = re.compile(rb"(?<![0-9A-Za-z+])1[3-9][0-9]{9}(?![0-9A-Za-z])")
COMMON_NAMES = ("Zhang Wei", "Wang Fang", "Li Na", "Liu Yang", "Chen Jing", "张伟", "王芳", "李娜", "刘洋", "陈静")


def _attempts(s: Seeded, now: int) -> list[tuple[str, str, dict[str, Any]]]:
    at = format_ms(now)
    patient = s.pseudonym("canary", 1)
    gateway = "ih-eastlake/gw"
    return [
        (gateway, "patient.verify", {"patient": NAME, "birth_month": "1980-01", "method": "resident-id", "at": at}),
        (
            gateway,
            "patient.verify",
            {"patient": ID_NUMBER, "birth_month": "1980-01", "method": "resident-id", "at": at},
        ),
        (
            gateway,
            "patient.verify",
            {"patient": patient, "birth_month": "1980-01", "method": "resident-id", "at": at, "name": NAME_HAN},
        ),
        (
            gateway,
            "patient.verify",
            {"patient": patient, "birth_month": "1980-01", "method": "resident-id", "at": at, "phone": PHONE},
        ),
        (
            "ih-eastlake/dr-001",
            "consultation.open",
            {
                "consultation_id": "canary-1",
                "patient": patient,
                "guardian": PHONE,
                "specialty": "general-practice",
                "diagnosis": "I10",
                "started_at": at,
            },
        ),
        (
            "ih-eastlake/dr-001",
            "consultation.open",
            {
                "consultation_id": "canary-2",
                "patient": patient,
                "specialty": "general-practice",
                "diagnosis": "I10",
                "started_at": at,
                "notes": f"{NAME} {PHONE}",
            },
        ),
        (
            "regulator/public-desk",
            "complaint.file",
            {
                "complaint_id": "canary-3",
                "about": "ih-eastlake",
                "category": "privacy",
                "complainant": ID_NUMBER,
                "filed_at": at,
            },
        ),
        (
            "regulator/public-desk",
            "complaint.file",
            {
                "complaint_id": "canary-4",
                "about": "ih-eastlake",
                "category": "privacy",
                "filed_at": at,
                "text": f"my name is {NAME}, call {PHONE}",
            },
        ),
        (
            "pharmacy-greenleaf/gw",
            "delivery.handover",
            {"dispense_id": "canary-5", "seq": 1, "to": "patient", "recipient": NAME, "at": at},
        ),
        (
            "ih-eastlake/gw",
            "encounter.record",
            {
                "encounter_id": "canary-6",
                "patient": patient,
                "date": "2026-02-01",
                "diagnosis": "I10",
                "document": NAME,
            },
        ),
        (
            "ih-eastlake/dr-001",
            "report.adverse-event",
            {
                "report_id": "canary-7",
                "category": "other",
                "seriousness": "serious",
                "occurred_at": at,
                "anonymous": False,
                "patient_name": NAME_HAN,
            },
        ),
    ]


def _patterns(where: str, data: bytes) -> list[str]:
    found = [f"{where}: ID number {m.group()!r}" for m in ID_PATTERN.finditer(data)]
    return found + [f"{where}: phone number {m.group()!r}" for m in PHONE_PATTERN.finditer(data)]


def _cells(db: Path) -> list[tuple[str, bytes]]:
    """Every text and blob value in the database, one by one: numbers are matched within a value,
    never across the page boundaries of the raw file (where a 13-digit timestamp can be cut to 11)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        cells = []
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                cells += [(table, v if isinstance(v, bytes) else v.encode()) for v in row if isinstance(v, str | bytes)]
        return cells
    finally:
        conn.close()


def _scan(files: list[Path]) -> list[str]:
    """Canary strings and common names anywhere in the raw bytes; identifier shapes in every stored value."""
    found = []
    for path in files:
        data = path.read_bytes()
        for canary in CANARIES + COMMON_NAMES:
            if canary.encode() in data or canary.casefold().encode() in data.lower():
                found.append(f"{path.name}: {canary!r}")
        if path.name == "ledger.sqlite":
            for table, value in _cells(path):
                found += _patterns(f"{path.name} table {table}", value)
        elif not path.name.startswith("ledger.sqlite"):
            found += _patterns(path.name, data)
    return found


def test_the_gateway_refuses_identifiers_wherever_an_integrator_puts_them(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    driver = EmbeddedDriver(data, SIM_START)
    try:
        run_simulation(driver, SimConfig(seed=5, days=0.05))
        s = Seeded(5)
        size = driver.node.store.tip()
        assert size is not None
        for n, (signer, type_, payload) in enumerate(_attempts(s, driver.now())):
            env = envelope.build(s.key(signer), type_, payload, nonce=f"canary{n:04d}", created_ms=driver.now())
            with pytest.raises(MedledgerError) as refused:
                driver.node.submit_sync([env.to_wire()])
            assert refused.value.code == "invalid-payload", (type_, refused.value.message)
        after = driver.node.store.tip()
        assert after is not None and after.tree_size == size.tree_size, "a refused envelope must write nothing"
    finally:
        driver.close()
    assert _scan(sorted(data.glob("ledger.sqlite*"))) == []


def test_a_simulated_ledger_holds_no_identifier(seed7: SimRun) -> None:
    files = sorted(seed7.data.glob("ledger.sqlite*"))
    assert sum(f.stat().st_size for f in files) > 1_000_000
    assert len(_cells(seed7.data / "ledger.sqlite")) > 50_000
    assert _scan([*files, seed7.data / "sim" / "receipts.jsonl", seed7.data / "sim" / "ground-truth.jsonl"]) == []


def test_pseudonyms_are_hex_only() -> None:
    s = Seeded(7)
    assert all(re.fullmatch(r"[0-9a-f]{64}", s.pseudonym("patient", n)) for n in range(1000))


def test_an_id_field_refuses_a_resident_id_number(tmp_path: Path) -> None:
    data = tmp_path / "ledger"
    driver = EmbeddedDriver(data, SIM_START)
    try:
        run_simulation(driver, SimConfig(seed=5, days=0.02))
        s = Seeded(5)
        env = envelope.build(
            s.key("ih-eastlake/gw"),
            "encounter.record",
            {
                "encounter_id": ID_NUMBER,
                "patient": s.pseudonym("canary", 2),
                "date": "2026-02-01",
                "diagnosis": "I10",
                "document": s.document("canary"),
            },
            nonce="canary-id-field",
            created_ms=driver.now(),
        )
        with pytest.raises(MedledgerError):
            driver.node.submit_sync([env.to_wire()])
    finally:
        driver.close()


def test_the_scan_would_find_a_planted_identifier(tmp_path: Path) -> None:
    planted = tmp_path / "planted.txt"
    for value in ('{"x":"44030419851015123X"}', "tel:15912345678;", "Wang Fang", "王芳"):
        planted.write_bytes(b"\x00prefix " + value.encode() + b" suffix\x00")
        assert _scan([planted]), value
    planted.write_bytes(Seeded(7).pseudonym("patient", 1).encode() + b"," + b"1" * 18 + b"ab,1772410583700")
    assert _scan([planted]) == []
    db = tmp_path / "ledger.sqlite"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE t (body BLOB)")
        conn.execute("INSERT INTO t VALUES (?)", (b'{"patient":"44030419851015123X"}',))
    conn.close()
    assert _scan([db]) == ["ledger.sqlite table t: ID number b'44030419851015123X'"]
