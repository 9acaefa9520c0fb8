"""Parsing, validation and the events we emit, each checked against its schema."""
from __future__ import annotations

import base64
import hashlib

import orjson
import pytest

from streams import events
from streams.devkit.traffic import INVALID_VARIANTS, invalid_request, valid_request


def assert_schema_valid(event: dict) -> None:
    errors = list(events.validator_for(event["event_type"]).iter_errors(event))
    assert errors == [], [e.message for e in errors]


def test_valid_request_passes() -> None:
    assert events.validate_request(valid_request(1)) is None


@pytest.mark.parametrize("n", range(len(INVALID_VARIANTS)))
def test_each_invalid_variant_names_its_field(n: int) -> None:
    request, field = invalid_request(n)
    invalid = events.validate_request(request)
    assert invalid is not None and invalid.field == field and invalid.message


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.update(amount={"minor_amount": "100", "currency": "INR"}), "amount.minor_amount"),
    (lambda r: r["amount"].update(minor_amount=10**16), "amount.minor_amount"),
    (lambda r: r.update(unexpected=True), "unexpected"),
    (lambda r: r.pop("merchant_payout_id"), "merchant_payout_id"),
    (lambda r: r.update(merchant_id="has space"), "merchant_id"),
    (lambda r: r["customer"].pop("email") and r["customer"].pop("phone_number"),
     "customer.phone_number"),
    (lambda r: r.update(occurred_at="yesterday"), "occurred_at"),
    (lambda r: r.update(metadata={str(i): "v" for i in range(16)}), "metadata"),
    (lambda r: r.update(metadata={"k": 5}), "metadata.k"),
    (lambda r: r.update(schema_version=2), "schema_version"),
])
def test_validation_names_the_offending_field(mutate, field) -> None:
    request = valid_request(3)
    mutate(request)
    invalid = events.validate_request(request)
    assert invalid is not None and invalid.field == field


def test_huge_value_is_not_echoed_whole() -> None:
    request = valid_request(1)
    request["description"] = "x" * 1_000_000
    invalid = events.validate_request(request)
    assert invalid is not None and invalid.field == "description"
    assert len(invalid.message) < 400


@pytest.mark.parametrize("raw, code", [
    (b"\xff\xfe", "unparseable"), (b"{", "unparseable"), (b"", "unparseable"),
    (None, "unparseable"), (b"[1]", "not_an_object"), (b"42", "not_an_object"),
    (b"[" * 5000 + b"]" * 5000, "unparseable"),
])
def test_unparseable_bytes(raw, code) -> None:
    out = events.parse_request(raw)
    assert isinstance(out, events.Unparseable) and out.code == code


def test_fingerprint_ignores_envelope_but_not_content() -> None:
    a = valid_request(5)
    b = dict(a, event_id="another", occurred_at="2030-01-01T00:00:00Z")
    c = orjson.loads(orjson.dumps(a))
    c["amount"]["minor_amount"] += 1
    assert events.request_fingerprint(a) == events.request_fingerprint(b)
    assert events.request_fingerprint(a) != events.request_fingerprint(c)


def test_created_event_is_deterministic_and_valid() -> None:
    request = valid_request(9)
    kwargs = dict(connector="razorpay", connector_payout_id="poutlk_1", url="https://rzp.io/i/x",
                  payout_status="REQUIRES_PAYOUT_METHOD_DATA", connector_status="issued",
                  reference="pl_X", expires_at=None)
    one = events.created_event(request, **kwargs)
    two = events.created_event(dict(request, event_id="other"), **kwargs)
    assert one["event_id"] == two["event_id"]
    assert one["link_key"] == "m_demo:run-0000009"
    assert_schema_valid(one)


def test_failed_events_are_valid_and_distinct_per_cause() -> None:
    request = valid_request(2)
    rejected = events.failed_event(request, code="provider_rejected", message="bad amount",
                                   field="amount.minor_amount", status_code=400,
                                   connector="razorpay",
                                   connector_details={"code": "BAD_REQUEST_ERROR",
                                                      "message": "bad", "reason": "x",
                                                      "field": "amount"})
    conflict = events.failed_event(request, code="idempotency_conflict", message="m",
                                   field=None, scope=events.REQUEST,
                                   discriminator="conflict:abc")
    bad, field = invalid_request(4)
    invalid = events.invalid_request_event(bad, events.validate_request(bad))
    for event in (rejected, conflict, invalid):
        assert_schema_valid(event)
    assert len({rejected["event_id"], conflict["event_id"], invalid["event_id"]}) == 3
    assert invalid["error"]["field"] == field and invalid["error"]["code"] == "invalid_request"
    assert rejected["scope"] == "link" and rejected["payout_status"] == "FAILED"
    assert conflict["scope"] == invalid["scope"] == "request"
    assert conflict["payout_status"] is invalid["payout_status"] is None


def test_a_request_failure_may_not_claim_the_link_failed() -> None:
    """A consumer reading by link key must not see FAILED for a link that may exist."""
    request = valid_request(3)
    event = events.failed_event(request, code="idempotency_conflict", message="m", field=None,
                                scope=events.REQUEST)
    event["payout_status"] = "FAILED"
    assert list(events.validator_for(events.FAILED).iter_errors(event))
    link = events.failed_event(request, code="invalid_request", message="m", field=None)
    assert list(events.validator_for(events.FAILED).iter_errors(link)), \
        "invalid_request is never the failure of a link"


def test_an_over_long_id_is_never_truncated_into_another_key() -> None:
    long_id = "refund-42" + "x" * 60  # 69 characters: its first 64 could be a real id
    request = dict(valid_request(5), merchant_payout_id=long_id)
    event = events.invalid_request_event(request, events.validate_request(request))
    assert_schema_valid(event)
    assert event["link_key"] is None
    assert event["merchant_payout_id"] == long_id  # the raw id, whole
    assert event["error"]["field"] == "merchant_payout_id"
    huge = dict(valid_request(5), merchant_payout_id="y" * 5000)
    event = events.invalid_request_event(huge, events.validate_request(huge))
    assert_schema_valid(event)
    assert event["link_key"] is None and event["merchant_payout_id"] is None


def test_an_invalid_request_names_its_own_key_only_when_its_ids_are_valid() -> None:
    bad, _ = invalid_request(1)
    event = events.invalid_request_event(bad, events.validate_request(bad))
    assert event["link_key"] == f"{bad['merchant_id']}:{bad['merchant_payout_id']}"


def test_dead_letters_of_huge_records_stay_bounded_and_identify_the_original() -> None:
    value = b"\x00" * 3_000_000
    key = b"k" * 200_000
    source = events.SourceRecord("payout-link-requested", 1, 9, key, value,
                                 [("h", b"v" * 5000)] * 100, None)
    event = events.dead_letter_event(source, events.Unparseable("unparseable", "x" * 5000))
    assert_schema_valid(event)
    assert len(events.encode(event)) < 300_000  # far below the producer's 1 MB limit
    assert event["raw_value_size"] == 3_000_000 and event["raw_value_truncated"] is True
    assert event["raw_value_sha256"] == hashlib.sha256(value).hexdigest()
    assert base64.b64decode(event["raw_value_b64"]) == value[:events.MAX_DEAD_LETTER_VALUE_BYTES]
    assert event["raw_key_size"] == 200_000 and event["raw_key_truncated"] is True
    assert len(event["headers"]) == events.MAX_DEAD_LETTER_HEADERS and event["headers_truncated"]
    assert events.outcome_record_key(key) == b"#sha256=" + hashlib.sha256(key).hexdigest().encode()
    assert events.outcome_record_key(b"short") == b"short"


def test_invalid_request_with_non_string_ids_still_yields_a_valid_event() -> None:
    request = {"merchant_id": {"nested": [1, 2]}, "merchant_payout_id": None}
    event = events.invalid_request_event(request, events.validate_request(request))
    assert_schema_valid(event)


def test_dead_letter_keeps_raw_bytes_and_source() -> None:
    source = events.SourceRecord("payout-link-requested", 2, 17, b"k", b"\xff\x00",
                                 [("trace", b"abc")], 1700000000.0)
    event = events.dead_letter_event(source, events.Unparseable("unparseable", "bad"))
    assert_schema_valid(event)
    assert base64.b64decode(event["raw_value_b64"]) == b"\xff\x00"
    assert event["raw_value_truncated"] is False and event["raw_value_size"] == 2
    assert event["source"] == {"topic": "payout-link-requested", "partition": 2, "offset": 17,
                               "timestamp": 1700000000.0}
    assert event["event_id"] == events.dead_letter_event(
        source, events.Unparseable("unparseable", "bad"))["event_id"]


def test_examples_match_their_schemas() -> None:
    examples = sorted((events.SCHEMA_DIR / "examples").glob("*.json"))
    assert {p.name.split(".")[0] for p in examples} >= {
        "payout-link-requested", "payout-link-created", "payout-link-failed",
        "payout-link-dead-letter", "payout-link-status-changed", "payout-link-cancel-requested",
        "payout-link-cancel-failed"}
    for path in examples:
        event = orjson.loads(path.read_bytes())
        assert_schema_valid(event)


def test_an_outcome_about_one_record_is_the_same_event_when_published_again(monkeypatch) -> None:
    """Issue 10: a request failure or dead letter re-published after a crash or a
    take-over carries the same content under its event id; its time is the record's."""
    from streams import lifecycle

    record = events.SourceRecord(topic="payout-link-requested", partition=3, offset=17,
                                 key=b"k", value=b"{", timestamp=1_795_348_607.306)
    offset = lifecycle.SourceOffset("payout-link-requested", 3, 17, 1_795_348_607.306)
    request = valid_request(1, run="t")

    def published() -> list[dict]:
        return [events.dead_letter_event(record, events.Unparseable("unparseable", "bad")),
                events.failed_event(request, code="idempotency_conflict", message="m", field=None,
                                    scope=events.REQUEST, discriminator="conflict:x",
                                    source=offset)]

    first = published()
    monkeypatch.setattr(events, "now_iso", lambda: "2099-01-01T00:00:00.000Z")  # later
    assert published() == first
    assert {e["occurred_at"] for e in first} == {"2026-11-22T11:56:47.306Z"}
    # The offset is the record's identity; its time is not compared.
    assert offset == lifecycle.SourceOffset("payout-link-requested", 3, 17)
