"""Every string syntax a ledger payload may hold, and why none of them can carry PHI.

The ledger is immutable and replicated to every member, so a patient's name,
phone number, ID number or address written into it once can never be taken
back. Payload models therefore have no free-text field: each string field has
one of the syntaxes below, and each syntax is shaped so that the ways those
identifiers are written cannot pass it:

* **No long numbers.** At most :data:`MAX_DIGITS` (6) digits may stand
  together, also across single ``- . _ : /`` separators, so ``13899990000``,
  ``138-9999-0000`` and ``110101199003077777`` are refused wherever they are
  put. Six is the largest bound that still refuses every landline (7 to 8
  digits), mobile (11), resident ID (15 or 18), bank card and passport number,
  while leaving counters up to 999999 and four-digit years. A calendar date
  (``2026-11-24``) or month (``2026-11``) standing on its own is the one
  exception: it is a structured form, not a number.
* **No way to write a name or a sentence.** Tokens are lowercase ASCII with no
  spaces: a capitalised word (``Zhang``), a spaced phrase (``Zhang San``, an
  address, a note) and Chinese characters are refused. Only code-shaped fields
  (ICD-10 codes, licence numbers) hold capitals, each in a fixed shape.
* **Bounded length** everywhere.

Refusals are :class:`pydantic_core.PydanticCustomError`, so the gateway's
``invalid-payload`` sentence names the field and the rule it broke (e.g.
``label: a run of 11 digits could be a phone or ID number; ...``).

These are **admission** rules, applied by ``TxBuilder`` and the node's
gateway before anything is ordered. A ledger cannot change its past, so when
``verify`` replays blocks (:func:`replaying`) each syntax accepts what ledgers
written before these rules (issue 12) could hold, and an old ledger still
verifies; nothing new can be admitted that way.

What syntax cannot stop is deliberate encoding by a signer (a word spelt in
lowercase pinyin, bytes hidden in a digest): docs/threat-model.md lists every
field, its syntax, and that residual risk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date
from typing import Annotated

from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from medledger.errors import MedledgerError
from medledger.ledger.timefmt import parse_ms

#: the most digits that may stand together in any token (see the module docstring for why 6)
MAX_DIGITS = 6

#: a date or month standing on its own: not glued to other digits, even across a separator
_STANDALONE_DATE = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9][-._:/ ])([0-9]{4})-([0-9]{2})(?:-([0-9]{2}))?(?![0-9A-Za-z])(?![-._:/ ][0-9])"
)
_DIGIT_CHAIN = re.compile(r"[0-9]+(?:[-._:/ ][0-9]+)*")
#: the quick test, a superset of "more than MAX_DIGITS digits chained": most tokens fail it and skip the count
_TOO_MANY = re.compile(rf"[0-9][-._:/ 0-9]{{{MAX_DIGITS},}}")
_LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"


_REPLAYING: ContextVar[bool] = ContextVar("medledger_syntax_replaying", default=False)


@contextmanager
def replaying() -> Iterator[None]:
    """Within this block, syntaxes accept what they accepted before issue 12 (``verify`` replaying old blocks)."""
    token = _REPLAYING.set(True)
    try:
        yield
    finally:
        _REPLAYING.reset(token)


def _legacy(text: str, legacy: re.Pattern[str] | None) -> bool:
    """True when replaying and ``text`` has the shape this field had before issue 12."""
    return legacy is not None and _REPLAYING.get() and legacy.fullmatch(text) is not None


def _is_date(match: re.Match[str]) -> bool:
    year, month, day = match.group(1), match.group(2), match.group(3)
    try:
        date(int(year), int(month), int(day or "01"))
    except ValueError:
        return False
    return True


def longest_digit_run(text: str) -> int:
    """Digits standing together in ``text`` (across single separators), standalone dates excepted."""
    blanked = _STANDALONE_DATE.sub(lambda m: "d" if _is_date(m) else m.group(0), text)
    return max((sum(c.isdigit() for c in chain.group(0)) for chain in _DIGIT_CHAIN.finditer(blanked)), default=0)


def counter(n: int) -> str:
    """A label part for a counter of any size: at most 6 digits together (1234567 -> ``1m234567``)."""
    high, low = divmod(n, 10**MAX_DIGITS)
    return f"{counter(high)}m{low:0{MAX_DIGITS}d}" if high else str(low)


def _fault(rule: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(rule, message)


def _digits_ok(text: str, what: str) -> None:
    if _TOO_MANY.search(text) is None:
        return
    run = longest_digit_run(text)
    if run > MAX_DIGITS:
        raise _fault(
            "long-number",
            f"a run of {run} digits could be a phone or ID number; {what} may hold at most {MAX_DIGITS} digits "
            "together (also across - . _ : / separators), a date like 2026-11-24 excepted",
        )


def _character_class(c: str) -> str:
    if c.isspace():
        return "a space"
    if not c.isascii():
        return "a non-ASCII character"
    if c.isupper():
        return "a capital letter"
    return f"the character {c!r}"


@dataclass(frozen=True)
class Token:
    """A lowercase token grammar: segments of ``[a-z0-9]`` joined by single ``inner`` characters.

    With ``segments`` above one, ``/`` splits the token into that many parts
    (labels, member ids); ``first_letter`` asks the first part to start with a
    letter. Every token also passes the digit rule.
    """

    what: str
    shape: str
    max_len: int
    segments: tuple[int, int] = (1, 1)
    inner: str = "-._"
    segment_len: int = 63
    first_letter: bool = False
    #: what this field held before issue 12, accepted only while :func:`replaying`
    legacy: re.Pattern[str] | None = None

    @functools.cached_property
    def _grammar(self) -> re.Pattern[str]:
        inner = re.escape(self.inner)
        part = rf"[a-z0-9]+(?:[{inner}][a-z0-9]+)*"
        first = ("(?=[a-z])" if self.first_letter else "") + part
        low, high = self.segments
        return re.compile(rf"{first}(?:/{part}){{{low - 1},{high - 1}}}")

    def _fits(self, text: str) -> bool:
        if self._grammar.fullmatch(text) is None:
            return False
        return len(text) <= self.segment_len or max(map(len, text.split("/"))) <= self.segment_len

    def __call__(self, text: str) -> str:
        if _legacy(text, self.legacy):
            return text
        if not 1 <= len(text) <= self.max_len:
            raise _fault("length", f"{self.what} must be 1 to {self.max_len} characters ({self.shape})")
        if not self._fits(text):
            allowed = _LOWER + self.inner + ("/" if self.segments[1] > 1 else "")
            bad = next((c for c in text if c not in allowed), None)
            if bad is not None:
                raise _fault(
                    "charset",
                    f"{self.what} may not hold {_character_class(bad)}: only lowercase letters, digits and "
                    f"{' '.join(sorted(set(allowed) - set(_LOWER)))} (capitals, spaces and other scripts are how "
                    "names, addresses and free text are written)",
                )
            raise _fault("shape", f"{self.what} must be {self.shape}")
        _digits_ok(text, self.what)
        return text


def _pattern(
    rule: str, regex: str, message: str, *, digits: str | None = None, legacy: re.Pattern[str] | None = None
) -> Callable[[str], str]:
    compiled = re.compile(regex)

    def check(text: str) -> str:
        if _legacy(text, legacy):
            return text
        if compiled.fullmatch(text) is None:
            raise _fault(rule, message)
        if digits is not None:
            _digits_ok(text, digits)
        return text

    return check


def _instant(text: str) -> str:
    try:
        parse_ms(text, what="event time")
    except MedledgerError as exc:
        raise _fault("instant", exc.message) from None
    return text


def _day(text: str) -> str:
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text) is None:
        raise _fault("day", "must be a date like 2026-11-24")
    try:
        date.fromisoformat(text)
    except ValueError:
        raise _fault("day", "must be a real calendar date like 2026-11-24") from None
    return text


def _month(text: str) -> str:
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}", text) is None or not 1 <= int(text[5:]) <= 12:
        raise _fault("month", "must be a month like 2019-04")
    return text


#: the shapes ledgers written before issue 12 hold, accepted only while :func:`replaying`
_LEGACY_SLUG = r"[a-z0-9][a-z0-9._-]{0,62}"
_LEGACY_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,120}")

_SLUG = Token(
    "an id", "lowercase letters, digits and single - . _ inside, like ih-eastlake", 63, legacy=re.compile(_LEGACY_SLUG)
)

#: an organisation, app, specialty or other registry handle: ``ih-eastlake``
Slug = Annotated[str, AfterValidator(_SLUG)]
#: a member: ``org`` or ``org/name`` (``ih-eastlake/dr-001``)
MemberId = Annotated[
    str,
    AfterValidator(
        Token(
            "a member id",
            "an organisation id, then optionally / and a name, like ih-eastlake/dr-001",
            127,
            (1, 2),
            legacy=re.compile(rf"{_LEGACY_SLUG}(/{_LEGACY_SLUG})?"),
        )
    ),
]
#: a record id chosen by the institution (rx_id, dispense_id, complaint_id, ...): ``rx-000123``
RecordId = Annotated[
    str,
    AfterValidator(
        Token(
            "a record id",
            "lowercase letters, digits and single - . _ : inside, like rx-000123",
            80,
            inner="-._:",
            legacy=re.compile(r"(?![^\n]*[0-9]{11})[A-Za-z0-9][A-Za-z0-9._:-]{0,79}"),
        )
    ),
]
#: an ``anchor.record`` label: ``namespace/kind[/part...]``, e.g. ``his/export/2026-11-24``
Label = Annotated[
    str,
    AfterValidator(
        Token(
            "a label",
            "namespace/kind[/part...]: 2 to 6 parts of up to 40 characters joined by / (like "
            "his/export/2026-11-24), each of lowercase letters and digits with single - . _ inside, the first "
            "starting with a letter",
            128,
            (2, 6),
            segment_len=40,
            first_letter=True,
            legacy=re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}"),
        )
    ),
]
#: a registered display name (consortium, institution, app): lowercase words joined by ``-``
Title = Annotated[
    str,
    AfterValidator(
        Token(
            "a name on the ledger",
            "lowercase words joined by -, like eastlake-internet-hospital",
            100,
            inner="-",
            legacy=_LEGACY_NAME,
        )
    ),
]
#: a rulebook parameter name (``rx_min_s``); the contract refuses names its catalogue does not list
ParamName = Annotated[
    str,
    AfterValidator(_pattern("param-name", r"[a-z_]{1,40}", "a rulebook parameter is 1 to 40 lowercase letters or _")),
]
#: a member role (``doctor``, ``admin``, ...)
Role = Annotated[
    str, AfterValidator(_pattern("role", r"[a-z][a-z-]{1,31}", "a role is 2 to 32 lowercase letters or -"))
]
#: a key id: the 32-byte Ed25519 public key, base64url without padding
KeyId = Annotated[
    str, AfterValidator(_pattern("key-id", r"[A-Za-z0-9_-]{43}", "a key id is 43 base64url characters (32 bytes)"))
]
#: an Ed25519 signature, base64url without padding
Signature = Annotated[
    str,
    AfterValidator(_pattern("signature", r"[A-Za-z0-9_-]{86}", "a signature is 86 base64url characters (64 bytes)")),
]
#: a SHA-256 digest, lowercase hex
Sha256Hex = Annotated[
    str, AfterValidator(_pattern("sha256", r"[0-9a-f]{64}", "a SHA-256 digest is 64 lowercase hex characters"))
]
#: a patient's pseudonym: 64 lowercase hex (an HMAC or OPRF output, never the identifier itself)
Pseudonym = Annotated[
    str,
    AfterValidator(
        _pattern("pseudonym", r"[0-9a-f]{64}", "a patient is named only by a pseudonym of 64 lowercase hex characters")
    ),
]
#: an ICD-10 code: ``I10``, ``E11.9``
Icd10 = Annotated[
    str,
    AfterValidator(
        _pattern("icd10", r"[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?", "an ICD-10 code is a capital and two digits, like E11.9")
    ),
]
#: an RxNorm concept id (digits, the one field where up to 9 digits stand together: a drug code, not a person)
RxNorm = Annotated[str, AfterValidator(_pattern("rxnorm", r"[0-9]{1,9}", "an RxNorm code is 1 to 9 digits"))]
#: a licence number: a capital prefix and serial parts joined by ``-``: ``DOC-00012``, ``LIC-EASTLAKE``
LicenceNo = Annotated[
    str,
    AfterValidator(
        _pattern(
            "licence-number",
            r"[A-Z][A-Z0-9]{1,7}(-[A-Z0-9]{1,16}){1,3}",
            "a licence number is a capital prefix and 1 to 3 parts of capitals or digits joined by -, like DOC-00012",
            digits="a licence number",
            legacy=re.compile(r"[A-Z0-9][A-Z0-9-]{3,39}"),
        )
    ),
]
#: an event time in the ledger's one format, ``2026-11-24T01:14:25.123Z``
Instant = Annotated[str, AfterValidator(_instant)]
#: a calendar day, ``2026-11-24``
Day = Annotated[str, AfterValidator(_day)]
#: a calendar month, ``2019-04`` (the only birth information the ledger keeps)
Month = Annotated[str, AfterValidator(_month)]

__all__ = [
    "MAX_DIGITS",
    "Day",
    "Icd10",
    "Instant",
    "KeyId",
    "Label",
    "LicenceNo",
    "MemberId",
    "Month",
    "ParamName",
    "Pseudonym",
    "RecordId",
    "Role",
    "RxNorm",
    "Sha256Hex",
    "Signature",
    "Slug",
    "Title",
    "Token",
    "counter",
    "longest_digit_run",
    "replaying",
]
