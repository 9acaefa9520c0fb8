"""The soak's pure parts: its verdicts must pass what is fine and fail what is not."""
from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import orjson
import pytest

from streams import events
from streams.connectors.base import link_reference
from streams.devkit.chaos import Input, Report, check
from streams.devkit.harness import TOPICS, Outcomes
from streams.devkit.soak import (
    SECTION_HEADING,
    TABLE_START,
    Minute,
    RssCheckpoint,
    Verdict,
    add_doc_row,
    bucket_of,
    build_parser,
    check_in_buckets,
    kill_recoveries,
    kill_times,
    lag_bound,
    lag_verdict,
    merge_reports,
    other_jobs_pct,
    parse_minutes,
    percentile,
    probe_rates,
    rss_cell,
    rss_verdict,
    verdict_line,
)
from streams.devkit.traffic import key_of, valid_request

# --- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize("text, minutes", [(None, 20), ("", 20), (" 3 ", 3), ("120", 120)])
def test_minutes_accepted(text: str | None, minutes: int) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["abc", "0", "-5", "2.5", "121", "1e3"])
def test_bad_minutes_give_one_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="SOAK_MINUTES"):
        parse_minutes(text)


def test_bad_option_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--rate", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("soak: ") and "Traceback" not in err


def test_kills_every_five_minutes_never_at_the_end() -> None:
    assert kill_times(20, 5) == [300, 600, 900]
    assert kill_times(3, 5) == []
    assert kill_times(3, 1) == [60, 120]
    assert kill_times(20, 0) == []


# --- per-minute stats ---------------------------------------------------------------------


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 99) is None
    assert percentile([5.0], 99) == 5.0
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 99) == 99.0
    assert percentile(values, 50) == 50.0
    assert percentile(list(reversed(values)), 100) == 100.0


def test_probe_rates_drain_and_steady() -> None:
    # 1,000 outcomes at 100/s from t=1 after a send at t=0, and a faulted straggler at 20 s
    arrivals = [1 + i / 100 for i in range(999)] + [20.0]
    drain, steady = probe_rates(0.0, arrivals)
    assert drain == pytest.approx(1000 / 20)
    assert steady == pytest.approx(100, rel=0.01)
    assert probe_rates(0.0, []) == (0.0, None)
    assert probe_rates(0.0, [0.5, 1.0])[1] is None  # too few for percentiles


def test_minute_line() -> None:
    m = Minute(3, offered=24_000, answered=23_940, latencies_ms=[100.0] * 99 + [900.0],
               rss_mb=180.4, cpu_pct=47.6, lag=12, in_flight=80, max_in_flight=210,
               events=["kill 1 at 2:00"])
    assert m.p99_ms == 100.0
    assert m.line(20) == ("minute  3/20: offered   400/s, answered   399/s, p99 100 ms, "
                          "RSS 180 MB, CPU 48 %, lag 12, in flight 80 (max 210)  "
                          "[kill 1 at 2:00]")
    assert "p99 – ms" in Minute(1).line(3) and "RSS – MB" in Minute(1).line(3)


# --- RSS ---------------------------------------------------------------------------------


def _lives(rss_at_kill: list[int], every: float = 300.0) -> list[RssCheckpoint]:
    """Minute-end checkpoints of workers killed every ``every`` s, RSS rising with age."""
    out = []
    for life, peak in enumerate(rss_at_kill):
        start = life * every
        for minute in range(1, int(every // 60) + 1):
            age = minute * 60.0
            out.append(RssCheckpoint(start + age, age + (8.0 if life == 0 else 0.2),
                                     int(peak * age / every)))
    return out


def test_rss_flat_across_worker_lives_passes() -> None:
    v = rss_verdict(_lives([200_000, 204_000, 206_000, 205_000]))
    assert v.status == "pass" and not v.reasons
    assert v.text.startswith("RSS 195→200 MB (+2.5 %, worst +3.0 %)")


def test_rss_growth_over_15_percent_fails() -> None:
    v = rss_verdict(_lives([200_000, 215_000, 240_000, 225_000]))
    assert v.status == "fail"
    assert "+20.0 %" in v.reasons[0] and "> 15 %" in v.reasons[0]


def test_rss_compares_like_with_like_a_young_worker_is_not_a_drop() -> None:
    # After a kill the new worker is small; its young checkpoints are not compared,
    # so they can neither hide growth nor fake a pass.
    checkpoints = [RssCheckpoint(300, 308, 200_000), RssCheckpoint(360, 60, 90_000),
                   RssCheckpoint(420, 120, 120_000)]
    assert rss_verdict(checkpoints).status == "n/a"
    checkpoints.append(RssCheckpoint(600, 300, 236_000))  # as old as the reference
    v = rss_verdict(checkpoints)
    assert v.status == "fail" and "+18.0 %" in v.text


def test_rss_within_one_long_life_after_minute_5() -> None:
    steady = [RssCheckpoint(60.0 * m, 60.0 * m + 8, 150_000 + 1_000 * min(m, 5))
              for m in range(1, 21)]
    assert rss_verdict(steady).status == "pass"
    leaking = [RssCheckpoint(60.0 * m, 60.0 * m + 8, 150_000 + 5_000 * m) for m in range(1, 21)]
    assert rss_verdict(leaking).status == "fail"


def test_rss_short_run_is_not_applicable_not_a_pass() -> None:
    short = [RssCheckpoint(60.0 * m, 60.0 * m + 8, 150_000 + 1_000 * m) for m in range(1, 4)]
    v = rss_verdict(short)
    assert v.status == "n/a" and not v.reasons
    assert "n/a" in v.text and v.text.startswith("RSS 147→149 MB")
    assert rss_cell(v) == "147→149 MB (n/a)"
    assert rss_verdict([]).status == "n/a"


# --- lag -----------------------------------------------------------------------------------


def _samples(shape: dict[tuple[int, int], int], end: int, base: int = 80) -> list[tuple[float, int]]:
    """(t, in flight) every second: ``base`` except in the [from, to) ranges of ``shape``."""
    out = []
    for t in range(end + 1):
        value = base
        for (lo, hi), v in shape.items():
            if lo <= t < hi:
                value = v
        out.append((float(t), value))
    return out


def _minute_ends(samples: list[tuple[float, int]], minutes: int) -> list[tuple[float, int]]:
    at = dict(samples)
    return [(60.0 * m, at[60.0 * m]) for m in range(1, minutes + 1)]


def test_lag_spike_after_kills_that_recovers_passes() -> None:
    samples = _samples({(301, 340): 9_000, (601, 650): 11_000, (901, 930): 8_000}, 1200)
    v = lag_verdict(samples, _minute_ends(samples, 20), [300.0, 600.0, 900.0],
                    bound=2_000, drained_s=2.0)
    assert v.status == "pass", v.reasons
    assert v.text == "max in flight 11000 (bound 2000), back under it 39 s, 49 s, 29 s after the kills"
    assert kill_recoveries(samples, [300.0, 600.0, 900.0], bound=2_000) == [39.0, 49.0, 29.0]


def test_lag_that_does_not_recover_after_a_kill_fails() -> None:
    samples = _samples({(601, 800): 12_000}, 1200)
    v = lag_verdict(samples, _minute_ends(samples, 20), [300.0, 600.0, 900.0],
                    bound=2_000, drained_s=2.0)
    assert v.status == "fail"
    assert v.reasons == ("kill 2: backlog above 2000 for 199 s (limit 120 s)",
                         # minute ends past the kill's recovery window count on their own
                         "12000 in flight at minute 12 (bound 2000)",
                         "12000 in flight at minute 13 (bound 2000)")


def test_lag_growing_without_bound_fails() -> None:
    growing = [(float(t), 80 + 20 * t) for t in range(601)]  # +20/s, never drains
    v = lag_verdict(growing, _minute_ends(growing, 10), [], bound=2_000, drained_s=None)
    assert v.status == "fail"
    assert "not drained" in v.reasons[-1]
    assert any("at minute 2" in r for r in v.reasons)
    assert not any("at minute 1 " in r + " " for r in v.reasons)  # warm-up


def test_lag_still_above_the_bound_when_the_run_ends_after_a_kill_fails() -> None:
    samples = _samples({(101, 401): 5_000}, 400)
    assert kill_recoveries(samples, [100.0], bound=2_000) == [math.inf]
    v = lag_verdict(samples, [], [100.0], bound=2_000, drained_s=None)
    assert "kill 1: backlog above 2000 for the rest of the run (limit 120 s)" in v.reasons


def test_slow_drain_fails() -> None:
    samples = _samples({}, 300)
    v = lag_verdict(samples, _minute_ends(samples, 5), [], bound=2_000, drained_s=200.0)
    assert v.reasons == ("backlog drained in 200 s (limit 180 s)",)


def test_lag_bound_is_seconds_of_traffic_with_a_floor() -> None:
    assert lag_bound(400) == 2_000
    assert lag_bound(3) == 100


# --- the verdict line and the docs row ---------------------------------------------------------


def test_verdict_line() -> None:
    ok = verdict_line(minutes=20, rate=400, max_rate=800, rate_is_half=True, answered=485_000,
                      requests=485_000, lost=0, duplicate_links=0,
                      rss=Verdict("pass", "RSS 200→204 MB (+2.0 %)"), max_lag=3_100,
                      max_in_flight=9_800, reasons=[])
    assert ok == ("soak: 20 min at 400/s (half of max 800/s): 485000/485000 answered, 0 lost, "
                  "0 duplicate links, RSS 200→204 MB (+2.0 %), max lag 3100 (in flight 9800); PASS")
    bad = verdict_line(minutes=3, rate=100, max_rate=700, rate_is_half=False, answered=17_990,
                       requests=18_000, lost=10, duplicate_links=1, rss=Verdict("n/a", "RSS –"),
                       max_lag=None, max_in_flight=10, reasons=["10 lost", "1 duplicate links"])
    assert bad.endswith("max lag – (in flight 10); FAIL (10 lost; 1 duplicate links)")
    assert "at 100/s (set; max 700/s)" in bad


def test_doc_row_goes_into_a_soak_section_created_once(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Runs\n\n| date (UTC) | x |\n|---|---|\n| a | b |\n")
    add_doc_row(doc, "| 2026-11-22 10:00 | one |")
    add_doc_row(doc, "| 2026-11-22 11:00 | two |")
    text = doc.read_text()
    assert text.count(SECTION_HEADING) == 1 and text.count(TABLE_START) == 1
    lines = text.splitlines()
    assert lines[lines.index("| 2026-11-22 10:00 | one |") + 1] == "| 2026-11-22 11:00 | two |"
    assert "| a | b |" in lines  # the other table is untouched
    assert text.endswith("| 2026-11-22 11:00 | two |\n")


# --- the checker, a bucket of keys at a time ---------------------------------------------


def _created(request: dict, link_id: str) -> dict:
    return events.created_event(request, connector="razorpay", connector_payout_id=link_id,
                                url="https://rzp.io/i/x", payout_status="REQUIRES_PAYOUT_METHOD_DATA",
                                connector_status="issued", reference="pl_x", expires_at=None)


def _run_of(n: int) -> tuple[list[Input], list[tuple[str, dict]], dict[str, list[str]]]:
    """``n`` requests, each created once, one re-sent, one re-published."""
    requests = [valid_request(i, run="s") for i in range(n)]
    inputs = [Input("valid", key_of(r), b"", key_of(r).decode()) for r in requests]
    inputs.append(Input("duplicate", inputs[3].key, b"", inputs[3].answer_key))
    records = [(TOPICS.created, _created(r, f"poutlk_{i}")) for i, r in enumerate(requests)]
    records.append(records[5])
    ledger = {link_reference(i.answer_key): [f"poutlk_{j}"] for j, i in enumerate(inputs[:n])}
    return inputs, records, ledger


def _bucketed(records: list[tuple[str, dict]], buckets: int) -> list[list[tuple[str, bytes]]]:
    raw: list[list[tuple[str, bytes]]] = [[] for _ in range(buckets)]
    for topic, event in records:
        raw[bucket_of(event["link_key"], buckets)].append((topic, orjson.dumps(event)))
    return raw


def _direct(inputs: list[Input], records: list[tuple[str, dict]], ledger: dict) -> Report:
    outcomes = Outcomes()
    for topic, event in records:
        outcomes.add(topic, event)
    return check(inputs, outcomes, ledger)


@pytest.mark.parametrize("buckets", [1, 7, 64])
def test_bucketed_check_equals_one_check_on_a_clean_run(buckets: int) -> None:
    inputs, records, ledger = _run_of(40)
    whole, parts = _direct(inputs, records, ledger), check_in_buckets(
        inputs, _bucketed(records, buckets), ledger)
    assert parts.ok and whole.ok
    assert parts.final_line() == whole.final_line()
    assert (parts.one_outcome, parts.republished, parts.inputs) == (41, 1, {"valid": 40, "duplicate": 1})


def test_bucketed_check_catches_lost_and_duplicated_like_one_check() -> None:
    inputs, records, ledger = _run_of(40)
    records = [r for r in records if r[1]["link_key"] != inputs[7].answer_key]  # lost
    ledger[link_reference(inputs[9].answer_key)].append("poutlk_again")  # two links
    whole, parts = _direct(inputs, records, ledger), check_in_buckets(
        inputs, _bucketed(records, 8), ledger)
    assert not parts.ok
    assert parts.lost == whole.lost == [f"valid:{inputs[7].answer_key}"]
    assert parts.duplicate_links == whole.duplicate_links == [inputs[9].answer_key]
    assert parts.final_line() == whole.final_line()


def test_merge_reports_sums_counts_and_joins_lists() -> None:
    a, b = Report(), Report()
    a.inputs["valid"], b.inputs["valid"] = 2, 3
    a.one_outcome, b.one_outcome = 2, 2
    b.lost.append("valid:k")
    merge_reports(a, b)
    assert a.inputs["valid"] == 5 and a.one_outcome == 4 and a.lost == ["valid:k"] and not a.ok


def test_other_jobs_is_host_busy_minus_ours() -> None:
    assert other_jobs_pct((100.0, 190.0), (50.0, 110.0), 60.0) == 50.0  # 90 s busy, 60 ours
    assert other_jobs_pct((100.0, 150.0), (50.0, 110.0), 60.0) == 0.0  # never below zero
    assert other_jobs_pct((None, 150.0), (50.0, 110.0), 60.0) is None


# --- the summary, end to end on a synthetic result -----------------------------------------


def _result(report: Report, rss: Verdict) -> dict:
    minutes = [Minute(m, offered=21_000, answered=20_950, latencies_ms=[150.0] * 100,
                      rss_mb=180.0, cpu_pct=50.0, lag=40, in_flight=70, max_in_flight=300)
               for m in range(1, 21)]
    samples = [(float(t), 70) for t in range(1201)]
    return {"max_rate": 700.0, "rate": 350.0, "minutes": minutes, "report": report,
            "lag": lag_verdict(samples, [(60.0 * m, 70) for m in range(1, 21)],
                               [0.0, 300.0, 600.0, 900.0], bound=1_750, drained_s=3.0),
            "rss": rss, "kills": 4, "samples": samples, "max_in_flight": 4_100,
            "max_lag": 9_000, "bound": 1_750, "p99_all": 1_700.0, "unreadable": 0}


def _conclude(result: dict, doc: Path | None, **kw) -> int:
    from streams.devkit.soak import conclude

    args = build_parser().parse_args(["--minutes", "20"])
    args.minutes = 20
    base = dict(self_exits=0, other_jobs=3.0, faults={"razorpay": (40, 4_000)},
                timings={"setup": 6.0, "probe": 22.0, "soak": 1200.0, "drain": 3.0,
                         "check": 9.0}, wall=1245.0, started_at=dt.datetime(2026, 11, 22, 12, 0),
                commit="abc1234", doc=doc)
    base.update(kw)
    return conclude(args, result, **base)


def test_conclude_pass_prints_the_verdict_and_adds_a_row(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs, records, ledger = _run_of(10)
    report = check_in_buckets(inputs, _bucketed(records, 4), ledger)
    doc = tmp_path / "benchmarks.md"
    code = _conclude(_result(report, Verdict("pass", "RSS 200→204 MB (+2.0 %)")), doc)
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[-1] == ("soak: 20 min at 350/s (half of max 700/s): 11/11 answered, 0 lost, "
                       "0 duplicate links, RSS 200→204 MB (+2.0 %), max lag 9000 "
                       "(in flight 4100); PASS")
    assert any(line.startswith("throughput: 349/s answered over the soak = 1.00× offered, "
                               "0.50× the probe's max") for line in out)
    row = doc.read_text().splitlines()[-1]
    assert row.startswith("| 2026-11-22 12:00 | `abc1234` | ")
    assert row.endswith(" | 3 | 20 | 700 | 350 | 11/11 | 1700 / 150 | 200→204 MB (+2.0 %) | "
                        "9000 / 4100 | 4 (0:00, then every 5 min) | 1245 | PASS |")


def test_conclude_fails_on_loss_and_rss(capsys: pytest.CaptureFixture[str]) -> None:
    inputs, records, ledger = _run_of(10)
    records = records[1:]  # the first request lost
    report = check_in_buckets(inputs, _bucketed(records, 4), ledger)
    rss = Verdict("fail", "RSS 200→240 MB (+20.0 %)", ("RSS grew +20.0 % (> 15 %) …",))
    code = _conclude(_result(report, rss), None, self_exits=1)
    last = capsys.readouterr().out.splitlines()[-1]
    assert code == 1
    assert last.startswith("soak: 20 min at 350/s (half of max 700/s): 10/11 answered, 1 lost, ")
    # the checker's own line (its wording is chaos.py's) for the unaccounted link
    assert "; FAIL (1 lost; checker: chaos: 11 requests, 10 with one outcome, 1 lost" in last
    assert last.endswith("; RSS grew +20.0 % (> 15 %) …; the worker exited by itself 1×)")


def test_conclude_fails_when_commits_do_not_reach_the_log_end(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Measured: commits crept after a seek back while every request was answered; the
    backlog looked fine and only the group lag showed it."""
    inputs, records, ledger = _run_of(10)
    report = check_in_buckets(inputs, _bucketed(records, 4), ledger)
    result = _result(report, Verdict("pass", "RSS 200→204 MB (+2.0 %)"))
    assert _conclude({**result, "committed_behind": 0}, None) == 0
    capsys.readouterr()
    assert _conclude({**result, "committed_behind": 94_832}, None) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.endswith("FAIL (committed offsets 94832 short of the log end 30 s after the "
                         "drain)")
