"""Shared helpers for the API tests: a ledger behind an app, envelope forgers, and ledger snapshots.

Kept out of ``conftest.py`` so test modules can import the types for their
annotations; the module name is unique so it cannot shadow another test
directory's helpers on ``sys.path``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from medledger.ledger import envelope
from medledger.ledger.canonical import b64e, canonical_bytes
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.keys import ENVELOPE_DOMAIN, SigningKey
from medledger.ledger.sqlite_store import DB_NAME
from medledger.ledger.timefmt import format_ms, now_ms
from medledger.node.bootstrap import LedgerKeys
from medledger.node.node import Node

PROBLEM = "application/problem+json"


def new_nonce() -> str:
    return b64e(os.urandom(12))


def fresh_name(prefix: str) -> str:
    """A unique member name in the payload syntax: letters only, since random base64 or hex would now and
    then hold a separator in the wrong place or more than 6 digits together (ledger.syntax)."""
    return prefix + "-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(10))


def anchor(key: SigningKey, *, label: str = "test/doc", sha256: str | None = None, **kw: Any) -> SignedEnvelope:
    """A valid ``anchor.record`` (any active signer may sign one) for a fresh random document."""
    digest = sha256 if sha256 is not None else os.urandom(32).hex()
    return envelope.build(key, "anchor.record", {"label": label, "sha256": digest}, **kw)


def envelope_obj(
    key: SigningKey, type_: str, payload: dict[str, Any], *, created_ms: int | None = None, nonce: str | None = None
) -> dict[str, Any]:
    return {
        "type": type_,
        "payload": payload,
        "signer": key.key_id,
        "nonce": nonce or new_nonce(),
        "created_at": format_ms(now_ms() if created_ms is None else created_ms),
    }


def sign_bytes(key: SigningKey, body: bytes) -> dict[str, str]:
    """A wire item for arbitrary bytes, correctly signed: only the bytes themselves can be wrong."""
    return {"envelope": b64e(body), "signature": b64e(key.sign(ENVELOPE_DOMAIN, body))}


def body(value: Any) -> bytes:
    return orjson.dumps(value)


@dataclass
class ApiLedger:
    """One initialised ledger, its node, and an HTTP client bound to an app over it."""

    data_dir: Path
    keys: LedgerKeys
    node: Node
    http: httpx.Client

    def post(self, content: bytes, content_type: str | None = "application/json") -> httpx.Response:
        headers = {} if content_type is None else {"content-type": content_type}
        return self.http.post("/v1/transactions", content=content, headers=headers)

    def submit(self, *envs: SignedEnvelope) -> list[dict[str, Any]]:
        """Submit as a list and insist it is committed."""
        r = self.post(body([e.to_wire() for e in envs]))
        assert r.status_code == 200, r.text
        receipts: list[dict[str, Any]] = r.json()["receipts"]
        return receipts

    def register(self, member: str, role: str) -> SigningKey:
        key = SigningKey.generate()
        env = envelope.build(
            self.keys.demo_admin,
            "member.register",
            {"member": member, "org": "demo-hospital", "role": role, "key": key.key_id},
        )
        (receipt,) = self.submit(env)
        assert receipt["status"] == "ACCEPTED", receipt
        return key

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused request must leave untouched: the served tree head and every table's row count."""
        head = self.http.get("/v1/tree-head").json()
        conn = sqlite3.connect(f"file:{self.data_dir / DB_NAME}?mode=ro", uri=True)
        try:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            assert {"blocks", "txs"} <= set(tables), tables
            counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        finally:
            conn.close()
        return {"tree_size": head["tree_size"], "root_hash": head["root_hash"], **counts}


def assert_problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """A refusal is a problem+json with the expected status and code, and a sentence a person can act on."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == PROBLEM, r.headers
    problem: dict[str, Any] = r.json()
    assert problem["code"] == code, problem
    assert problem["status"] == status
    assert problem["type"].endswith("/" + code)
    assert isinstance(problem["title"], str) and problem["title"]
    detail = problem["detail"]
    assert isinstance(detail, str) and len(detail) >= 15 and " " in detail, problem
    return problem


def assert_guarded(r: httpx.Response, what: str) -> None:
    """The response tells browsers not to sniff its type and caches not to keep it (api/headers.py)."""
    assert r.headers.get("x-content-type-options") == "nosniff", (what, r.status_code, r.headers)
    assert r.headers.get("cache-control") == "no-store", (what, r.status_code, r.headers)


def canonical(value: Any) -> bytes:
    return canonical_bytes(value)
