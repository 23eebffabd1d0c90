"""Envelopes: one byte string per logical envelope, signatures over exactly those bytes."""

from __future__ import annotations

import base64

import pytest

from medledger.errors import EncodingError, SignatureError
from medledger.ledger import envelope, keys
from medledger.ledger.canonical import b64d, b64e, canonical_bytes, parse_canonical


def test_round_trip_and_leaf_data() -> None:
    key = keys.SigningKey.generate()
    env = envelope.build(key, "anchor.record", {"label": "x", "sha256": "ab" * 32})
    again = envelope.from_wire(env.to_wire())
    assert again == env
    obj = {"envelope": parse_canonical(env.body), "signature": b64e(env.signature)}
    assert env.leaf_data() == canonical_bytes(obj)
    assert len(env.tx_id) == 64


def test_signature_covers_every_byte() -> None:
    key = keys.SigningKey.generate()
    env = envelope.build(key, "anchor.record", {"label": "x", "sha256": "ab" * 32})
    body = env.body.replace(b"ab", b"ac", 1)
    with pytest.raises(SignatureError):
        envelope.from_wire({"envelope": b64e(body), "signature": b64e(env.signature)})
    sig = bytes([env.signature[0] ^ 1]) + env.signature[1:]
    with pytest.raises(SignatureError):
        envelope.from_wire({"envelope": b64e(env.body), "signature": b64e(sig)})


def test_domain_separation() -> None:
    """A signature made for a tree head never verifies as an envelope signature."""
    key = keys.SigningKey.generate()
    env = envelope.build(key, "anchor.record", {"label": "x", "sha256": "ab" * 32})
    other = key.sign(keys.TREE_HEAD_DOMAIN, env.body)
    with pytest.raises(SignatureError):
        envelope.from_wire({"envelope": b64e(env.body), "signature": b64e(other)})


def test_non_canonical_and_padded_spellings_are_refused() -> None:
    key = keys.SigningKey.generate()
    env = envelope.build(key, "anchor.record", {"label": "x", "sha256": "ab" * 32})
    spaced = env.body.replace(b",", b", ", 1)
    resigned = key.sign(keys.ENVELOPE_DOMAIN, spaced)
    with pytest.raises(EncodingError) as info:
        envelope.from_wire({"envelope": b64e(spaced), "signature": b64e(resigned)})
    assert info.value.code == "non-canonical"
    padded = base64.urlsafe_b64encode(env.body).decode()
    if padded.endswith("="):
        with pytest.raises(EncodingError):
            envelope.from_wire({"envelope": padded, "signature": b64e(env.signature)})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda o: o.pop("nonce"),
        lambda o: o.update(extra=1),
        lambda o: o.update(type="Bad Type"),
        lambda o: o.update(nonce="short"),
        lambda o: o.update(created_at="2026-11-24T01:00:00Z"),
        lambda o: o.update(created_at="2026-02-30T01:00:00.000Z"),
        lambda o: o.update(payload=[1]),
        lambda o: o.update(signer="not-a-key"),
    ],
)
def test_field_syntax(mutate: object) -> None:
    key = keys.SigningKey.generate()
    env = envelope.build(key, "anchor.record", {"label": "x", "sha256": "ab" * 32})
    obj = parse_canonical(env.body)
    mutate(obj)  # type: ignore[operator]
    body = canonical_bytes(obj)
    with pytest.raises(EncodingError):
        envelope.from_parts(body, key.sign(keys.ENVELOPE_DOMAIN, body))


def test_oversized_envelope() -> None:
    key = keys.SigningKey.generate()
    with pytest.raises(EncodingError) as info:
        env = envelope.build(key, "anchor.record", {"label": "x", "blob": "a" * (envelope.MAX_ENVELOPE_BYTES + 1)})
        envelope.from_wire(env.to_wire())
    assert info.value.code == "too-large"
    assert b64d(b64e(b"ok")) == b"ok"


def test_key_files_round_trip_private_with_str_or_path(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    key = keys.SigningKey.generate()
    key.to_file(str(folder / "k" / "a.key"))
    assert keys.SigningKey.from_file(str(folder / "k" / "a.key")) == key
    assert keys.SigningKey.from_file(folder / "k" / "a.key").key_id == key.key_id
    assert (folder / "k" / "a.key").stat().st_mode & 0o077 == 0
    (folder / "bad.key").write_text("not a key\n")
    with pytest.raises(EncodingError):
        keys.SigningKey.from_file(folder / "bad.key")
    with pytest.raises(EncodingError) as info:
        keys.SigningKey.from_file(folder / "missing.key")
    assert info.value.code == "bad-key-file"
