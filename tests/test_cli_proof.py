"""``medledger proof verify`` on what a real node served: tree heads, receipts, traces, and flipped bits of each.

The files are saved from a node serving a province whose prescription chain
was built with :mod:`medledger.transactions`; every check runs the real
command in a subprocess, offline, as a patient or an auditor would.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger_factory import regulator_headers
from medledger import client
from medledger._serving import BackgroundServer
from medledger.errors import MedledgerError, ProofError
from medledger.ledger.keys import SigningKey
from test_cli import medledger
from tx_province import build_province, prescription_chain


def flip(hex_text: str, at: int = 0) -> str:
    """The same hex string with one bit of one digit flipped."""
    return hex_text[:at] + format(int(hex_text[at], 16) ^ 1, "x") + hex_text[at + 1 :]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A trace, tree head, receipt (+ envelope) and inclusion proof, saved from a node over HTTP."""
    tmp = tmp_path_factory.mktemp("proof-cli")
    p = build_province(tmp / "ledger")
    try:
        steps = prescription_chain(p, "cli")
        claim = steps["claim.submit"]
        files: dict[str, Any] = {"node_key": SigningKey.from_file(p.w.data / "keys" / "node.key").key_id}
        with (
            BackgroundServer(p.w.node) as server,
            httpx.Client(base_url=server.url, headers=regulator_headers(p.w.data), timeout=30) as http,
        ):

            def get(path: str, **params: Any) -> Any:
                answer = http.get(path, params=params)
                assert answer.status_code == 200, (path, answer.text)
                return answer.json()

            trace = get("/v1/prescriptions/rx-cli/trace")
            values = {
                "trace": trace,
                "head": get("/v1/tree-head"),
                "envelopes": [get(f"/v1/transactions/{s['tx_id']}") for s in trace["steps"]],
                "receipt_line": {"receipt": claim.to_json(), "wire": get(f"/v1/transactions/{claim.tx_id}")["wire"]},
                "at_receipt": get(f"/v1/proofs/inclusion/{claim.tx_id}", tree_size=claim.tree_head.tree_size),
                "outsider": get(f"/v1/transactions/{p.log[0][2].tx_id}"),
            }
        for name, value in values.items():
            files[name] = tmp / f"{name}.json"
            files[name].write_text(json.dumps(value))
        yield files
    finally:
        p.w.close()


def variant(saved: dict[str, Any], name: str, change: Any, tmp_path: Path) -> str:
    """A copy of a saved file with ``change`` applied to its JSON."""
    value = json.loads(saved[name].read_text())
    changed = change(value)
    path = tmp_path / f"{name}-variant.json"
    path.write_text(json.dumps(value if changed is None else changed))
    return str(path)


def refused(run: Any, *words: str, code: int = 2) -> None:
    """Exit ``code`` and one sentence that says what failed: the verdict on stdout (2), an error on stderr (1)."""
    said = run.stdout if code == 2 else run.stderr
    assert run.returncode == code, (run.returncode, run.stdout, run.stderr)
    assert said.strip() and said.strip().count("\n") == 0, said
    for word in words:
        assert word in said, said


# -- a signed tree head alone ------------------------------------------------------------------------------------


def test_tree_head_alone(saved: dict[str, Any], tmp_path: Path) -> None:
    head, key = str(saved["head"]), saved["node_key"]
    run = medledger("proof", "verify", "--tree-head", head, "--trusted-key", key)
    assert run.returncode == 0, run.stderr
    assert "tree head holds" in run.stdout and key in run.stdout
    refused(medledger("proof", "verify", "--tree-head", head), "needs --trusted-key", code=1)
    refused(medledger("proof", "verify", "--tree-head", head, "--trusted-key", "A" * 43), "not a trusted node key")

    def root(h: dict[str, Any]) -> None:
        h["root_hash"] = flip(h["root_hash"], 7)

    def size(h: dict[str, Any]) -> None:
        h["tree_size"] += 1

    def signature(h: dict[str, Any]) -> None:
        h["signature"] = ("B" if h["signature"][0] == "A" else "A") + h["signature"][1:]

    for change in (root, size, signature):
        bad = variant(saved, "head", change, tmp_path)
        refused(medledger("proof", "verify", "--tree-head", bad, "--trusted-key", key), "does NOT verify", "signature")


# -- a saved receipt ---------------------------------------------------------------------------------------------


def test_receipt_with_and_without_a_proof(saved: dict[str, Any], tmp_path: Path) -> None:
    line, key = str(saved["receipt_line"]), saved["node_key"]
    run = medledger("proof", "verify", "--receipt", line, "--trusted-key", key)
    assert run.returncode == 0, run.stderr
    assert "inclusion NOT proven" in run.stdout and "--proof" in run.stdout
    run = medledger("proof", "verify", "--receipt", line, "--proof", str(saved["at_receipt"]), "--trusted-key", key)
    assert run.returncode == 0, run.stderr
    assert "receipt holds" in run.stdout

    def envelope_signature(v: dict[str, Any]) -> None:
        sig = v["wire"]["signature"]
        v["wire"]["signature"] = ("B" if sig[0] == "A" else "A") + sig[1:]

    def receipt_tx(v: dict[str, Any]) -> None:
        v["receipt"]["tx_id"] = flip(v["receipt"]["tx_id"])

    def receipt_head(v: dict[str, Any]) -> None:
        v["receipt"]["tree_head"]["root_hash"] = flip(v["receipt"]["tree_head"]["root_hash"], 63)

    def leaf_outside(v: dict[str, Any]) -> None:
        v["receipt"]["leaf_index"] = v["receipt"]["tree_head"]["tree_size"]

    for change, why in (
        (envelope_signature, "envelope"),
        (receipt_tx, "the receipt is for transaction"),
        (receipt_head, "signature"),
        (leaf_outside, "outside its signed tree"),
    ):
        bad = variant(saved, "receipt_line", change, tmp_path)
        refused(medledger("proof", "verify", "--receipt", bad, "--trusted-key", key), "does NOT verify", why)
    bad = variant(saved, "receipt_line", lambda v: v.pop("wire") and None, tmp_path)
    refused(medledger("proof", "verify", "--receipt", bad), "needs the envelope", code=1)


# -- a prescription trace ----------------------------------------------------------------------------------------


def test_trace(saved: dict[str, Any], tmp_path: Path) -> None:
    trace, key = str(saved["trace"]), saved["node_key"]
    steps = json.loads(saved["trace"].read_text())["steps"]
    run = medledger("proof", "verify", "--trace", trace, "--trusted-key", key)
    assert run.returncode == 0, run.stderr
    assert f"all {len(steps)} steps of prescription rx-cli" in run.stdout
    assert "offline-diagnosis, doctor-real-name, consultation, prescription, review, dispense" in run.stdout
    run = medledger("proof", "verify", "--trace", trace, "--envelope", str(saved["envelopes"]), "--trusted-key", key)
    assert run.returncode == 0, run.stderr
    assert f"{len(steps)} envelopes tied to their steps" in run.stdout

    last = len(steps) - 1

    def step_proof(t: dict[str, Any]) -> None:
        t["steps"][last]["proof"][0] = flip(t["steps"][last]["proof"][0], 30)

    def step_leaf(t: dict[str, Any]) -> None:
        t["steps"][3]["leaf_hash"] = flip(t["steps"][3]["leaf_hash"])

    def step_index(t: dict[str, Any]) -> None:
        t["steps"][0]["leaf_index"] += 1

    def head_root(t: dict[str, Any]) -> None:
        t["tree_head"]["root_hash"] = flip(t["tree_head"]["root_hash"], 12)

    for change, why in (
        (step_proof, f"step {last} (claim, transaction {steps[last]['tx_id']}"),
        (step_leaf, "step 3 (prescription"),
        (step_index, "step 0 (offline-diagnosis"),
        (head_root, "signature"),
    ):
        bad = variant(saved, "trace", change, tmp_path)
        refused(medledger("proof", "verify", "--trace", bad, "--trusted-key", key), "does NOT verify", why)


def test_trace_envelopes_must_be_its_steps(saved: dict[str, Any], tmp_path: Path) -> None:
    trace = str(saved["trace"])
    outsider = json.loads(saved["outsider"].read_text())
    bad = variant(saved, "envelopes", lambda es: [*es, outsider], tmp_path)
    refused(medledger("proof", "verify", "--trace", trace, "--envelope", bad), f"envelope {outsider['tx_id']} is not")
    refused(
        medledger("proof", "verify", "--trace", trace, "--proof", str(saved["at_receipt"])),
        "give --trace alone",
        code=1,
    )
    refused(medledger("proof", "verify"), "give --proof, --receipt, --trace", code=1)


def test_every_flipped_bit_of_a_trace_is_caught(saved: dict[str, Any]) -> None:
    """In-process, exhaustively over the hashes: every step's leaf and every audit-path hash, one bit each."""
    trace = json.loads(saved["trace"].read_text())
    key = saved["node_key"]
    client.verify_trace_offline(trace, [key])
    cases = 0
    for i, step in enumerate(trace["steps"]):
        for j in range(len(step["proof"])):
            bad = copy.deepcopy(trace)
            bad["steps"][i]["proof"][j] = flip(step["proof"][j], (i + j) % 64)
            with pytest.raises(ProofError, match=rf"^step {i} \("):
                client.verify_trace_offline(bad, [key])
            cases += 1
        bad = copy.deepcopy(trace)
        bad["steps"][i]["leaf_hash"] = flip(step["leaf_hash"], i % 64)
        with pytest.raises(ProofError, match=rf"^step {i} \("):
            client.verify_trace_offline(bad, [key])
        cases += 1
    assert cases > len(trace["steps"])
    envelopes = json.loads(saved["envelopes"].read_text())
    assert client.verify_trace_offline(trace, [key], envelopes).rx_id == "rx-cli"
    relabelled = copy.deepcopy(trace)
    relabelled["steps"][3]["type"] = "prescription.review"  # the prescription step, called something else
    with pytest.raises(
        MedledgerError, match=r"the trace calls it prescription\.review, the envelope is prescription\.issue"
    ):
        client.verify_trace_offline(relabelled, [key], envelopes)
    renamed = dict(trace, rx_id="rx-other")
    with pytest.raises(MedledgerError, match="about prescription 'rx-cli', not 'rx-other'"):
        client.verify_trace_offline(renamed, [key], envelopes)
