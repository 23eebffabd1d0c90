"""Prometheus metrics of one API instance.

Each app owns its own :class:`~prometheus_client.CollectorRegistry` instead of
the process-global one: the global registry refuses a second metric of the
same name, so two apps (two nodes in one test process, or an auditor replica
beside a peer) could not coexist, and they would also mix each other's counts.

Block and commit figures are fed from the node's committer thread via
:meth:`Metrics.on_block` (after every durable block), so they count what is on
disk, not what was merely accepted for ordering.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from medledger.ledger.block import TreeHead
from medledger.ledger.envelope import SignedEnvelope
from medledger.ledger.txtypes import Outcome

#: Signature checks take ~60 us per envelope; a 10,000-envelope batch on two cores ~0.3 s.
_CHECK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Commit wait is dominated by the block cut (max_wait_ms) and one fsync.
_COMMIT_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    """The counters, gauges and histograms ``GET /metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.committed = Counter(
            "medledger_committed_transactions", "Transactions durably committed, by outcome status",
            ["status"], registry=r,
        )
        self.blocks = Counter("medledger_committed_blocks", "Blocks durably committed", registry=r)
        self.height = Gauge("medledger_block_height", "Height of the latest committed block", registry=r)
        self.tree_size = Gauge("medledger_tree_size", "Entries in the Merkle log after the latest block", registry=r)
        self.check_seconds = Histogram(
            "medledger_signature_check_seconds",
            "Stateless checks (decode, canonical form, schema, Ed25519) of one submission request",
            buckets=_CHECK_BUCKETS, registry=r,
        )
        self.commit_wait_seconds = Histogram(
            "medledger_commit_wait_seconds",
            "From admission to the last receipt of one submission request (ordering, execution, fsync)",
            buckets=_COMMIT_BUCKETS, registry=r,
        )
        self.submitted = Counter(
            "medledger_submitted_envelopes", "Envelopes admitted through POST /v1/transactions", registry=r
        )
        self.refusals = Counter(
            "medledger_http_refusals", "Requests answered with a problem+json error, by problem code",
            ["code"], registry=r,
        )

    def set_tip(self, height: int, tree_size: int) -> None:
        self.height.set(height)
        self.tree_size.set(tree_size)

    def on_block(
        self, height: int, block_hash: str, envelopes: list[SignedEnvelope], outcomes: list[Outcome], head: TreeHead
    ) -> None:
        """Node listener (committer thread): prometheus-client metrics are thread-safe."""
        for status, count in Tally(o.status for o in outcomes).items():
            self.committed.labels(status=status).inc(count)
        self.blocks.inc()
        self.set_tip(height, head.tree_size)

    def refused(self, code: str, status: int) -> None:
        self.refusals.labels(code=code).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
