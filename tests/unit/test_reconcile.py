"""Reconciliation's pure parts: the classes of one link, the providers' list pages, the
on-disk join, the report (its verdict, CSV, exit codes, and its HTML drawn by Chromium)."""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams import events
from streams.connectors.base import HttpAnswer, Rejected, Transient, link_reference
from streams.connectors.ledger import ListPage
from streams.connectors.razorpay import ledger as razorpay_ledger
from streams.connectors.revolut import ledger as revolut_ledger
from streams.connectors.revolut.transformers import format_timestamp_us
from streams.reconcile import classify as c, facts as f, report
from streams.reconcile.facts import Fact, Kind
from streams.reconcile.join import FactStore

KEY = "m_1:p-1"
REF = link_reference(KEY)
T0 = 1_800_000_000_000


def request(at: int = T0, amount: int = 1000) -> Fact:
    return Fact(REF, Kind.REQUEST, at, {"k": KEY, "m": "m_1", "a": amount, "c": "INR",
                                        "n": None, "f": "fp", "t": "payout-link-requested",
                                        "p": 2, "o": 7})


def created(event_id: str = "e-c", digest: str = "h1", link_id: str = "poutlk_A",
            status: str = "issued", amount: int = 1000) -> Fact:
    return Fact(REF, Kind.CREATED, T0 + 10, {"k": KEY, "e": event_id, "h": digest, "o": 1,
                                             "m": "m_1", "cn": "razorpay", "id": link_id,
                                             "s": status, "r": REF, "a": amount, "c": "INR"})


def failed(event_id: str = "e-f") -> Fact:
    return Fact(REF, Kind.FAILED_LINK, T0 + 10, {"k": KEY, "e": event_id, "h": "hf", "o": 1,
                                                 "m": "m_1", "cn": "razorpay",
                                                 "code": "provider_rejected"})


def refused() -> Fact:
    return Fact(REF, Kind.FAILED_REQUEST, T0 + 10, {"k": KEY, "e": "e-r", "h": "hr", "o": 2,
                                                    "m": "m_1", "cn": None,
                                                    "code": "invalid_request"})


def change(status: str, offset: int) -> Fact:
    return Fact(REF, Kind.STATUS, T0 + 20 + offset, {"k": KEY, "e": f"s-{status}", "h": status,
                                                     "o": offset, "s": status, "at": 0,
                                                     "r": REF})


def held(link_id: str = "poutlk_A", status: str = "issued", amount: int | None = 1000,
         settled: bool = False, currency: str | None = "INR") -> Fact:
    return Fact(REF, Kind.HELD, T0 + 5, {"cn": "razorpay", "id": link_id, "s": status,
                                         "a": amount, "c": currency, "fin": settled})


def absent() -> Fact:
    return f.absent(REF, "razorpay")


def classes(*facts_: Fact) -> tuple[str, ...]:
    finding = c.classify(REF, facts_)
    assert finding is not None
    return finding.classes


# --- the classes --------------------------------------------------------------------


def test_a_created_link_the_provider_holds_as_we_said_is_matched() -> None:
    assert classes(request(), created(), held()) == (c.MATCHED,)


def test_a_failed_link_the_provider_proves_absent_is_matched() -> None:
    assert classes(request(), failed(), absent()) == (c.MATCHED,)


def test_a_request_without_any_outcome_and_nothing_at_the_provider_is_lost() -> None:
    finding = c.classify(REF, [request(), absent()])
    assert finding is not None and finding.classes == (c.LOST,)
    assert finding.detail["request_at"] == {"topic": "payout-link-requested", "partition": 2,
                                            "offset": 7}


def test_a_link_the_provider_holds_with_no_outcome_of_ours_is_an_orphan() -> None:
    finding = c.classify(REF, [request(), held()])
    assert finding is not None and finding.classes == (c.ORPHAN,) and finding.money_danger
    assert "request_at" in finding.detail  # a re-drive can adopt it


def test_an_orphan_whose_request_we_never_read_is_still_reported_by_reference() -> None:
    finding = c.classify(REF, [held()])
    assert finding is not None and finding.classes == (c.ORPHAN,)
    assert finding.link_key is None and "request_at" not in finding.detail


def test_two_terminal_outcomes_are_a_duplicate() -> None:
    assert classes(request(), created(), failed(), held()) == (c.DUPLICATE,)


def test_one_event_id_with_two_contents_is_a_duplicate_and_a_republish_is_not() -> None:
    assert classes(request(), created(digest="h1"), created(digest="h2"), held()) == \
        (c.DUPLICATE,)
    assert classes(request(), created(digest="h1"), created(digest="h1"), held()) == \
        (c.MATCHED,)


def test_two_links_at_the_provider_for_one_key_are_a_duplicate() -> None:
    assert classes(request(), created(), held("poutlk_A"), held("poutlk_B")) == (c.DUPLICATE,)


def test_a_created_link_the_provider_proves_absent_is_unknown_at_provider() -> None:
    assert classes(request(), created(), absent()) == (c.UNKNOWN_AT_PROVIDER,)


def test_a_failure_for_a_link_the_provider_holds_is_a_false_failure() -> None:
    finding = c.classify(REF, [request(), failed(), held()])
    assert finding is not None and finding.classes == (c.FALSE_FAILURE,) and finding.money_danger


@pytest.mark.parametrize(("provider", "field"), [
    ({"amount": 1100}, "amount"), ({"currency": "USD"}, "currency"),
    ({"link_id": "poutlk_Z"}, "connector_payout_id")])
def test_a_different_amount_currency_or_link_id_at_the_provider_is_a_mismatch(
        provider: dict[str, Any], field: str) -> None:
    finding = c.classify(REF, [request(), created(), held(**provider)])
    assert finding is not None and finding.classes == (c.MISMATCH,)
    assert list(finding.detail["mismatched"]) == [field]


def test_an_amount_the_provider_does_not_state_is_not_a_mismatch() -> None:
    assert classes(request(), created(), held(amount=None, currency=None)) == (c.MATCHED,)


def test_a_settled_provider_status_we_never_told_is_drift() -> None:
    finding = c.classify(REF, [request(), created(), held(status="processed", settled=True)])
    assert finding is not None and finding.classes == (c.DRIFT,)
    assert finding.detail["our_status"] == "issued"


def test_our_last_status_is_the_latest_change_by_offset() -> None:
    facts_ = [request(), created(), change("processed", 5), change("processing", 4),
              held(status="processed", settled=True)]
    assert classes(*facts_) == (c.MATCHED,)


def test_a_provider_status_still_moving_is_not_drift() -> None:
    assert classes(request(), created(), held(status="processing")) == (c.MATCHED,)


def test_a_provider_that_could_not_be_asked_makes_the_link_unverified_never_matched() -> None:
    assert classes(request(), created(), f.unverified(REF, "razorpay", "throttled")) == \
        (c.UNVERIFIED,)
    assert classes(request(), f.unverified(REF, "razorpay", "throttled")) == \
        (c.LOST, c.UNVERIFIED)


def test_requests_refused_before_any_link_are_request_failed_not_exceptions() -> None:
    finding = c.classify(REF, [request(), refused()])
    assert finding is not None and finding.classes == (c.REQUEST_FAILED,)
    assert not finding.exceptional


def test_a_link_outside_the_window_is_not_classified() -> None:
    assert c.classify(REF, [change("processed", 1)]) is None  # only a status change
    assert c.classify(REF, [request(at=T0 - 1), created()],
                      in_scope=lambda at: at >= T0) is None


# --- facts from records ---------------------------------------------------------------


def test_facts_from_real_events_carry_what_the_classes_need() -> None:
    r = {"event_id": "r1", "merchant_id": "m_1", "merchant_payout_id": "p-1",
         "amount": {"minor_amount": 1000, "currency": "INR"}}
    where = f.Coordinates("payout-link-created", 1, 9, T0)
    raw = events.encode(events.created_event(
        r, connector="razorpay", connector_payout_id="poutlk_A", url="https://x/y",
        payout_status="REQUIRES_PAYOUT_METHOD_DATA", connector_status="issued", reference=REF,
        expires_at=None))
    fact = f.from_outcome(raw, where)
    assert fact is not None and fact.kind is Kind.CREATED and fact.reference == REF
    assert (fact.data["id"], fact.data["a"], fact.data["c"]) == ("poutlk_A", 1000, "INR")
    assert fact.data["h"] == f.digest(raw)
    assert f.from_outcome(b"not json", where) is None
    assert f.from_request(b"\xff", where) is None


# --- the providers' list pages ---------------------------------------------------------


def razorpay_item(n: int, receipt: str | None) -> dict[str, Any]:
    return {"id": f"poutlk_{n:014d}", "entity": "payout_link", "status": "issued",
            "amount": 1000 + n, "currency": "INR", "receipt": receipt,
            "created_at": 1_800_000_000 + n}


def test_a_razorpay_page_keeps_our_links_and_pages_on_by_skip() -> None:
    items = [razorpay_item(n, link_reference(f"m:{n}") if n % 2 else "someone-elses")
             for n in range(100)]
    page = razorpay_ledger.read_list_page(
        HttpAnswer(200, {}, orjson.dumps({"entity": "collection", "count": 100,
                                          "items": items})), "200")
    assert isinstance(page, ListPage)
    assert len(page.links) == 50 and page.next_cursor == "300" and page.items == 100
    assert page.links[0].amount_minor == 1001 and page.links[0].created_at_ms == 1_800_000_001_000
    last = razorpay_ledger.read_list_page(
        HttpAnswer(200, {}, orjson.dumps({"items": items[:3]})), "300")
    assert isinstance(last, ListPage) and last.next_cursor is None


def test_a_razorpay_list_call_names_the_window_in_unix_seconds() -> None:
    call = razorpay_ledger.list_call(1_800_000_000.5, 1_800_000_100.2, None)
    assert dict(call.params) == {"from": "1800000000", "to": "1800000101", "count": "100",
                                 "skip": "0"}


def test_a_razorpay_page_that_proves_nothing_is_transient_or_a_refusal() -> None:
    assert isinstance(razorpay_ledger.read_list_page(HttpAnswer(503, {}, b""), None), Transient)
    throttled = razorpay_ledger.read_list_page(HttpAnswer(429, {"retry-after": "3"}, b""), None)
    assert isinstance(throttled, Transient) and throttled.retry_after_s == 3
    assert isinstance(razorpay_ledger.read_list_page(HttpAnswer(401, {}, b"{}"), None), Rejected)
    assert isinstance(razorpay_ledger.read_list_page(HttpAnswer(200, {}, b"[]"), None), Transient)
    ours_unreadable = {"items": [{"receipt": link_reference("m:1"), "id": 5}]}
    assert isinstance(razorpay_ledger.read_list_page(
        HttpAnswer(200, {}, orjson.dumps(ours_unreadable)), None), Transient)


def revolut_item(us: int, request_id: str | None, amount: float = 12.34) -> dict[str, Any]:
    return {"id": f"5f1c6f38-0000-4000-8000-{us % 10**12:012d}", "state": "active",
            "request_id": request_id, "amount": amount, "currency": "GBP",
            "created_at": format_timestamp_us(us)}


def test_a_revolut_page_pages_back_by_the_oldest_time_until_past_the_window() -> None:
    since = 1_800_000_000.0
    base = int(since * 1_000_000)
    items = [revolut_item(base + 3_000_000 - i, link_reference(f"m:{i}")) for i in range(3)]
    page = revolut_ledger.read_list_page(HttpAnswer(200, {}, orjson.dumps(items)), since, None)
    assert isinstance(page, ListPage) and len(page.links) == 3
    assert page.next_cursor == str(base + 3_000_000 - 2)
    assert page.links[0].amount_minor == 1234  # major units, through their decimal text
    older = [revolut_item(base - 5, link_reference("m:9")), revolut_item(base + 1, None)]
    done = revolut_ledger.read_list_page(HttpAnswer(200, {}, orjson.dumps(older)), since, str(base + 10))
    assert isinstance(done, ListPage) and done.next_cursor is None and done.links == ()


def test_a_revolut_page_that_ignores_created_before_is_not_paged_for_ever() -> None:
    items = [revolut_item(2_000_000_000_000_000, None)]
    answer = revolut_ledger.read_list_page(HttpAnswer(200, {}, orjson.dumps(items)),
                                           1_800_000_000.0, str(1_900_000_000_000_000))
    assert isinstance(answer, Transient) and answer.reason == "list_not_progressing"


def test_a_revolut_amount_that_is_not_exact_in_minor_units_is_not_guessed() -> None:
    assert revolut_ledger.minor_amount(0.1 + 0.2, "GBP") is None
    assert revolut_ledger.minor_amount(12.5, "GBP") == 1250
    assert revolut_ledger.minor_amount("12.5", "GBP") is None


# --- the join ------------------------------------------------------------------------------


def test_the_join_hands_back_each_links_facts_together_and_resolves_aliases(
        tmp_path: Path) -> None:
    store = FactStore(tmp_path / "facts.sqlite")
    other = link_reference("m_1:p-2")
    legacy = "pl_" + "0" * 32
    store.add_all([held(), Fact(other, Kind.REQUEST, T0, {"k": "m_1:p-2"}), request(),
                   Fact(legacy, Kind.HELD, T0, {"id": "poutlk_L"})])
    store.alias(legacy, other)
    grouped = {ref: [x.kind for x in facts_] for ref, facts_ in store.links()}
    assert grouped == {REF: [Kind.REQUEST, Kind.HELD], other: [Kind.REQUEST, Kind.HELD]}
    assert [ref for ref, _ in store.references(having=(Kind.REQUEST,),
                                               without=(Kind.HELD,))] == []
    store.close()
    assert not (tmp_path / "facts.sqlite").exists()


# --- the report ---------------------------------------------------------------------------


def findings() -> list[c.Finding]:
    out = []
    plan = [(c.MATCHED, 40), (c.REQUEST_FAILED, 3), (c.LOST, 2), (c.ORPHAN, 1), (c.DRIFT, 4),
            (c.MISMATCH, 1)]
    n = 0
    for name, count in plan:
        for _ in range(count):
            key = f"m_1:p-{n}"
            out.append(c.Finding(link_reference(key), key, "m_1", "razorpay", (name,),
                                 T0 + n * 60_000, {"provider_link_id": f"poutlk_{n}"}))
            n += 1
    return out


def test_the_verdict_csv_and_exit_code_follow_the_classes(tmp_path: Path) -> None:
    tally = report.Tally(T0, T0 + 3_600_000)
    handle, writer = report.open_csv(tmp_path / "x.csv")
    for finding in findings():
        tally.add(finding, writer)
    handle.close()
    assert tally.exit_code == report.EXIT_MONEY_DANGER
    line = tally.verdict()
    assert "MONEY DANGER: 51 links: 40 matched, 3 request_failed, 1 orphan, 1 mismatch, " \
           "2 lost, 4 drift" in line
    with (tmp_path / "x.csv").open(newline="") as h:
        rows = list(csv.DictReader(h))
    assert sorted(r["class"] for r in rows) == ["drift"] * 4 + ["lost"] * 2 + \
        ["mismatch", "orphan"]
    assert sum(sum(b.values()) for b in tally.timeline) == 51
    calm = report.Tally(T0, T0 + 1000)
    calm.add(findings()[0])
    assert calm.exit_code == report.EXIT_CLEAN and "OK" in calm.verdict()
    lost = report.Tally(T0, T0 + 1000)
    lost.add(findings()[43])
    assert lost.exit_code == report.EXIT_EXCEPTIONS


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or \
        shutil.which("google-chrome")


def test_the_html_report_renders_its_chart_and_numbers_in_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must render the HTML report in Chromium (.ci/run installs it)")
        pytest.skip("no Chromium here (apt-get install chromium)")
    tally = report.Tally(T0, T0 + 3_600_000)
    for finding in findings():
        tally.add(finding)
    page = tmp_path / "reconcile.html"
    report.write_html(tally, page)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert 'data-rendered="yes"' in dom  # the page's script ran to its end
    drawn: dict[str, int] = {}
    for name, count in re.findall(r'<rect[^>]*data-class="(\w+)"[^>]*data-count="(\d+)"', dom):
        drawn[name] = drawn.get(name, 0) + int(count)
    assert drawn == {name: n for name, n in tally.classes.items() if n}
    legend = dict(re.findall(r'<li data-class="(\w+)" data-count="(\d+)"', dom))
    assert legend == {name: str(n) for name, n in tally.classes.items() if n}
    assert tally.verdict() in dom
    shot = tmp_path / "reconcile.png"
    subprocess.run([browser, *flags, "--window-size=1100,900", f"--screenshot={shot}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 10_000  # a drawn page, not a blank one


# --- the commands' arguments -------------------------------------------------------------


@pytest.mark.parametrize(("argv", "needle"), [
    (["reconcile", "--since", "yesterday"], "--since"),
    (["reconcile", "--since", "2026-12-07T10:00:00"], "no offset"),
    (["reconcile", "--since", "2026-12-07T10:00:00Z", "--until", "2026-12-07T09:00:00Z"],
     "ends before it starts"),
    (["reconcile", "--since", "2026-12-07T10:00:00Z", "--provider", "paypal"], "paypal"),
    (["replay"], "exactly one of"),
    (["replay", "--to-earliest", "--to-offset", "3"], "exactly one of"),
    (["redrive", "--since", "soon"], "--since"),
])
def test_bad_arguments_get_one_clear_line_and_exit_2(argv: list[str], needle: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_bad_configuration_stops_reconcile_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli import main

    monkeypatch.setenv("PAYOUT_RECONCILE_RATE_PER_S", "fast")
    assert main(["reconcile", "--since", "2026-12-07T10:00:00Z"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PAYOUT_RECONCILE_RATE_PER_S" in err[0]


def test_the_provider_asked_is_the_outcomes_connector_never_a_new_route() -> None:
    """DESIGN.md rule 3: once an outcome names a connector, reconciliation asks that
    connector, whatever routing would choose for the request today."""
    from streams.config import load_settings
    from streams.reconcile.holdings import connector_of

    settings = load_settings({})
    said = Fact(REF, Kind.CREATED, T0, {**created().data, "cn": "cashfree"})
    assert connector_of([request(), said], settings) == ("cashfree", "m_1")
    assert connector_of([request()], settings) == ("razorpay", "m_1")  # INR, no record
