"""The packaged formulary: its content, its digest, and the loader's refusals.

Everything here reads the real file that ships in the package; the refusal
tests write edited copies of it into tmp_path, so a broken table is exercised
exactly as a node would meet one on disk.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from medledger.contracts import formulary
from medledger.errors import EncodingError, MedledgerError

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def packaged_doc() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(formulary.packaged_bytes())
    return doc


def write(tmp_path: Path, doc: dict[str, Any] | str) -> Path:
    path = tmp_path / "formulary.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def refusal(tmp_path: Path, doc: dict[str, Any] | str) -> EncodingError:
    with pytest.raises(EncodingError) as caught:
        formulary.load(write(tmp_path, doc))
    assert caught.value.code == "bad-formulary"
    assert isinstance(caught.value, MedledgerError)
    return caught.value


# --- the packaged table -------------------------------------------------------


def test_package_data_is_shipped() -> None:
    entry = resources.files("medledger.contracts").joinpath("formulary.json")
    assert entry.is_file()
    assert json.loads(entry.read_bytes())["drugs"]
    package_data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["setuptools"]["package-data"]
    assert "*.json" in package_data["medledger.contracts"], "formulary.json would be left out of wheels"


def test_default_is_loaded_once_and_is_large_enough() -> None:
    table = formulary.default()
    assert table is formulary.default()
    assert len(table) >= 150
    assert len(table) == len(table.drugs) == len(packaged_doc()["drugs"])
    assert table.version == packaged_doc()["version"]


def test_every_class_is_represented_with_enough_special_drugs() -> None:
    counts = Counter(d.drug_class for d in formulary.default().drugs)
    assert set(counts) == set(formulary.CLASSES)
    assert counts["ordinary"] >= 160
    assert sum(n for klass, n in counts.items() if klass != "ordinary") >= 30


def test_class_constants() -> None:
    assert formulary.CLASSES == (
        "ordinary",
        "narcotic",
        "psychotropic-1",
        "psychotropic-2",
        "toxic",
        "radioactive",
        "special",
    )
    assert formulary.PROHIBITED_ONLINE == frozenset(formulary.CLASSES) - {"ordinary"}
    for drug in formulary.default().drugs:
        assert drug.prescribable_online == (drug.drug_class == "ordinary")


def test_rxnorm_codes_are_unique_digit_strings() -> None:
    codes = [c for d in formulary.default().drugs for c in d.rxnorm]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[0-9]{1,9}", c) for c in codes)
    for drug in formulary.default().drugs:
        # Only radiopharmaceuticals, which RxNorm leaves out of scope, go uncoded.
        assert drug.rxnorm or drug.drug_class == "radioactive", drug.name


def test_every_prohibited_class_but_radioactive_has_a_prescribable_code() -> None:
    table = formulary.default()
    for klass in formulary.PROHIBITED_ONLINE - {"radioactive"}:
        assert any(d.rxnorm for d in table.drugs if d.drug_class == klass), klass


def test_names_are_unique() -> None:
    names = [d.name.casefold() for d in formulary.default().drugs]
    assert len(names) == len(set(names))


def test_digest_is_sha256_of_the_packaged_bytes() -> None:
    raw = resources.files("medledger.contracts").joinpath("formulary.json").read_bytes()
    assert formulary.default().digest == hashlib.sha256(raw).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", formulary.default().digest)


def test_loading_a_copy_gives_the_same_table(tmp_path: Path) -> None:
    path = tmp_path / "copy.json"
    path.write_bytes(formulary.packaged_bytes())
    copy = formulary.load(path)
    assert copy.digest == formulary.default().digest
    assert copy.drugs == formulary.default().drugs


def test_no_floats_anywhere_in_the_file() -> None:
    def walk(value: Any) -> None:
        assert not isinstance(value, float)
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(packaged_doc())


def test_fields_are_well_formed() -> None:
    doc = packaged_doc()
    source_ids = {s["id"] for s in doc["sources"]}
    for drug in formulary.default().drugs:
        assert re.fullmatch(r"[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}", drug.atc), drug.name
        assert drug.indications and all(re.fullmatch(r"[A-Z][0-9]{2}", i) for i in drug.indications), drug.name
        assert drug.max_daily_units >= 1 and drug.max_days >= 1 and drug.unit_price_fen >= 1, drug.name
        assert set(drug.sources) <= source_ids, drug.name
        assert isinstance(drug.rxnorm, tuple) and isinstance(drug.indications, tuple)


def test_special_classes_name_their_catalogue() -> None:
    catalogue = {
        "narcotic": {"cn-narcotic-2013"},
        "psychotropic-1": {"cn-psychotropic-2013"},
        "psychotropic-2": {"cn-psychotropic-2013", "cn-psychotropic-2024"},
        "toxic": {"cn-toxic-1988"},
        "radioactive": {"cn-radioactive-1989"},
        "special": {"cn-precursor-2005", "cn-doping-catalogue"},
    }
    for drug in formulary.default().drugs:
        if drug.drug_class != "ordinary":
            assert set(drug.sources) & catalogue[drug.drug_class], drug.name


def test_known_classifications() -> None:
    table = formulary.default()
    expected = {
        "morphine": "narcotic",
        "fentanyl": "narcotic",
        "oxycodone": "narcotic",
        "meperidine": "narcotic",
        "methadone": "narcotic",
        "codeine": "narcotic",
        "buprenorphine": "psychotropic-1",
        "triazolam": "psychotropic-1",
        "methylphenidate": "psychotropic-1",
        "ketamine": "psychotropic-1",
        "diazepam": "psychotropic-2",
        "alprazolam": "psychotropic-2",
        "estazolam": "psychotropic-2",
        "zolpidem": "psychotropic-2",
        "tramadol": "psychotropic-2",
        "phenobarbital": "psychotropic-2",
        "clonazepam": "psychotropic-2",
        "lorazepam": "psychotropic-2",
        "midazolam": "psychotropic-2",
        "atropine": "toxic",
        "scopolamine": "toxic",
        "arsenic trioxide": "toxic",
        "digitoxin": "toxic",
        "sodium iodide [131I]": "radioactive",
        "ephedrine": "special",
        "metformin": "ordinary",
        "amlodipine": "ordinary",
    }
    by_name = {d.name: d for d in table.drugs}
    for name, klass in expected.items():
        assert by_name[name].drug_class == klass, name


def test_by_rxnorm() -> None:
    table = formulary.default()
    metformin = table.by_rxnorm("6809")
    assert metformin is not None
    assert metformin.name == "metformin"
    assert metformin.drug_class == "ordinary"
    assert "E11" in metformin.indications
    morphine = table.by_rxnorm("7052")
    assert morphine is not None and not morphine.prescribable_online
    assert table.by_rxnorm("999999999") is None
    assert table.by_rxnorm("") is None
    for drug in table.drugs:
        for code in drug.rxnorm:
            assert table.by_rxnorm(code) is drug


def test_groups_are_shared_for_duplicate_therapy() -> None:
    groups = formulary.default().groups()
    assert list(groups) == sorted(groups)
    assert {d.name for d in groups["statin"]} >= {"atorvastatin", "rosuvastatin", "simvastatin"}
    assert {d.name for d in groups["ppi"]} >= {"omeprazole", "esomeprazole", "pantoprazole"}
    assert sum(len(v) for v in groups.values()) == len(formulary.default())
    assert sum(1 for v in groups.values() if len(v) > 1) >= 30


# --- refusals ------------------------------------------------------------------


def first_ordinary(doc: dict[str, Any]) -> dict[str, Any]:
    drug: dict[str, Any] = next(d for d in doc["drugs"] if d["class"] == "ordinary")
    return drug


def test_float_value_is_refused_naming_drug_and_field(tmp_path: Path) -> None:
    doc = packaged_doc()
    drug = first_ordinary(doc)
    drug["max_days"] = 7.5
    err = refusal(tmp_path, doc)
    assert drug["name"] in err.message and "'max_days'" in err.message and "7.5" in err.message
    assert err.detail == {"drug": drug["name"], "field": "max_days"}


def test_integral_float_and_exponent_are_refused(tmp_path: Path) -> None:
    text = formulary.packaged_bytes().decode("utf-8").replace('"unit_price_fen": 40,', '"unit_price_fen": 4e1,', 1)
    assert "4e1" in text
    err = refusal(tmp_path, text)
    assert "'unit_price_fen'" in err.message and "4e1" in err.message
    text = formulary.packaged_bytes().decode("utf-8").replace('"max_days": 84,', '"max_days": 84.0,', 1)
    assert "'max_days'" in refusal(tmp_path, text).message


def test_unknown_class_is_refused(tmp_path: Path) -> None:
    doc = packaged_doc()
    drug = first_ordinary(doc)
    drug["class"] = "controlled"
    err = refusal(tmp_path, doc)
    assert drug["name"] in err.message and "'class'" in err.message and "controlled" in err.message


def test_duplicate_rxnorm_code_is_refused(tmp_path: Path) -> None:
    doc = packaged_doc()
    first, second = doc["drugs"][0], doc["drugs"][1]
    second["rxnorm"] = [first["rxnorm"][0]]
    err = refusal(tmp_path, doc)
    assert first["rxnorm"][0] in err.message
    assert first["name"] in err.message and second["name"] in err.message
    assert err.detail["field"] == "rxnorm"


@pytest.mark.parametrize("field", ["rxnorm", "class", "max_daily_units", "indications", "unit_price_fen", "sources"])
def test_missing_field_is_refused(tmp_path: Path, field: str) -> None:
    doc = packaged_doc()
    drug = first_ordinary(doc)
    del drug[field]
    err = refusal(tmp_path, doc)
    assert drug["name"] in err.message and repr(field) in err.message
    assert err.detail == {"drug": drug["name"], "field": field}


def test_unknown_field_is_refused(tmp_path: Path) -> None:
    doc = packaged_doc()
    drug = first_ordinary(doc)
    drug["price"] = 1
    err = refusal(tmp_path, doc)
    assert drug["name"] in err.message and "'price'" in err.message


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("max_daily_units", 0, "positive integer"),
        ("max_days", -3, "positive integer"),
        ("unit_price_fen", True, "positive integer"),
        ("max_days", "30", "positive integer"),
        ("indications", ["E11.9"], "ICD-10"),
        ("indications", [], "non-empty list"),
        ("indications", ["E11", "E11"], "repeat"),
        ("rxnorm", [6809], "RxNorm"),
        ("rxnorm", ["68O9"], "RxNorm"),
        ("rxnorm", [], "non-empty list"),
        ("atc", "A10BA2", "must match"),
        ("group", "Statin Group", "must match"),
        ("name", "", "non-empty string"),
        ("sources", ["no-such-source"], "top-level sources"),
    ],
)
def test_malformed_values_are_refused(tmp_path: Path, field: str, value: Any, needle: str) -> None:
    doc = packaged_doc()
    drug = first_ordinary(doc)
    drug[field] = value
    err = refusal(tmp_path, doc)
    assert repr(field) in err.message and needle in err.message
    assert err.detail["field"] == field


def test_duplicate_name_is_refused(tmp_path: Path) -> None:
    doc = packaged_doc()
    doc["drugs"][1]["name"] = doc["drugs"][0]["name"].upper()
    assert "repeats the name" in refusal(tmp_path, doc).message


def test_duplicate_json_key_is_refused(tmp_path: Path) -> None:
    text = formulary.packaged_bytes().decode("utf-8").replace('"max_days": 84,', '"max_days": 84, "max_days": 1,', 1)
    assert "appears twice" in refusal(tmp_path, text).message


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"version": "x"}', "\ufeff{}", '{"version": NaN, "sources": [], "notes": "", "drugs": []}'],
)
def test_malformed_documents_are_refused(tmp_path: Path, text: str) -> None:
    refusal(tmp_path, text)


def test_top_level_faults_are_refused(tmp_path: Path) -> None:
    doc = packaged_doc()
    doc["version"] = 2026
    assert "'version'" in refusal(tmp_path, doc).message
    doc = packaged_doc()
    doc["drugs"] = []
    assert "'drugs'" in refusal(tmp_path, doc).message
    doc = packaged_doc()
    doc["sources"].append(dict(doc["sources"][0]))
    assert "listed twice" in refusal(tmp_path, doc).message
    doc = packaged_doc()
    doc["extra"] = {}
    assert "'extra'" in refusal(tmp_path, doc).message


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncodingError) as caught:
        formulary.load(tmp_path / "absent.json")
    assert caught.value.code == "bad-formulary"
    assert "absent.json" in caught.value.message
