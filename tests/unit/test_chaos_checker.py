"""The chaos checker must catch what it exists to catch."""
from __future__ import annotations

import orjson

from streams import events
from streams.connectors.base import link_reference
from streams.devkit.chaos import (
    POISON_KINDS,
    ChaosConfig,
    Input,
    check,
    plan_inputs,
    stalled_partitions,
)
from streams.devkit.harness import TOPICS, Outcomes
from streams.devkit.traffic import key_of, valid_request


def created(request: dict, link_id: str) -> dict:
    return events.created_event(request, connector="razorpay", connector_payout_id=link_id,
                                url="https://rzp.io/i/x", payout_status="REQUIRES_PAYOUT_METHOD_DATA",
                                connector_status="issued", reference="pl_x", expires_at=None)


def setup():
    a, b = valid_request(1, run="t"), valid_request(2, run="t")
    inputs = [Input("valid", key_of(r), orjson.dumps(r), key_of(r).decode()) for r in (a, b)]
    return a, b, inputs


def test_clean_run_passes() -> None:
    a, b, inputs = setup()
    out = Outcomes()
    out.add(TOPICS.created, created(a, "poutlk_a"))
    # A re-publication is fine: the same event (built once: two builds a clock tick apart
    # differ in occurred_at, which the checker rightly calls a clash; this test flaked so).
    again = created(b, "poutlk_b")
    out.add(TOPICS.created, again)
    out.add(TOPICS.created, dict(again))
    ledger = {link_reference(i.answer_key): [f"poutlk_{x}"] for i, x in zip(inputs, "ab")}
    report = check(inputs, out, ledger)
    assert report.ok and report.one_outcome == 2 and report.republished == 1


def test_lost_duplicate_link_and_phantom_link_are_caught() -> None:
    a, b, inputs = setup()
    out = Outcomes()
    out.add(TOPICS.created, created(a, "poutlk_a"))
    ledger = {link_reference(inputs[0].answer_key): ["poutlk_a", "poutlk_a2"],
              link_reference(inputs[1].answer_key): ["poutlk_b"]}
    report = check(inputs, out, ledger)
    assert report.lost == [f"valid:{inputs[1].answer_key}"]
    assert report.duplicate_links == [inputs[0].answer_key]
    assert any("no created outcome" in u for u in report.unaccounted)
    assert not report.ok
    assert report.final_line() == (
        "chaos: 2 requests, 1 with one outcome, 1 lost, 1 duplicate links, "
            "0 same-id different-content, 0 false failures, "
        "1 unaccounted inputs; "
        "poison: 0 injected, 0 accounted, 0 stalls")


def test_two_different_outcomes_for_one_request_are_unaccounted() -> None:
    a, _, inputs = setup()
    out = Outcomes()
    out.add(TOPICS.created, created(a, "poutlk_a"))
    out.add(TOPICS.failed, events.failed_event(a, code="provider_rejected", message="m",
                                               field=None))
    report = check(inputs[:1], out, {link_reference(inputs[0].answer_key): ["poutlk_a"]})
    assert len(report.unaccounted) == 1 and not report.ok


def test_plan_has_the_requested_mix_with_originals_first() -> None:
    cfg = ChaosConfig(requests=1000, seed=1)
    inputs = plan_inputs(cfg, "r")
    kinds = [i.kind for i in inputs]
    assert len(inputs) == 1000 + 4  # one poison record of each kind on top
    assert {k for k in kinds if k.startswith("poison")} == set(POISON_KINDS)
    assert (kinds.count("duplicate"), kinds.count("conflict")) == (20, 10)
    assert kinds.count("invalid") + kinds.count("garbage") == 10
    first_seen: dict[str, int] = {}
    for n, item in enumerate(inputs):
        if item.kind == "valid":
            first_seen[item.answer_key] = n
        elif item.kind in ("duplicate", "conflict"):
            assert first_seen[item.answer_key] < n


def test_a_poison_record_is_accounted_only_by_its_expected_place_and_stalls_are_seen() -> None:
    a, b, inputs = setup()
    poison = dict(a, merchant_payout_id="t-chaos-poison-raise-0")
    p_in = Input("poison-raise", key_of(poison), orjson.dumps(poison), key_of(poison).decode())
    out = Outcomes()
    out.add(TOPICS.created, created(a, "poutlk_a"))
    out.add(TOPICS.created, created(b, "poutlk_b"))
    out.add(TOPICS.failed, events.failed_event(poison, code="processing_error", message="m",
                                               field=None, scope=events.REQUEST))
    ledger = {link_reference(i.answer_key): [f"poutlk_{x}"] for i, x in zip(inputs, "ab")}
    report = check([p_in, *inputs], out, ledger)
    assert (report.poison_injected, report.poison_accounted) == (1, 1) and report.ok
    wrong = Outcomes()
    wrong.add(TOPICS.failed, events.failed_event(poison, code="processing_error", message="m",
                                                 field=None))  # a link failure: not expected
    report = check([p_in], wrong, {})
    assert report.poison_accounted == 0 and not report.ok
    # Everything produced after a poison record on its partition must be answered.
    same = [i for i in inputs]
    assert stalled_partitions([p_in, *same], {p_in.answer_key}, 1) == [
        f"poison-raise:{p_in.answer_key}"]
    assert stalled_partitions([p_in, *same], {i.answer_key for i in [p_in, *same]}, 1) == []


def test_a_link_failure_for_a_key_with_a_link_at_the_provider_is_a_false_failure() -> None:
    a, _, inputs = setup()
    out = Outcomes()
    out.add(TOPICS.failed, events.failed_event(a, code="provider_rejected", message="m",
                                               field=None))
    report = check(inputs[:1], out, {link_reference(inputs[0].answer_key): ["poutlk_a"]})
    assert report.false_failures == [inputs[0].answer_key] and not report.ok


def test_one_event_id_with_different_content_is_caught() -> None:
    a, b, inputs = setup()
    out = Outcomes()
    first = created(a, "poutlk_a")
    out.add(TOPICS.created, first)
    out.add(TOPICS.created, dict(first))  # the same content again: fine
    out.add(TOPICS.created, created(b, "poutlk_b"))
    ledger = {link_reference(i.answer_key): [f"poutlk_{x}"] for i, x in zip(inputs, "ab")}
    assert check(inputs, out, ledger).ok
    out.add(TOPICS.created, dict(first, url="https://rzp.io/i/other"))  # a second link's URL
    report = check(inputs, out, ledger)
    assert report.clashing_ids == [f"{first['event_id']} (url)"] and not report.ok
    assert "1 same-id different-content" in report.final_line()


def test_the_outage_promises_allow_created_or_retries_exhausted_only() -> None:
    from streams.devkit.chaos_outages import OutageChaos, judge

    a, b, inputs = setup()
    oc = OutageChaos(answering_503="razorpay", refusing="revolut")
    out = Outcomes()
    out.add(TOPICS.created, created(a, "poutlk_a"))
    out.add(TOPICS.failed, events.failed_event(b, code="retries_exhausted", message="m",
                                               field=None, connector="razorpay"))
    verdict = judge(oc, inputs, out)
    assert verdict.broken_promises == [] and verdict.by_provider["razorpay"] == {
        "created": 1, "failed:retries_exhausted": 1}
    out.add(TOPICS.failed, events.failed_event(b, code="insufficient_funds", message="m",
                                               field=None, connector="razorpay",
                                               discriminator="x"))
    assert len(judge(oc, inputs, out).broken_promises) == 1


def test_hand_overs_are_counted_per_link_from_the_worker_logs() -> None:
    from streams.devkit.chaos_fencing import HandOvers

    line = ("link m_1:p_{n} is in doubt on payout-link-requested/0, taken over 0.3 s ago: "
            "waiting {w} s for the previous owner's last possible call to end\n")
    logs = [line.format(n=1, w="8.0") + line.format(n=1, w="2.0"),
            line.format(n=2, w="5.0") + "fenced: x\nrebalance: abandoned 3 pieces\n"]
    found = HandOvers.from_logs(logs)
    assert (found.links, found.waits_s, found.fenced, found.abandoned_at_rebalance) == (
        2, [8.0, 2.0, 5.0], 1, 1)
    assert "2 in-doubt links handed over, 3 hand-over waits (max 8.0 s, mean 5.0 s)" in found.line()
