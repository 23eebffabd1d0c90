"""``medledger``: the command line, thin over the library.

Every command either succeeds or exits non-zero with one sentence saying why;
long operations show a rich progress bar on the terminal (and stay quiet in
``--json`` mode, so output can be piped). Results (verdicts, reports, what a
command made) go to stdout; diagnostics (progress, hints, errors) to stderr.

Exit codes are the same for every command (:data:`EXIT_CODES`): 0 done, 1 the
command could not do its work (bad usage, a missing ledger, an unreadable
file, an unreachable node), 2 it did and something failed verification (a
tampered ledger, a proof or signature that does not hold). A script can
therefore tell "could not check" from "checked, and it is wrong".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from medledger import demo_dirs
from medledger.errors import MedledgerError, VerificationError

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_FAILED = 2
EXIT_CODES = (
    "Exit codes: 0 done (the ledger or proof holds); 1 the command could not do its work (bad usage, "
    "missing ledger, unreadable file, unreachable node); 2 verification failed (a tampered ledger, a proof "
    "or signature that does not hold)."
)

# Plain (not rich) help: typer's rich panels print a type placeholder such as <bool> beside every
# flag, which reads as if a flag took a value.
app = typer.Typer(
    help="medledger: a tamper-evident supervision ledger for Internet hospitals.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
proof_app = typer.Typer(
    help="Fetch proofs from a node, and check them offline.", no_args_is_help=True, rich_markup_mode=None
)
bench_app = typer.Typer(
    help="Measure throughput and latency (JSON + one-line summary).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(proof_app, name="proof")
app.add_typer(bench_app, name="bench")
credentials_app = typer.Typer(
    help="Bearer credentials of ledger members on this node (read routes, FHIR facade).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(credentials_app, name="credentials")
#: diagnostics: progress, hints, errors
console = Console(stderr=True, soft_wrap=True)
#: results: verdicts, reports, what a command made
out = Console(soft_wrap=True)

DataDir = Annotated[Path, typer.Option("--data", help="ledger directory (the demo's newest run by default)")]
LATEST = demo_dirs.LATEST


def _fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"medledger {version('medledger')}")
        raise typer.Exit()


@app.callback()
def _root(
    _show_version: Annotated[
        bool, typer.Option("--version", help="print the version and exit", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """medledger: a tamper-evident supervision ledger for Internet hospitals."""


def _progress(disable: bool = False) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disable or not console.is_terminal,
    )


@app.command()
def init(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="a new ledger directory (default: a new demo-data/run-<time>, linked as latest)"),
    ] = None,
    consortium: Annotated[
        str, typer.Option(help="consortium name: lowercase words joined by -")
    ] = "demo-province-internet-medical-supervision",
) -> None:
    """Create a new ledger: keys, the genesis block and a demo institution admin."""
    from medledger.node.bootstrap import REGULATOR_TOKEN, init_ledger

    data = data if data is not None else demo_dirs.new_run_dir()
    try:
        keys = init_ledger(data, consortium=consortium)
    except MedledgerError as exc:
        _fail(exc.message)
    linked = demo_dirs.link_latest(data)
    out.print(f"created ledger in {data}: regulator {keys.regulator.key_id}, node {keys.node.key_id}")
    if linked is not None:
        out.print(f"{linked} now points at it (the default --data of the other commands)")
    out.print(f"the regulator's bearer credential is in {data / REGULATOR_TOKEN}")
    console.print(f"publish what members need with `medledger status --data {data}`; never the files under keys/")


def _ledger_dir(data: Path) -> None:
    from medledger.ledger.sqlite_store import DB_NAME

    if not (data / DB_NAME).exists():
        _fail(f"no ledger in {data}; create one with `medledger init --data {data}`")


@app.command()
def status(
    data: DataDir = LATEST,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON object")] = False,
    node_key: Annotated[
        bool, typer.Option("--node-key", help="print only the node key id (to pass as --trusted-key)")
    ] = False,
) -> None:
    """What this ledger's operator may publish (node and regulator key ids, tree head), and which files are secret.

    Read-only: it runs beside a serving node.
    """
    from medledger.node.status import ledger_status

    _ledger_dir(data)
    try:
        facts = ledger_status(data)
    except MedledgerError as exc:
        _fail(exc.message)
    if node_key:
        for key in facts.node_keys.values():
            print(key)
        return
    if as_json:
        print(json.dumps(facts.to_json()))
        return
    head = facts.tree_head
    lines = [
        f"consortium:      {facts.consortium}",
        *(f"node key:        {key}  ({who}; signs blocks and tree heads)" for who, key in facts.node_keys.items()),
        f"regulator key:   {facts.regulator_key}",
        f"genesis:         transaction {facts.genesis_tx_id}, block hash {facts.genesis_block_hash}",
        f"tree head:       size {head['tree_size']}, root {head['root_hash']}, at {head['timestamp']} "
        f"(height {facts.height})",
        "",
        "Publish the lines above: members pin the node key (Client(trusted_node_keys=...), "
        "`medledger proof verify --trusted-key`).",
        f"SECRET, never share or commit (private key seeds, bearer tokens): {', '.join(facts.secret_files) or '-'}",
        f"shareable (the signed log for auditors; configuration without keys): {', '.join(facts.shareable_files)}",
    ]
    out.print("\n".join(lines), highlight=False, markup=False)


@credentials_app.command("issue")
def credentials_issue(
    member: Annotated[str, typer.Option(help="the ledger member id the credential acts as, e.g. eastlake/gw")],
    data: DataDir = LATEST,
    signing_key: Annotated[
        Path | None,
        typer.Option(help="the member's key file: the node signs this member's FHIR writes with it"),
    ] = None,
    label: Annotated[str, typer.Option(help="a note for whoever lists credentials later")] = "",
) -> None:
    """Issue a credential and print its token (once: the node keeps only its hash)."""
    from medledger.ledger.sqlite_store import SqliteStore
    from medledger.node.credentials import Credentials

    _ledger_dir(data)
    # read-only: a node may be serving this ledger right now (it picks the new credential up by itself)
    store = SqliteStore(data, readonly=True)
    try:
        record = store.get_state("member/" + member)
        if record is None:
            _fail(f"no member {member!r} on the ledger in {data}; register it first (member.register)")
        if signing_key is not None:
            from medledger.ledger.keys import SigningKey

            try:
                kid = SigningKey.from_file(signing_key).key_id
            except (OSError, MedledgerError) as exc:
                _fail(f"cannot read the key file {signing_key}: {exc}")
            if store.get_state("key/" + kid) is None or record.get("key") != kid:
                _fail(f"{signing_key} is not {member}'s active key on the ledger")
        token = Credentials(data).issue(member, signing_key=signing_key, label=label)
    finally:
        store.close()
    print(token)
    console.print(f"issued a credential for {member}; send it as `Authorization: Bearer <token>`")


@credentials_app.command("list")
def credentials_list(data: DataDir = LATEST) -> None:
    """List issued credentials (member, signing key, when; never the tokens)."""
    from medledger.node.credentials import Credentials

    _ledger_dir(data)
    for c in Credentials(data).issued():
        print(json.dumps({**c.to_json(), "token_sha256": c.token_sha256[:16] + "..."}))


@credentials_app.command("revoke")
def credentials_revoke(
    member: Annotated[str, typer.Option(help="the member whose credentials end")],
    data: DataDir = LATEST,
) -> None:
    """Remove every credential of a member on this node (revoking the member on the ledger ends them everywhere)."""
    from medledger.node.credentials import Credentials

    _ledger_dir(data)
    count = Credentials(data).revoke(member)
    if count == 0:
        _fail(f"{member} has no credential on this node")
    out.print(f"revoked {count} credential(s) of {member}")


@app.command()
def serve(
    data: DataDir = LATEST,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port, 0 to 65535 (0: any free port)")] = 8400,
    workers: Annotated[int | None, typer.Option(help="signature-check processes (default: one per core)")] = None,
    max_block_txs: Annotated[int, typer.Option(help="cut a block at this many envelopes")] = 2000,
    max_wait_ms: Annotated[int, typer.Option(help="... or after this many milliseconds")] = 20,
) -> None:
    """Serve the HTTP API of the embedded node until interrupted."""
    from medledger.api.server import serve as run

    if not 0 <= port <= 65535:
        _fail(f"--port {port} is not a TCP port: use a number from 0 to 65535 (0: any free port)")
    _ledger_dir(data)
    try:
        run(data, host, port, workers=workers, max_block_txs=max_block_txs, max_wait_ms=max_wait_ms)
    except MedledgerError as exc:
        _fail(exc.message)


def run_verify(data: Path, *, quiet: bool) -> dict[str, Any]:
    """Verify a ledger directory; raise MedledgerError at the first bad height."""
    from medledger.ledger.sqlite_store import SqliteStore
    from medledger.ledger.verify import verify_store
    from medledger.node.node import DEFAULT_REGISTRY
    from medledger.node.pool import VerifyPool

    store = SqliteStore(data, readonly=True)
    pool = VerifyPool(DEFAULT_REGISTRY)
    try:
        with _progress(quiet) as progress:
            task = progress.add_task("verifying blocks", total=None)

            def tick(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = verify_store(
                store, pool.registry, progress=tick, check_signatures=pool.signatures_ok
            )
    finally:
        pool.close()
        store.close()
    return report.to_json()


@app.command()
def verify(
    data: DataDir = LATEST,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON report")] = False,
) -> None:
    """Re-check every block, signature, Merkle root, tree head and state transition from genesis.

    Exit 0: intact; 2: verification failed (the first bad height is named); 1: no ledger, or it cannot be read.
    """
    _ledger_dir(data)
    try:
        report = run_verify(data, quiet=as_json)
    except VerificationError as exc:
        where = f"height {exc.height}" if exc.height is not None else "the store file"
        tx = f", transaction {exc.tx_id}" if exc.tx_id else ""
        if as_json:
            print(json.dumps({"ok": False, "height": exc.height, "tx_id": exc.tx_id, "error": exc.message}))
        else:
            out.print(f"[bold red]ledger verification FAILED[/] at {where}{tx}: {escape(exc.message)}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None
    except MedledgerError as exc:
        # the ledger could not be read at all: not a verdict on its contents
        _fail(exc.message)
    if as_json:
        print(json.dumps(report))
    else:
        out.print(
            f"[bold green]ledger intact[/]: {report['blocks']} blocks, {report['transactions']} "
            f"transactions, tree size {report['tree_size']}, root {report['root_hash']}"
        )


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        _fail(f"cannot read {what} {path}: {exc.strerror}")
    except json.JSONDecodeError as exc:
        _fail(f"{what} {path} is not JSON: {exc}")


@proof_app.command("verify")
def proof_verify(
    proof: Annotated[Path | None, typer.Option(help="saved inclusion or consistency proof (JSON from the API)")] = None,
    tree_head: Annotated[
        Path | None,
        typer.Option("--tree-head", help="saved signed tree head (JSON); alone, its signature is checked"),
    ] = None,
    old_tree_head: Annotated[
        Path | None, typer.Option("--old-tree-head", help="older signed tree head, for a consistency proof")
    ] = None,
    envelope: Annotated[
        Path | None,
        typer.Option(
            help="the envelope, to check the proof is for it: its wire form {envelope, signature} or the "
            "GET /v1/transactions/{id} answer (`proof fetch` saves both); with --trace, a JSON list of the steps' "
            "wire forms or answers"
        ),
    ] = None,
    receipt: Annotated[
        Path | None,
        typer.Option(help="a receipt (JSON), or one line of `medledger load --receipts` ({receipt, wire})"),
    ] = None,
    trace: Annotated[
        Path | None, typer.Option(help="saved GET /v1/prescriptions/{id}/trace (JSON): every step is proven")
    ] = None,
    trusted_key: Annotated[
        list[str] | None, typer.Option("--trusted-key", help="node key id trusted to sign tree heads (repeatable)")
    ] = None,
) -> None:
    """Check, offline, a saved receipt, signed tree head, inclusion or consistency proof, or prescription trace.

    Exit 0: it holds; 2: it does not (one sentence says what failed); 1: the files or options are unusable.
    """
    from medledger import client

    try:
        if trace is not None:
            if proof is not None or receipt is not None or tree_head is not None or old_tree_head is not None:
                _fail(
                    "a trace carries its own tree head and proofs; give --trace alone (with --envelope, --trusted-key)"
                )
            wires = _read_json(envelope, "envelopes") if envelope is not None else None
            if wires is not None and not isinstance(wires, list):
                wires = [wires]
            checked = client.verify_trace_offline(_read_json(trace, "trace"), trusted_key, wires)
            tied = f"; {len(wires)} envelopes tied to their steps" if wires else ""
            out.print(
                f"[bold green]trace holds[/]: all {len(checked.steps)} steps of prescription {checked.rx_id} "
                f"({', '.join(s.step for s in checked.steps)}) are in the signed tree of size "
                f"{checked.tree_head.tree_size}{tied}"
            )
            return
        if proof is None:
            if receipt is not None:
                saved, wire = _receipt_and_wire(receipt, envelope)
                got = client.check_receipt_offline(saved, wire, trusted_key)
                out.print(
                    f"[bold yellow]receipt signed, inclusion NOT proven[/]: transaction {got.tx_id} and its tree head "
                    f"of size {got.tree_head.tree_size} are validly signed; prove leaf {got.leaf_index} with --proof "
                    f"(GET /v1/proofs/inclusion/{got.tx_id}?tree_size={got.tree_head.tree_size})"
                )
                return
            if tree_head is None or old_tree_head is not None:
                _fail("give --proof, --receipt, --trace, or --tree-head alone (with --trusted-key)")
            if not trusted_key:
                _fail("checking a tree head alone needs --trusted-key: a key you do not trust proves nothing")
            head = client.verify_tree_head_offline(_read_json(tree_head, "tree head"), trusted_key)
            out.print(
                f"[bold green]tree head holds[/]: size {head.tree_size}, root {head.root_hash}, at {head.timestamp}, "
                f"signed by trusted key {head.signer}"
            )
            return
        proof_json = _read_json(proof, "proof")
        if (isinstance(proof_json, dict) and "first" in proof_json) or old_tree_head is not None:
            if old_tree_head is None or tree_head is None:
                _fail("a consistency proof needs --old-tree-head and --tree-head")
            client.verify_consistency_offline(
                proof_json,
                _read_json(old_tree_head, "old tree head"),
                _read_json(tree_head, "tree head"),
                trusted_keys=trusted_key,
            )
            out.print(
                f"[bold green]consistent[/]: tree {proof_json.get('first')} is a prefix of tree "
                f"{proof_json.get('second')}"
            )
            return
        if receipt is not None:
            saved, wire = _receipt_and_wire(receipt, envelope)
            got = client.verify_receipt_offline(saved, proof_json, wire, trusted_keys=trusted_key)
            out.print(
                f"[bold green]receipt holds[/]: transaction {got.tx_id} is leaf {got.leaf_index} "
                f"of the signed tree of size {got.tree_head.tree_size}"
            )
            return
        if tree_head is None:
            _fail("an inclusion proof needs --tree-head (or --receipt)")
        wire = _read_json(envelope, "envelope") if envelope is not None else None
        head_json = _read_json(tree_head, "tree head")
        client.verify_inclusion_offline(proof_json, head_json, wire, trusted_keys=trusted_key)
        out.print(
            f"[bold green]included[/]: leaf {proof_json.get('leaf_index')} is in the signed tree "
            f"of size {head_json.get('tree_size')}"
        )
    except MedledgerError as exc:
        out.print(f"[bold red]proof does NOT verify[/]: {escape(exc.message)}", highlight=False)
        raise typer.Exit(EXIT_FAILED) from None


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


@proof_app.command("fetch")
def proof_fetch(
    tx_id: Annotated[
        str | None, typer.Argument(help="the transaction to prove (64 hex digits); or give --receipt")
    ] = None,
    url: Annotated[str, typer.Option(help="base URL of a medledger node")] = "http://127.0.0.1:8400",
    out_dir: Annotated[Path, typer.Option("--out", help="directory to write the JSON files into")] = Path("proofs"),
    receipt: Annotated[
        Path | None,
        typer.Option(
            help="a saved receipt (or `load --receipts` line) instead of the id: its proof at its own tree head "
            "is saved too, as receipt-inclusion.json"
        ),
    ] = None,
    since_size: Annotated[
        int | None, typer.Option("--since-size", help="also fetch a consistency proof from this older tree size")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="MEDLEDGER_TOKEN",
            help="a member's bearer credential, to save the transaction itself (the route is member-only)",
        ),
    ] = None,
) -> None:
    """Save what `proof verify` checks: the signed tree head, an inclusion proof, the transaction, and optionally
    a consistency proof.

    Writes tree-head.json (the current signed head) and inclusion.json (the transaction's proof under it); with
    --receipt, receipt-inclusion.json (its proof under the receipt's own head); with a token, transaction.json
    (the GET /v1/transactions answer) and wire.json (its signed envelope); with --since-size N, consistency.json
    and old-tree-head.json (the signed head of size N). Nothing is trusted here: check the files with
    `medledger proof verify`, against the node key its operator published (`medledger status`), not the one
    these files name.
    """
    from medledger.client import Client
    from medledger.ledger.receipt import Receipt

    if (tx_id is None) == (receipt is None):
        _fail("give the transaction id or --receipt (one of them)")
    saved_receipt = None
    if receipt is not None:
        line = _read_json(receipt, "receipt")
        if isinstance(line, dict) and "receipt" in line:
            line = line["receipt"]
        try:
            saved_receipt = Receipt.from_json(line)
        except MedledgerError as exc:
            _fail(f"{receipt} is not a receipt: {exc.message}")
        tx_id = saved_receipt.tx_id
    assert tx_id is not None
    try:
        with Client(url, token=token) as node:
            head = node.tree_head()
            proof = node.inclusion_proof(tx_id, head.tree_size)
            files: dict[str, Any] = {"tree-head.json": head.to_json(), "inclusion.json": proof.to_json()}
            if saved_receipt is not None:
                at_receipt = node.inclusion_proof(tx_id, saved_receipt.tree_head.tree_size)
                files["receipt-inclusion.json"] = at_receipt.to_json()
            if token is not None:
                tx = node.get_transaction(tx_id)
                files["transaction.json"] = tx.raw
                files["wire.json"] = tx.envelope.to_wire()
            if since_size is not None:
                if not 0 < since_size <= head.tree_size:
                    _fail(f"--since-size must be between 1 and the tree size {head.tree_size}, got {since_size}")
                files["old-tree-head.json"] = node.tree_head_at(since_size).to_json()
                files["consistency.json"] = node.consistency_proof(since_size, head.tree_size).to_json()
    except MedledgerError as exc:
        _fail(exc.message)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, value in files.items():
            _write_json(out_dir / name, value)
    except OSError as exc:
        _fail(f"cannot write into {out_dir}: {exc.strerror}")
    out.print(
        f"saved {', '.join(files)} in {out_dir}: transaction {tx_id} is leaf {proof.leaf_index} of the tree of "
        f"size {head.tree_size}, whose head is signed by node key {head.signer}",
        highlight=False,
    )
    if token is None:
        console.print("no --token (or MEDLEDGER_TOKEN): the transaction itself was not saved, so `proof verify` "
                      "can tie the proof to a leaf hash only, not to a signed envelope")
    console.print(f"check them with `medledger proof verify ... --trusted-key KEY`, KEY being the node key the "
                  f"operator published (`medledger status --node-key`), after comparing it with {head.signer}")


def _receipt_and_wire(receipt: Path, envelope: Path | None) -> tuple[Any, Any]:
    """A saved receipt and its envelope: --envelope, or the wire form beside it in a receipts-file line."""
    saved = _read_json(receipt, "receipt")
    wire = _read_json(envelope, "envelope") if envelope is not None else None
    if isinstance(saved, dict) and "receipt" in saved:
        wire = wire or saved.get("wire")
        saved = saved["receipt"]
    if wire is None:
        _fail("checking a receipt needs the envelope: --envelope, or a receipts-file line with its wire form")
    return saved, wire


@app.command()
def load(
    url: Annotated[str, typer.Option(help="base URL of a medledger node")] = "http://127.0.0.1:8400",
    count: Annotated[int, typer.Option(help="anchor.record envelopes to submit")] = 1000,
    concurrency: Annotated[int, typer.Option(help="parallel HTTP clients")] = 4,
    batch: Annotated[int, typer.Option(help="envelopes per request")] = 1,
    receipts: Annotated[Path | None, typer.Option(help="append each acknowledged receipt as a JSON line")] = None,
    admin_key: Annotated[
        Path, typer.Option("--admin-key", help="key of an institution admin that registers the load member")
    ] = demo_dirs.LATEST_ADMIN_KEY,
    org: Annotated[str, typer.Option(help="the admin's organisation")] = "demo-hospital",
    wait: Annotated[
        float, typer.Option(help="seconds to wait for a node that is still starting (connections refused)")
    ] = 15.0,
) -> None:
    """Register a member and submit signed anchor.record envelopes over HTTP, stamped with the node's clock."""
    from medledger.ledger.keys import SigningKey
    from medledger.loadgen import run_load

    if wait < 0:
        _fail(f"--wait must be 0 or more seconds, got {wait:g}")
    try:
        key = SigningKey.from_file(admin_key)
        with _progress() as progress:
            task = progress.add_task("submitting", total=count)
            result = run_load(
                url,
                key,
                org=org,
                count=count,
                concurrency=concurrency,
                batch=batch,
                receipts=receipts,
                progress=lambda n: progress.update(task, advance=n),
                wait=wait,
            )
    except MedledgerError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"cannot write {exc.filename or receipts}: {exc.strerror or exc}")
    print(json.dumps(result.to_json()))
    if result.refused:
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(result.refusals.items()))
        _fail(f"the node refused {result.refused} of {result.submitted} envelopes ({reasons})")


def _bench_report(result: dict[str, Any], as_json: bool) -> None:
    """Every bench command's output: the JSON (one line with --json), then the one-line summary."""
    print(json.dumps(result, indent=None if as_json else 2))
    if not as_json:
        print(result["summary"])


@bench_app.command("ingest")
def bench_ingest(
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON")] = False,
    count: Annotated[int, typer.Option(help="envelopes per measured run")] = 40_000,
    http_count: Annotated[int, typer.Option(help="envelopes for the HTTP run (0 skips it)")] = 20_000,
    seconds: Annotated[float, typer.Option(help="length of each raw-verify sample")] = 3.0,
) -> None:
    """R = Ed25519 verifies/s on every core; T = envelopes/s durably committed; prints T/R."""
    from medledger.benchmarks import ingest

    result = ingest(count=count, http_count=http_count, log=None if as_json else console.print, seconds=seconds)
    _bench_report(result, as_json)


@bench_app.command("proofs")
def bench_proofs(
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON")] = False,
    size: Annotated[int, typer.Option(help="entries in the log")] = 1_000_000,
) -> None:
    """Median inclusion/consistency proof latency on a log of SIZE entries."""
    from medledger.benchmarks import proofs

    result = proofs(size=size, log=None if as_json else console.print)
    _bench_report(result, as_json)


@bench_app.command("pipeline")
def bench_pipeline(
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON")] = False,
    chains: Annotated[int, typer.Option(help="prescription chains (11 envelopes each)")] = 4000,
    seconds: Annotated[float, typer.Option(help="length of each raw-verify sample")] = 3.0,
) -> None:
    """T/R of the full pipeline: prescription chains through every rule, durably committed."""
    from medledger.bench_pipeline import pipeline

    result = pipeline(chains=chains, log=None if as_json else console.print, seconds=seconds)
    _bench_report(result, as_json)


@bench_app.command("floor")
def bench_floor(
    as_json: Annotated[bool, typer.Option("--json", help="print only the JSON")] = False,
    count: Annotated[int, typer.Option(help="messages verified and inserted per run")] = 40_000,
    seconds: Annotated[float, typer.Option(help="length of each raw-verify sample")] = 2.0,
) -> None:
    """The best T/R this machine allows: verify + durable insert alone, then with only the required decoding and log."""
    from medledger.bench_floor import floor

    result = floor(count, seconds)
    _bench_report(result, as_json)


@app.command()
def demo(
    data: Annotated[
        Path | None,
        typer.Option("--data", help="a new ledger directory (default: a new demo-data/run-<time>, linked as latest)"),
    ] = None,
    port: Annotated[int, typer.Option(help="TCP port, 0 to 65535 (0: any free port)")] = 8400,
    speed: Annotated[
        float, typer.Option(help="province seconds per wall second (1440: a day a minute)")
    ] = 1440.0,
    rate: Annotated[
        float | None,
        typer.Option(help="at most this many transactions per second (province time then slows at peaks)"),
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: serve until Ctrl-C)")
    ] = None,
    seed: Annotated[int, typer.Option(help="the province's seed")] = 7,
) -> None:
    """Serve a simulated province under supervision; at the end, verify and sum the alerts up by rule."""
    from medledger.demo import run_demo

    if not speed > 0:
        _fail(f"--speed must be more than 0 province seconds per second, got {speed:g}")
    if rate is not None and rate <= 0:
        _fail(f"--rate must be more than 0 transactions per second, got {rate:g}")
    if duration is not None and duration <= 0:
        _fail(f"--duration must be more than 0 seconds, got {duration:g}")
    data = data if data is not None else demo_dirs.new_run_dir()
    try:
        run_demo(data, port=port, rate=rate, duration=duration, seed=seed, console=console, out=out, speed=speed)
    except MedledgerError as exc:
        _fail(exc.message)


@app.command()
def simulate(
    embedded: Annotated[bool, typer.Option("--embedded", help="in-process node on simulated time (default)")] = False,
    url: Annotated[
        str | None,
        typer.Option(
            help="drive the node serving at this URL instead, in real time; only for a test or demo ledger: the "
            "simulator admits its province there and publishes its rulebook with the regulator key from --data"
        ),
    ] = None,
    data: Annotated[
        Path, typer.Option("--data", help="a new ledger directory (embedded), or the served node's directory (--url)")
    ] = Path("sim-data"),
    seed: Annotated[int, typer.Option(help="one seed, one province and one report")] = 7,
    days: Annotated[float, typer.Option(help="simulated days to run")] = 2.0,
    violation_rate: Annotated[float, typer.Option(help="fraction of cases carrying one injected violation")] = 0.25,
    cases_per_day: Annotated[int, typer.Option(help="arrivals per simulated day")] = 1500,
    report: Annotated[Path | None, typer.Option(help="write the JSON report to this file")] = None,
    duration: Annotated[float | None, typer.Option(help="with --url: stop after this many seconds")] = None,
) -> None:
    """Run the province simulator: day-shaped traffic with injected violations, scored against ground truth."""
    from dataclasses import replace

    from rich.progress import TimeElapsedColumn

    from medledger.sim import EmbeddedDriver, HttpDriver, SimConfig, run_simulation, write_report
    from medledger.sim.drivers import Driver
    from medledger.sim.report import COUNTS_NOTE, summary_table
    from medledger.sim.run import SIM_START

    if embedded and url is not None:
        _fail("choose one of --embedded and --url")
    if duration is not None and url is None:
        _fail("--duration bounds a run over --url (real time); an embedded run is bounded by --days")
    if url is None and data.exists() and any(data.iterdir()):
        _fail(f"{data} is not empty; the simulator builds a fresh ledger, so give --data a new directory")
    config = SimConfig(seed, days, violation_rate, cases_per_day, duration_s=duration)
    try:
        config.check()
        driver: Driver = EmbeddedDriver(data, SIM_START) if url is None else HttpDriver(url, data)
        config = replace(config, truth_dir=data / ("sim" if url is None else f"sim-{driver.tag}"))
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[clock]} simulated, {task.fields[tx]} tx"),
            TimeElapsedColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        try:
            with bar:
                task = bar.add_task(f"simulating seed {seed}", total=None, clock="0h00m", tx=0)

                def tick(done: int, total: int, tx: int) -> None:
                    clock = f"{done // 3_600_000}h{done // 60_000 % 60:02d}m"
                    bar.update(task, completed=done, total=total, clock=clock, tx=tx)

                result = run_simulation(driver, config, progress=tick)
        finally:
            driver.close()
    except MedledgerError as exc:
        _fail(exc.message)
    if report is not None:
        write_report(result, report)
    out.print(summary_table(result))
    out.print(
        f"{result.transactions} transactions in {result.blocks} blocks, {result.injected_cases} of {result.cases} "
        f"cases injected, {result.clean_alerts} alerts on clean cases, {result.elapsed_s:.1f} s; ground truth in "
        f"{config.truth_dir}" + (f"; report in {report}" if report is not None else ""),
        highlight=False,
    )
    out.print(COUNTS_NOTE, highlight=False)


# Newer typer releases carry their own copy of click, whose exceptions are not click's: catch both.
_USAGE_ERRORS: tuple[type[Exception], ...] = (
    click.ClickException,
    getattr(typer, "TyperException", click.ClickException),
)
_ABORTS: tuple[type[BaseException], ...] = (KeyboardInterrupt, click.exceptions.Abort, typer.Abort)


def main() -> None:
    """Run the CLI with :data:`EXIT_CODES`: click's own usage errors exit 1 here, not 2, which means "failed"."""
    try:
        code = app(standalone_mode=False)
    except _ABORTS:
        sys.exit(130)
    except _USAGE_ERRORS as exc:
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(EXIT_ERROR)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
