"""Bearer credentials: node-local configuration binding a secret token to one ledger member.

A credential is not ledger data. The node keeps the SHA-256 of each token in
``credentials.json`` beside the ledger (mode 0600, replaced atomically), bound
to one ledger member and, for gateway credentials, to the key file the node
signs that member's FHIR writes with. What a credential may *do* is never kept
here: ``medledger.api.access`` reads the member's role and institution from
world state at every request, so revoking the member on the ledger ends its
credentials on every node.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medledger.errors import MedledgerError, OperatorError
from medledger.ledger.keys import SigningKey
from medledger.ledger.timefmt import format_ms, now_ms

CREDENTIALS_NAME = "credentials.json"
TOKEN_PREFIX = "mlt_"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Credential:
    """One issued credential as the node keeps it: never the token itself."""

    token_sha256: str
    member: str
    signing_key: str | None
    issued_at: str
    label: str

    def to_json(self) -> dict[str, Any]:
        return {
            "token_sha256": self.token_sha256,
            "member": self.member,
            "signing_key": self.signing_key,
            "issued_at": self.issued_at,
            "label": self.label,
        }


def _unreadable(cause: str) -> OperatorError:
    return OperatorError(
        "the node cannot read its credentials file, so no credential can be checked; the operator must repair it",
        code="bad-credentials-file",
        cause=cause,
    )


class Credentials:
    """The node's ``credentials.json``: read on demand, replaced atomically on change.

    The server re-reads the file when it changes (one stat per lookup), so
    ``medledger credentials issue`` and ``revoke`` take effect on a running node at once.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / CREDENTIALS_NAME
        self._lock = threading.Lock()
        self._by_hash: dict[str, Credential] = {}
        self._keys: dict[str, SigningKey] = {}
        self._stamp: tuple[int, int, int] | None = None

    # -- reading ---------------------------------------------------------------------------------------------

    def _load(self) -> list[Credential]:
        try:
            raw = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise _unreadable(f"cannot read {self.path}: {exc}") from None
        try:
            return [Credential(**item) for item in raw["credentials"]]
        except (KeyError, TypeError) as exc:
            raise _unreadable(f"{self.path} is not a credentials file: {exc}") from None

    def _refresh(self) -> None:
        # one stat per lookup (microseconds): a credential issued or revoked by the CLI counts at once.
        # The file is replaced, never rewritten in place, so a new inode always means new contents.
        try:
            st = self.path.stat()
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = (0, 0, 0)
        except OSError as exc:
            raise _unreadable(f"cannot read {self.path}: {exc}") from None
        if stamp == self._stamp:
            return
        self._by_hash = {c.token_sha256: c for c in self._load()}
        self._keys = {}
        self._stamp = stamp

    def lookup(self, token: str) -> Credential | None:
        digest = hash_token(token)
        with self._lock:
            self._refresh()
            found = self._by_hash.get(digest)
        # the dict lookup already matched; compare again in constant time so a timing channel on the
        # hash table cannot be turned into an oracle on the digest
        if found is None or not hmac.compare_digest(found.token_sha256, digest):
            return None
        return found

    def signing_key(self, credential: Credential) -> SigningKey | None:
        if credential.signing_key is None:
            return None
        with self._lock:
            key = self._keys.get(credential.signing_key)
            if key is None:
                path = self.data_dir / credential.signing_key
                try:
                    key = SigningKey.from_file(path)
                except (OSError, ValueError, MedledgerError) as exc:
                    why = exc.message if isinstance(exc, MedledgerError) else str(exc)
                    raise OperatorError(
                        f"the node cannot read the signing key of {credential.member}'s credential, so it can "
                        "neither check nor sign for it; the operator must restore the key file or issue a new "
                        "credential",
                        code="signing-key-unavailable",
                        cause=f"the signing key {path} of {credential.member}'s credential cannot be read: {why}",
                    ) from None
                self._keys[credential.signing_key] = key
            return key

    def issued(self) -> list[Credential]:
        with self._lock:
            return self._load()

    # -- writing (the CLI; one writer at a time is the operator's job, the file is replaced atomically) ------

    def _save(self, items: list[Credential]) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = json.dumps({"credentials": [c.to_json() for c in items]}, indent=2).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.data_dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def issue(self, member: str, *, signing_key: str | os.PathLike[str] | None = None, label: str = "") -> str:
        """Create a credential for ``member`` and return its token (shown once; only its hash is kept)."""
        key_ref: str | None = None
        if signing_key is not None:
            path = Path(signing_key).resolve()
            SigningKey.from_file(path)  # refuse a key file the server could not use later
            try:
                key_ref = str(path.relative_to(self.data_dir.resolve()))
            except ValueError:
                key_ref = str(path)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            items = self._load()
            items.append(Credential(hash_token(token), member, key_ref, format_ms(now_ms()), label))
            self._save(items)
            self._stamp = None
        return token

    def revoke(self, member: str) -> int:
        """Remove every credential of ``member``; returns how many there were."""
        with self._lock:
            items = self._load()
            kept = [c for c in items if c.member != member]
            if len(kept) != len(items):
                self._save(kept)
                self._stamp = None
            return len(items) - len(kept)
