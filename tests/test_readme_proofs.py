"""The README's offline-proofs block, run as a user pastes it, against a live node.

The block is read from README.md (the fenced block after the marker comment
naming this file), so the documentation cannot drift from what works: only the
node's address and the virtualenv's path are swapped for this test's.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from medledger._serving import BackgroundServer
from medledger.ledger.keys import SigningKey
from medledger.node.node import Node, NodeConfig
from test_cli import medledger

README = Path(__file__).resolve().parent.parent / "README.md"
MARKER = "<!-- tests/test_readme_proofs.py runs this block against a live node -->"


def readme_block() -> str:
    """The shell block right after the marker comment."""
    text = README.read_text()
    assert MARKER in text, "the README lost the marker of its tested proofs block"
    found = re.search(re.escape(MARKER) + r"\s*```sh\n(.*?)```", text, re.S)
    assert found is not None, "no ```sh block follows the marker"
    return found.group(1)


def test_the_readme_proofs_block_runs_against_a_live_node(tmp_path: Path) -> None:
    assert medledger("init", "--data", str(tmp_path / "ledger")).returncode == 0
    node = Node(NodeConfig(tmp_path / "ledger", workers=0, max_wait_ms=1))
    try:
        with BackgroundServer(node) as server:
            script = readme_block().replace("http://127.0.0.1:8400", server.url)
            script = script.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
            run = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, capture_output=True,
                                 text=True, timeout=300)
    finally:
        node.close()
    assert run.returncode == 0, (run.stdout, run.stderr)
    for verdict in ("tree head holds", "included", "consistent: tree 2 is a prefix", "receipt holds",
                    "inclusion NOT proven"):
        assert verdict in run.stdout, (verdict, run.stdout)
    node_key = SigningKey.from_file(tmp_path / "ledger" / "keys" / "node.key").key_id
    assert f"signed by trusted key {node_key}" in run.stdout
    saved = {p.name for p in (tmp_path / "proofs").iterdir()}
    assert saved == {"tree-head.json", "inclusion.json", "receipt-inclusion.json", "transaction.json", "wire.json",
                     "consistency.json", "old-tree-head.json"}


def test_fetch_by_id_without_a_token_and_what_it_refuses(tmp_path: Path) -> None:
    """``proof fetch TX_ID``: with no credential it saves the proofs (not the envelope) and says so."""
    data = tmp_path / "ledger"
    assert medledger("init", "--data", str(data)).returncode == 0
    facts = json.loads(medledger("status", "--data", str(data), "--json").stdout)
    genesis = facts["genesis"]["tx_id"]
    node = Node(NodeConfig(data, workers=0, max_wait_ms=1))
    try:
        with BackgroundServer(node) as server:
            got = medledger("proof", "fetch", genesis, "--url", server.url, "--out", str(tmp_path / "p"))
            both = medledger("proof", "fetch", genesis, "--receipt", str(tmp_path / "p" / "inclusion.json"),
                             "--url", server.url)
            unknown = medledger("proof", "fetch", "ab" * 32, "--url", server.url, "--out", str(tmp_path / "q"))
            too_big = medledger("proof", "fetch", genesis, "--url", server.url, "--since-size", "99",
                                "--out", str(tmp_path / "q"))
    finally:
        node.close()
    assert got.returncode == 0, got.stderr
    assert f"whose head is signed by node key {facts['node_keys']['regulator/node-1']}" in got.stdout
    assert "was not saved" in got.stderr
    assert {p.name for p in (tmp_path / "p").iterdir()} == {"tree-head.json", "inclusion.json"}
    assert both.returncode == 1 and "one of them" in both.stderr
    assert unknown.returncode == 1 and f"no transaction {'ab' * 32}" in unknown.stderr
    assert too_big.returncode == 1 and "--since-size must be between 1 and the tree size 2" in too_big.stderr
    assert not (tmp_path / "q").exists(), "a refused fetch writes nothing"
    verified = medledger("proof", "verify", "--proof", str(tmp_path / "p" / "inclusion.json"),
                         "--tree-head", str(tmp_path / "p" / "tree-head.json"), "--trusted-key", facts["node_keys"]["regulator/node-1"])
    assert verified.returncode == 0 and "included" in verified.stdout, verified.stderr
    unreachable = medledger("proof", "fetch", genesis, "--url", server.url, "--out", str(tmp_path / "r"))
    assert unreachable.returncode == 1 and "cannot reach the node" in unreachable.stderr
