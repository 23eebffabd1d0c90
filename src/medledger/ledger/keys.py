"""Ed25519 keys and signatures, with domain separation.

PyNaCl (libsodium) is the hot path: it verifies about twice as fast as
``cryptography`` on our machines and its verification is strict (canonical
``S``, no small-order keys), so a signature cannot be re-spelled into a second
valid one. Every signature covers a domain tag plus the canonical bytes, so a
tree head can never be replayed as an envelope or the other way round.

A key is named on the ledger by its raw 32-byte public key in base64url (43
characters): the signer field alone lets a worker process check a signature
without touching world state; whether that key is *active* is a separate,
stateful question the node answers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from medledger.errors import EncodingError, SignatureError
from medledger.ledger.canonical import b64d, b64e

ENVELOPE_DOMAIN = b"medledger/envelope/v1\n"
TREE_HEAD_DOMAIN = b"medledger/tree-head/v1\n"
BLOCK_DOMAIN = b"medledger/block/v1\n"
#: a member's signature over a document kept outside the ledger, by the document's SHA-256: hash-then-sign,
#: so every member can re-check the signature from the digest on the ledger without the document itself
RESOURCE_DOMAIN = b"medledger/resource/v1\n"


def key_id(public_key: bytes) -> str:
    """The ledger name of a public key."""
    return b64e(public_key)


_decoded: dict[str, bytes] = {}


def public_key_bytes(kid: str) -> bytes:
    """Raw public key bytes from its ledger name, strictly decoded (memoised: a
    ledger has few signers and every envelope names one)."""
    try:
        return _decoded[kid]
    except (KeyError, TypeError):
        raw = b64d(kid, what="signer key", length=32)
        if len(_decoded) > 100_000:
            _decoded.clear()
        _decoded[kid] = raw
        return raw


@dataclass(frozen=True)
class SigningKey:
    """A private Ed25519 key and the ledger name of its public half."""

    seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(os.urandom(32))

    @property
    def _key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @property
    def public_key(self) -> bytes:
        return bytes(self._key.verify_key)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def sign(self, domain: bytes, message: bytes) -> bytes:
        return self._key.sign(domain + message).signature

    def to_file(self, path: str | os.PathLike[str]) -> None:
        """Write the seed (base64url) with owner-only permissions."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(b64e(self.seed) + "\n")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> SigningKey:
        path = Path(path)
        try:
            text = path.read_text().strip()
        except OSError as exc:
            raise EncodingError(f"cannot read key file {path}: {exc.strerror}", code="bad-key-file") from None
        return cls(b64d(text, what=f"key file {path}", length=32))


def verify(domain: bytes, public_key: bytes, message: bytes, signature: bytes) -> None:
    """Raise :class:`SignatureError` unless ``signature`` is valid."""
    try:
        nacl.signing.VerifyKey(public_key).verify(domain + message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError) as exc:
        raise SignatureError("signature does not verify under the signer's key", code="bad-signature") from exc


def is_valid(domain: bytes, public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Boolean form of :func:`verify` for batch workers."""
    try:
        nacl.signing.VerifyKey(public_key).verify(domain + message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, nacl.exceptions.TypeError):
        return False
    return True
