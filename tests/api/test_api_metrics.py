"""``/metrics`` moves with commits and refusals, and each app keeps its own registry."""

from __future__ import annotations

from api_support import ApiLedger, anchor, body
from prometheus_client.parser import text_string_to_metric_families

from medledger.api import create_app


def scrape(api: ApiLedger) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(r.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_after_commits_and_refusals(api: ApiLedger) -> None:
    before = scrape(api)
    receipts = api.submit(*[anchor(api.keys.demo_admin) for _ in range(3)])
    api.post(body([]))  # refused: empty-batch
    after = scrape(api)

    committed = "medledger_committed_transactions_total"
    assert value(after, committed, status="ACCEPTED") - value(before, committed, status="ACCEPTED") == 3
    assert value(after, "medledger_block_height") == receipts[-1]["height"]
    assert value(after, "medledger_tree_size") == receipts[-1]["tree_head"]["tree_size"]
    for histogram in ("medledger_signature_check_seconds", "medledger_commit_wait_seconds"):
        assert value(after, histogram + "_count") > value(before, histogram + "_count"), histogram
        assert value(after, histogram + "_sum") > value(before, histogram + "_sum"), histogram
    refusals = "medledger_http_refusals_total"
    assert value(after, refusals, code="empty-batch") == value(before, refusals, code="empty-batch") + 1


def test_two_apps_on_one_node_have_separate_registries(api: ApiLedger) -> None:
    """Per-app registries: a second app must not collide with the first one's metric names."""
    first, second = create_app(api.node), create_app(api.node)
    assert first.state.metrics.registry is not second.state.metrics.registry
    assert b"medledger_tree_size" in second.state.metrics.render()
