"""The drug formulary that ships with medledger, and its strict loader.

Prescription rules need one shared table of drugs: RX-PROHIBITED reads the
regulatory class, RX-LIMITS the daily and day-of-supply limits, RX-INDICATION
the ICD-10 categories, RX-DUPLICATE the therapeutic group and CLAIM-MATCH the
unit price. The table is data (``formulary.json`` beside this module), keyed by
RxNorm ingredient codes so that FHIR medication codings from ordinary hospital
systems can be checked without a translation step.

Every member must judge a prescription against the same bytes, so the loader
hashes the raw file and the rulebook pins that digest on the ledger. For the
same reason it is strict: a formulary that parses loosely on one node and
fails on another would split the consortium, so any fault (a float, an unknown
class, a duplicate code, a missing or extra field) is refused with a sentence
naming the drug and the field.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from medledger.errors import EncodingError

CLASSES: Final[tuple[str, ...]] = (
    "ordinary",
    "narcotic",
    "psychotropic-1",
    "psychotropic-2",
    "toxic",
    "radioactive",
    "special",
)
"""Regulatory classes, after China's catalogues (narcotic, psychotropic I and II,
toxic and radioactive drugs, other special management)."""

PROHIBITED_ONLINE: Final[frozenset[str]] = frozenset(CLASSES) - {"ordinary"}
"""Classes an Internet hospital may never prescribe (RX-PROHIBITED)."""

_CODE: Final = "bad-formulary"
_PACKAGE: Final = "medledger.contracts"
_FILENAME: Final = "formulary.json"

# Same shape as models.RxNorm, so every formulary code is one a prescription can carry.
_RXCUI: Final = re.compile(r"^[0-9]{1,9}$")
_ICD10: Final = re.compile(r"^[A-Z][0-9]{2}$")
_ATC: Final = re.compile(r"^[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}$")
_SLUG: Final = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

_TOP_FIELDS: Final = frozenset({"version", "sources", "notes", "drugs"})
_SOURCE_FIELDS: Final = frozenset({"id", "title", "url"})
_DRUG_FIELDS: Final[tuple[str, ...]] = (
    "rxnorm",
    "name",
    "atc",
    "class",
    "group",
    "form",
    "strength",
    "max_daily_units",
    "max_days",
    "indications",
    "unit_price_fen",
    "sources",
)
# RxNorm leaves radiopharmaceuticals out of scope (no normalized RXCUI), so only
# this class may list no code; such drugs are matched by name and ATC alone.
_UNCODED_CLASSES: Final = frozenset({"radioactive"})


@dataclass(frozen=True, slots=True)
class Drug:
    """One formulary entry: what a prescription of it may be, and what it costs."""

    rxnorm: tuple[str, ...]
    name: str
    atc: str
    drug_class: str
    group: str
    form: str
    strength: str
    max_daily_units: int
    max_days: int
    indications: tuple[str, ...]
    unit_price_fen: int
    sources: tuple[str, ...]

    @property
    def prescribable_online(self) -> bool:
        """Whether an Internet hospital may prescribe it at all (RX-PROHIBITED)."""
        return self.drug_class not in PROHIBITED_ONLINE


class Formulary:
    """The loaded table, indexed by RxNorm code.

    ``digest`` is the SHA-256 of the file's raw bytes rather than of any
    re-encoding, so a member can compare it with the digest the rulebook pins
    without trusting this parser.
    """

    __slots__ = ("_by_rxnorm", "digest", "drugs", "notes", "sources", "version")

    def __init__(
        self,
        drugs: tuple[Drug, ...],
        version: str,
        digest: str,
        sources: Mapping[str, str],
        notes: str = "",
    ) -> None:
        self.drugs = drugs
        self.version = version
        self.digest = digest
        self.sources: Mapping[str, str] = MappingProxyType(dict(sources))
        self.notes = notes
        index: dict[str, Drug] = {}
        for drug in drugs:
            for code in drug.rxnorm:
                if code in index:
                    raise EncodingError(
                        f"RxNorm {code} is listed for both {index[code].name} and {drug.name}",
                        code=_CODE,
                        drug=drug.name,
                        field="rxnorm",
                    )
                index[code] = drug
        self._by_rxnorm: Mapping[str, Drug] = MappingProxyType(index)

    def by_rxnorm(self, code: str) -> Drug | None:
        """The drug an RxNorm ingredient code stands for, or None if the formulary lacks it."""
        return self._by_rxnorm.get(code)

    def __len__(self) -> int:
        return len(self.drugs)

    def groups(self) -> Mapping[str, tuple[Drug, ...]]:
        """Drugs by therapeutic group, in group-name order.

        Two drugs of one group are the same therapy for RX-DUPLICATE, so this is
        what a reviewer reads to see which supplies would overlap.
        """
        grouped: dict[str, list[Drug]] = {}
        for drug in self.drugs:
            grouped.setdefault(drug.group, []).append(drug)
        return MappingProxyType({name: tuple(grouped[name]) for name in sorted(grouped)})

    def __repr__(self) -> str:
        return f"Formulary(version={self.version!r}, drugs={len(self.drugs)}, digest={self.digest[:12]}...)"


class _Float(str):
    """A JSON number with a fraction or exponent, kept as text so the error can name its field."""

    __slots__ = ()


def _fail(where: str, message: str, *, drug: str | None = None, field: str | None = None) -> EncodingError:
    detail: dict[str, Any] = {}
    if drug is not None:
        detail["drug"] = drug
    if field is not None:
        detail["field"] = field
    return EncodingError(f"formulary {where}: {message}", code=_CODE, **detail)


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json would silently keep the last of two equal keys; two nodes reading the
    # "same" file must not disagree about which value counts.
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _describe(value: Any) -> str:
    if isinstance(value, _Float):
        return f"the non-integer number {value}"
    if isinstance(value, bool):
        return f"the boolean {json.dumps(value)}"
    if value is None:
        return "null"
    return f"{type(value).__name__} {json.dumps(value, ensure_ascii=False)[:60]}"


def _parse(raw: bytes, where: str) -> Formulary:
    try:
        text = raw.decode("utf-8")
        doc = json.loads(
            text,
            parse_float=_Float,
            parse_constant=_Float,
            object_pairs_hook=_reject_duplicate_keys,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(where, f"is not valid UTF-8 JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise _fail(where, f"must be a JSON object, not {_describe(doc)}")
    _exact_fields(where, "the top level", doc, _TOP_FIELDS)
    version = doc["version"]
    if not isinstance(version, str) or not version.strip():
        raise _fail(where, f"field 'version' must be a non-empty string, got {_describe(version)}", field="version")
    notes = doc["notes"]
    if not isinstance(notes, str):
        raise _fail(where, f"field 'notes' must be a string, got {_describe(notes)}", field="notes")
    sources = _sources(where, doc["sources"])
    drugs_raw = doc["drugs"]
    if not isinstance(drugs_raw, list) or not drugs_raw:
        raise _fail(where, f"field 'drugs' must be a non-empty list, got {_describe(drugs_raw)}", field="drugs")
    drugs = tuple(_drug(where, n, entry, sources) for n, entry in enumerate(drugs_raw, start=1))
    names: dict[str, int] = {}
    codes: dict[str, int] = {}
    for n, drug in enumerate(drugs, start=1):
        key = drug.name.casefold()
        if key in names:
            raise _fail(
                where, f"drug #{n} ({drug.name}) repeats the name of drug #{names[key]}", drug=drug.name, field="name"
            )
        names[key] = n
        for code in drug.rxnorm:
            if code in codes:
                first = drugs[codes[code] - 1].name
                raise _fail(
                    where,
                    f"drug #{n} ({drug.name}) field 'rxnorm' repeats RxNorm {code}, "
                    f"already listed for drug #{codes[code]} ({first})",
                    drug=drug.name,
                    field="rxnorm",
                )
            codes[code] = n
    return Formulary(drugs, version, hashlib.sha256(raw).hexdigest(), sources, notes)


def _exact_fields(
    where: str, what: str, obj: dict[str, Any], expected: frozenset[str] | tuple[str, ...], drug: str | None = None
) -> None:
    missing = [f for f in expected if f not in obj]
    if missing:
        raise _fail(where, f"{what} lacks the field {missing[0]!r}", drug=drug, field=missing[0])
    extra = sorted(set(obj) - set(expected))
    if extra:
        raise _fail(where, f"{what} has the unknown field {extra[0]!r}", drug=drug, field=extra[0])


def _sources(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, list) or not value:
        raise _fail(where, f"field 'sources' must be a non-empty list, got {_describe(value)}", field="sources")
    out: dict[str, str] = {}
    for n, entry in enumerate(value, start=1):
        if not isinstance(entry, dict):
            raise _fail(where, f"source #{n} must be an object, not {_describe(entry)}", field="sources")
        _exact_fields(where, f"source #{n}", entry, _SOURCE_FIELDS)
        for field in ("id", "title", "url"):
            if not isinstance(entry[field], str) or not entry[field].strip():
                raise _fail(
                    where, f"source #{n} field {field!r} must be a non-empty string, got {_describe(entry[field])}"
                )
        if not _SLUG.match(entry["id"]):
            raise _fail(where, f"source #{n} id {entry['id']!r} is not a lower-case slug", field="sources")
        if entry["id"] in out:
            raise _fail(where, f"source id {entry['id']!r} is listed twice", field="sources")
        out[entry["id"]] = entry["title"]
    return out


def _drug(where: str, n: int, entry: Any, sources: Mapping[str, str]) -> Drug:
    if not isinstance(entry, dict):
        raise _fail(where, f"drug #{n} must be an object, not {_describe(entry)}")
    name = entry.get("name")
    label = name if isinstance(name, str) and name.strip() else f"#{n}"
    what = f"drug #{n} ({label})"
    _exact_fields(where, what, entry, _DRUG_FIELDS, drug=label)

    def bad(field: str, rule: str) -> EncodingError:
        return _fail(where, f"{what} field {field!r} {rule}, got {_describe(entry[field])}", drug=label, field=field)

    def text(field: str, pattern: re.Pattern[str] | None = None) -> str:
        value = entry[field]
        if not isinstance(value, str) or not value.strip() or value != value.strip():
            raise bad(field, "must be a non-empty string without surrounding spaces")
        if pattern is not None and not pattern.match(value):
            raise bad(field, f"must match {pattern.pattern}")
        return value

    def count(field: str) -> int:
        value = entry[field]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise bad(field, "must be a positive integer")
        return value

    def strings(field: str, check: Callable[[str], bool], rule: str, *, allow_empty: bool) -> tuple[str, ...]:
        value = entry[field]
        if not isinstance(value, list) or (not value and not allow_empty):
            raise bad(field, f"must be a {'' if allow_empty else 'non-empty '}list of {rule}")
        for item in value:
            if not isinstance(item, str) or not check(item):
                raise _fail(
                    where,
                    f"{what} field {field!r} must list only {rule}, got {_describe(item)}",
                    drug=label,
                    field=field,
                )
        if len(set(value)) != len(value):
            raise bad(field, "must not repeat an item")
        return tuple(value)

    drug_class = entry["class"]
    if drug_class not in CLASSES:
        raise bad("class", f"must be one of {', '.join(CLASSES)}")
    rxnorm = strings(
        "rxnorm",
        lambda s: bool(_RXCUI.match(s)),
        "RxNorm codes (strings of 1-9 digits)",
        allow_empty=drug_class in _UNCODED_CLASSES,
    )
    drug_sources = strings("sources", lambda s: s in sources, "ids from the top-level sources", allow_empty=False)
    return Drug(
        rxnorm=rxnorm,
        name=text("name"),
        atc=text("atc", _ATC),
        drug_class=drug_class,
        group=text("group", _SLUG),
        form=text("form"),
        strength=text("strength"),
        max_daily_units=count("max_daily_units"),
        max_days=count("max_days"),
        indications=strings(
            "indications", lambda s: bool(_ICD10.match(s)), "ICD-10 three-character categories", allow_empty=False
        ),
        unit_price_fen=count("unit_price_fen"),
        sources=drug_sources,
    )


def packaged_bytes() -> bytes:
    """The raw bytes of the formulary that ships inside the package."""
    return resources.files(_PACKAGE).joinpath(_FILENAME).read_bytes()


def load(path: Path | None = None) -> Formulary:
    """Read and validate a formulary: the packaged one, or the file at ``path``.

    Raises :class:`~medledger.errors.EncodingError` (code ``bad-formulary``)
    naming the drug and field at the first fault, because a table that cannot
    be read identically everywhere must not be used anywhere.
    """
    if path is None:
        where = f"{_PACKAGE}/{_FILENAME}"
        try:
            raw = packaged_bytes()
        except OSError as exc:
            raise _fail(where, f"cannot be read from the installed package ({exc})") from exc
    else:
        where = str(path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise _fail(where, f"cannot be read ({exc.strerror or exc})") from exc
    return _parse(raw, where)


@functools.cache
def default() -> Formulary:
    """The packaged formulary, loaded and validated once per process."""
    return load()
