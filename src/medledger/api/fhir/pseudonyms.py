"""Patient pseudonyms for the FHIR write path: a keyed hash held by the regulator's node.

DESIGN §6 wants an oblivious PRF (RFC 9497, ristretto255), so that the
pseudonymisation service never sees the identifier it pseudonymises. Until the
privacy layer brings it, the facade computes
``HMAC-SHA256(node pseudonym key, "<identifier system>|<value>")`` itself: the
same person (same national identifier) gets the same pseudonym at every
institution that sends through this node, nobody without the key can reverse
or brute-force it (an ID number has little entropy, a 256-bit key has plenty),
and only the 64-hex digest ever reaches the ledger.

The key is 32 random bytes in ``<data_dir>/keys/pseudonym.key``, created with
owner-only permissions on first use. Losing it would give every patient a new
pseudonym; it is part of the node's key backup like ``node.key``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from pathlib import Path

from medledger.errors import OperatorError

KEY_FILE = "keys/pseudonym.key"
KEY_BYTES = 32


def _unusable(cause: str) -> OperatorError:
    return OperatorError(
        "the node cannot read its pseudonym key, so it cannot pseudonymise identifiers; the operator must "
        "repair it",
        code="pseudonym-key-unavailable",
        cause=cause,
    )


class Pseudonymiser:
    """HMAC-SHA256 pseudonyms under one node's key, loaded (or created) once."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / KEY_FILE
        self._key: bytes | None = None
        self._lock = threading.Lock()

    def _load(self) -> bytes:
        with self._lock:
            if self._key is not None:
                return self._key
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                except FileExistsError:
                    pass
                else:
                    # O_EXCL: two nodes' first requests cannot each write a different key
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(os.urandom(KEY_BYTES))
                        handle.flush()
                        os.fsync(handle.fileno())
                key = self.path.read_bytes()
            except OSError as exc:
                raise _unusable(f"cannot read the pseudonym key {self.path}: {exc.strerror}") from exc
            if len(key) != KEY_BYTES:
                raise _unusable(f"the pseudonym key {self.path} is not {KEY_BYTES} bytes")
            self._key = key
            return key

    def pseudonym(self, system: str, value: str) -> str:
        """The 64-hex pseudonym of one identifier (system and value as the hospital sends them)."""
        return hmac.new(self._load(), f"{system}|{value}".encode(), hashlib.sha256).hexdigest()
