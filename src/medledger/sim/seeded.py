"""Everything the simulator derives from its seed: keys, pseudonyms, digests, nonces.

The simulator never reads ``os.urandom`` or the wall clock for anything it
signs. Keys are Ed25519 seeds hashed from (seed, run tag, member id), patient
pseudonyms and document digests are SHA-256 of (seed, run tag, label), and
nonces count up. So one seed gives byte-identical envelopes, the same
``tx_id`` values and the same ground truth on every run: a regression in the
contracts shows up as a changed report, not as noise.

Pseudonyms are 64 hex digits, exactly what the regulator's pseudonymisation
service issues; nothing derived here resembles a name, an ID number or a phone
number.
"""

from __future__ import annotations

import functools
import hashlib

import nacl.signing

from medledger.ledger.keys import SigningKey

_DOMAIN = b"medledger-sim/v1\x00"


class SimKey(SigningKey):
    """A signing key that derives its Ed25519 key pair once, not at every signature.

    The base class re-derives the pair from the seed on each use, which is
    right for a key read from a file and signed with rarely; the simulator
    signs tens of thousands of envelopes with a few hundred keys.
    """

    @functools.cached_property
    def _key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @functools.cached_property
    def key_id(self) -> str:
        return super().key_id


class Seeded:
    """Deterministic derivations for one (seed, run tag) pair.

    The run tag is empty on a fresh embedded ledger; over HTTP it names the
    run so a second simulation against the same ledger registers new keys and
    ids instead of colliding with the first one's.
    """

    def __init__(self, seed: int, tag: str = "") -> None:
        self.seed = seed
        self.tag = tag
        self._prefix = _DOMAIN + f"{seed}\x00{tag}\x00".encode()
        self._nonce = 0

    def digest(self, *parts: str) -> bytes:
        return hashlib.sha256(self._prefix + "\x00".join(parts).encode()).digest()

    def hex(self, *parts: str) -> str:
        return self.digest(*parts).hex()

    def key(self, member: str) -> SimKey:
        """The signing key of a simulated member: the same member gets the same key every run."""
        return SimKey(self.digest("key", member))

    def pseudonym(self, kind: str, index: int) -> str:
        """A patient (or guardian) pseudonym: 64 hex digits, as the pseudonymisation service issues."""
        return self.hex("pseudonym", kind, str(index))

    def document(self, label: str) -> str:
        """The SHA-256 commitment of an offline clinical document (the document itself never travels)."""
        return self.hex("document", label)

    def nonce(self) -> str:
        """The next envelope nonce; a counter is unique per signer, which is all replay protection needs."""
        self._nonce += 1
        return f"sim{self._nonce:011d}"
