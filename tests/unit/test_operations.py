"""Issue 13: health verdicts and the lookup view, as pure functions."""
from __future__ import annotations

from streams import health, lifecycle, lookup
from streams.lifecycle import LinkRecord, LinkStatus, SourceOffset


def facts(**over: object) -> health.Facts:
    base = dict(now=100.0, last_loop_tick=99.6, agent_running=True, pipeline_crashed=False,
                pipeline_started=True, rebalancing=False, recovering=False,
                owned_request_partitions=4)
    base.update(over)
    return health.Facts(**base)  # type: ignore[arg-type]


def test_live_unless_the_loop_is_blocked_the_agent_dead_or_the_pipeline_crashed() -> None:
    assert health.liveness(facts()).ok
    blocked = health.liveness(facts(last_loop_tick=80.0))
    assert not blocked.ok and blocked.checks["event_loop"] == "blocked over 10s"
    assert not health.liveness(facts(agent_running=False)).ok
    assert not health.liveness(facts(pipeline_crashed=True)).ok


def test_ready_only_with_partitions_and_nothing_moving() -> None:
    assert health.readiness(facts()).ok
    for over in ({"rebalancing": True}, {"recovering": True}, {"pipeline_started": False},
                 {"owned_request_partitions": 0}):
        verdict = health.readiness(facts(**over))
        assert not verdict.ok and verdict.body()["status"] == "fail", over


def test_a_malformed_key_names_its_field() -> None:
    assert lookup.invalid_identifier("m_acme", "refund-42") is None
    assert lookup.invalid_identifier("m acme", "x")[0] == "merchant_id"  # type: ignore[index]
    assert lookup.invalid_identifier("m", "x" * 65)[0] == "merchant_payout_id"  # type: ignore[index]


def test_the_view_of_a_created_link_has_its_provider_facts_and_no_request() -> None:
    outcome = {"event_type": "payout-link-created", "event_id": "e1", "connector_payout_id": "p1",
               "url": "https://rzp.io/i/x", "amount": {"minor_amount": 100, "currency": "INR"},
               "payout_status": "REQUIRES_PAYOUT_METHOD_DATA", "connector_status": "issued",
               "occurred_at": "2026-12-07T10:00:00Z"}
    record = LinkRecord(link_key="m_acme:refund-42", status=LinkStatus.CREATED, fingerprint="f",
                        connector="razorpay", reference="pl2_x",
                        source=SourceOffset("payout-link-requested", 3, 17), provider_calls=2,
                        outcome=outcome, outcome_published=True, next_poll_at=1_800_000_000.0)
    view = lookup.describe(lifecycle.LinkRecord.from_bytes(record.to_bytes()))
    assert view["merchant_payout_id"] == "refund-42" and view["status"] == "created"
    assert (view["connector_payout_id"], view["url"], view["attempts"]) == \
        ("p1", "https://rzp.io/i/x", 2)
    assert view["outcome"]["event_id"] == "e1" and view["outcome"]["published"] is True
    assert view["next_poll_at"] == "2027-01-15T08:00:00Z"
    assert view["source"] == {"topic": "payout-link-requested", "partition": 3, "offset": 17}


def test_the_dashboard_is_generated_and_reads_only_exported_metrics() -> None:
    import json

    from streams import metrics
    from streams.devkit import dashboard

    assert json.loads(dashboard.OUT.read_text()) == dashboard.dashboard(), \
        "docs/grafana-dashboard.json is stale: python -m streams.devkit.dashboard"
    exported = {m.name for m in metrics.REGISTRY.collect()}
    exported |= {f"{n}_total" for n in exported}
    # Gauges the pipeline adds at scrape time (streams.pipeline.RequestPipeline._gauges).
    exported |= {"payout_in_flight", "payout_links_unresolved", "payout_breaker_state",
                 "payout_consumer_lag", "payout_delivery_seeks_total"}
    for panel in dashboard.dashboard()["panels"]:
        for target in panel["targets"]:
            names = dashboard.metric_names(target["expr"])
            assert names and names <= exported, (panel["title"], names - exported)
