"""Bad input, fuzzed: whatever arrives, the worker classifies it and never raises.

Every record ends as a valid request, an ``invalid_request`` (``events.InvalidRequest``
naming a field, with a short clear message) or a dead letter (``events.Unparseable``
with a code), and the event built for it matches its schema. Hypothesis drives the
parser, the validator and the Razorpay transformers with arbitrary input; a fixed
corpus pins the outcome of each known kind of hostile record.

Bugs the fuzzing found are fixed and pinned by the regression tests at the end of the
file. Should a new one be found and left open, list it in ``KNOWN_BUGS`` (the
properties then tolerate exactly that exception raised in that function) with a strict
``xfail`` test holding its minimal input.
"""
from __future__ import annotations

import base64
import json
import math
import traceback
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, note, settings, strategies as st

from streams import events
from streams.connectors.base import (
    HttpAnswer,
    HttpCall,
    LinkCreated,
    NotFound,
    Rejected,
    Transient,
    Unknown,
    link_reference,
)
from streams.connectors.razorpay import RazorpayAccount, RazorpayConnector
from streams.devkit.traffic import valid_request

ACCOUNT = RazorpayAccount("rzp_test_x", "secret-never-logged", "2323230041626905")
CONNECTOR = RazorpayConnector()
REFERENCE = link_reference("m_demo:run-0000011")
OUTCOMES = (LinkCreated, Rejected, Transient, Unknown, NotFound)
SOURCE = dict(topic=events.REQUESTED, partition=0, offset=7, key=b"k")
REQUEST_SCHEMA = events.validator_for(events.REQUESTED).schema
DEAD_LETTER_CODES = frozenset(events.validator_for(events.DEAD_LETTER).schema[
    "properties"]["error"]["properties"]["code"]["enum"])
MAX_MESSAGE = 400
STREAMS_DIR = Path(events.__file__).resolve().parent

# Sized for a 2-core CI machine: the whole file runs in a few seconds. No example
# database: nothing is written into the work tree; a failure prints its example.
FUZZ = settings(max_examples=250, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- known bugs (reported, not fixed here) -------------------------------------------

KNOWN_BUGS: dict[tuple[str, str], tuple[tuple[type[BaseException], ...], str]] = {
    # (file, function where the exception is raised): (exception types, what).
    # Empty: every bug the fuzzing found is fixed and kept below as a regression test.
}


def known_bug(exc: BaseException) -> str | None:
    """The ``KNOWN_BUGS`` entry ``exc`` is an instance of, judged by where it was raised."""
    ours = [f for f in traceback.extract_tb(exc.__traceback__)
            if Path(f.filename).resolve().is_relative_to(STREAMS_DIR)]
    if not ours:
        return None
    where = (Path(ours[-1].filename).name, ours[-1].name)
    types, what = KNOWN_BUGS.get(where, ((), ""))
    return what if isinstance(exc, types) else None


def tolerating_known_bugs(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, or ``None`` when it fails with a known (reported) bug."""
    try:
        return fn(*args)
    except Exception as exc:
        what = known_bug(exc)
        if what is None:
            raise
        event(f"known bug: {what}")
        return None


# --- the classification the processor does, without Kafka ----------------------------


def assert_schema_valid(evt: dict[str, Any]) -> None:
    errors = list(events.validator_for(evt["event_type"]).iter_errors(evt))
    assert errors == [], [e.message[:200] for e in errors]


def assert_clear_invalid(invalid: events.InvalidRequest) -> None:
    assert invalid.field is None or (isinstance(invalid.field, str) and invalid.field)
    assert isinstance(invalid.message, str) and invalid.message.strip()
    assert len(invalid.message) < MAX_MESSAGE


def assert_clear_unparseable(dead: events.Unparseable) -> None:
    assert dead.code in DEAD_LETTER_CODES
    assert isinstance(dead.message, str) and dead.message.strip()
    assert len(dead.message) < MAX_MESSAGE


def classify(raw: bytes | None) -> tuple[str, Any, dict[str, Any] | HttpCall | None]:
    """("dead", Unparseable, event) | ("invalid", InvalidRequest, event) | ("valid", request, call).

    Mirrors ``RequestProcessor.accept``: parse → dead letter; validate → invalid_request;
    otherwise the provider call is built. Every event built is checked against its schema.
    """
    request = events.parse_request(raw)
    if isinstance(request, events.Unparseable):
        assert_clear_unparseable(request)
        dead = events.dead_letter_event(events.SourceRecord(**SOURCE, value=raw), request)
        assert_schema_valid(dead)
        return "dead", request, dead
    assert isinstance(request, dict)
    invalid = events.validate_request(request)
    if invalid is not None:
        assert isinstance(invalid, events.InvalidRequest)
        assert_clear_invalid(invalid)
        failed = events.invalid_request_event(request, invalid)
        assert_schema_valid(failed)
        assert failed["error"]["code"] == "invalid_request"
        assert failed["error"]["field"] == invalid.field
        return "invalid", invalid, failed
    call = tolerating_known_bugs(CONNECTOR.create_call, request, REFERENCE, ACCOUNT)
    assert call is None or isinstance(call, HttpCall)
    return "valid", request, call


# --- strategies ----------------------------------------------------------------------

FIELD_NAMES = sorted(set(REQUEST_SCHEMA["properties"]) | {
    "minor_amount", "currency", "name", "email", "phone_number", "phone_country_code", "id",
    "shipping_address", "billing_address", "sms", "order_id"})
keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=12)
huge_ints = st.sampled_from([
    0, -1, 10**14, 10**14 + 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63),
    -(2**63) - 1, 10**30, -(10**30), 10**400])
ints = st.integers() | st.integers(min_value=-(10**40), max_value=10**40) | huge_ints
texts = st.text(max_size=40) | st.sampled_from([
    "", "INR", "inr", "XYZ", "razorpay", "INSTANT", "2030-01-01T00:00:00Z", "a@b.co",
    "https://x.example/", "\x00", "\ufeff", "9876543210"])
scalars = st.none() | st.booleans() | ints | st.floats() | texts
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
    max_leaves=25)


def encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # integers beyond 64 bits: orjson refuses, stdlib writes them
        return json.dumps(value, ensure_ascii=False).encode("utf-8")


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """Date-times the schema's format checker accepts, in their less common spellings too."""
    day = draw(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
    clock = f"{draw(st.integers(0, 23)):02d}:{draw(st.integers(0, 59)):02d}:{draw(st.integers(0, 59)):02d}"
    fraction = draw(st.sampled_from(["", ".1", ".12", ".123", ".1234", ".123456", ".123456789"]))
    offset = draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"]) | st.builds(
        "{}{:02d}:{:02d}".format, st.sampled_from("+-"), st.integers(0, 23), st.integers(0, 59)))
    return f"{day.isoformat()}{draw(st.sampled_from('Tt'))}{clock}{fraction}{offset}"


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    """Nearly JSON: an encoded value with a few bytes inserted, dropped or flipped."""
    raw = bytearray(encode(draw(json_values)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        op = draw(st.sampled_from(["insert", "delete", "flip"]))
        if op == "insert":
            raw[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif raw and at < len(raw):
            if op == "delete":
                del raw[at]
            else:
                raw[at] ^= draw(st.integers(1, 255))
    return bytes(raw)


# --- properties ----------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=512) | json_values.map(encode) | corrupted())
def test_arbitrary_bytes_parse_to_an_object_or_a_dead_letter(raw: bytes) -> None:
    out = events.parse_request(raw)
    if isinstance(out, events.Unparseable):
        assert_clear_unparseable(out)
    else:
        assert isinstance(out, dict)


@FUZZ
@given(value=json_values | st.dictionaries(keys, json_values, max_size=10))
def test_arbitrary_json_is_classified_without_raising(value: Any) -> None:
    kind, _, _ = classify(encode(value))
    event(kind)


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(FIELD_NAMES[:6]) | keys, json_values),
                      max_size=6))
def test_repeated_keys_are_dead_lettered_never_merged(pairs: list[tuple[str, Any]]) -> None:
    raw = b"{" + b",".join(orjson.dumps(k) + b":" + encode(v) for k, v in pairs) + b"}"
    names = [k for k, _ in pairs]
    out = events.parse_request(raw)
    if isinstance(out, dict):
        assert len(set(names)) == len(names) and list(out) == names
        return
    assert out.code in ("duplicate_key", "unparseable")  # unparseable: a NaN or 10**400 inside
    if out.code == "duplicate_key":
        assert len(set(names)) < len(names)
        assert out.message.startswith("duplicate key '") and "top-level object" in out.message
        first_repeated = next(k for i, k in enumerate(names) if k in names[:i])
        if first_repeated.isidentifier() and len(first_repeated) <= 40:
            assert out.message.startswith(f"duplicate key '{first_repeated}' in")
    event(out.code)


@FUZZ
@given(pairs=st.lists(st.tuples(st.sampled_from(["a", "b", 'x":', "\\", ""]),
                                st.sampled_from(['"v"', '"\\":"', '1', '{"a":1}', '{"a":1,"a":2}',
                                                 '[{"b":"\\u0022:"}]', 'null'])),
                      max_size=5),
       spaces=st.lists(st.sampled_from(["", " ", "\t", "\r\n  "]), min_size=10, max_size=10))
def test_the_fast_duplicate_precheck_never_hides_a_repeated_key(
        pairs: list[tuple[str, str]], spaces: list[str]) -> None:
    """Whitespace around colons, `":` inside strings, nested repeats: the counting
    pre-check may send clean text to the exact check, never let a repeat through."""
    raw = ("{" + ",".join(f"{spaces[i % 10]}{json.dumps(k)}{spaces[(i + 3) % 10]}:"
                          f"{spaces[(i + 7) % 10]}{v}" for i, (k, v) in enumerate(pairs))
           + "}").encode()
    exact = events._duplicate_key(raw)
    out = events.parse_request(raw)
    if exact is None:
        assert isinstance(out, dict)
    else:
        assert isinstance(out, events.Unparseable) and out.code == "duplicate_key"


# Paths of a valid request that one hostile value replaces, top level and nested.
REPLACEABLE = sorted(REQUEST_SCHEMA["properties"]) + [
    "amount.minor_amount", "amount.currency", "customer.name", "customer.email",
    "customer.phone_number", "customer.phone_country_code", "customer.id", "notify.sms",
    "metadata.order_id", "address.billing_address"]


def replaced(path: str, value: Any) -> dict[str, Any]:
    request = valid_request(11)
    *parents, name = path.split(".")
    target = request
    for parent in parents:
        target = target.setdefault(parent, {})
    target[name] = value
    return request


@FUZZ
@given(path=st.sampled_from(REPLACEABLE),
       value=json_values | rfc3339() | st.integers(min_value=-5, max_value=10**14 + 5))
def test_one_hostile_field_is_blamed_on_that_field(path: str, value: Any) -> None:
    kind, detail, call = classify(encode(replaced(path, value)))
    event(f"{path}: {kind}")
    if kind == "dead":  # only values JSON cannot carry: 10**400, NaN, ±Infinity
        assert detail.code == "unparseable", detail
    elif kind == "invalid":
        assert detail.field == path or detail.field.startswith(path + "."), (detail, path)
    elif call is not None:
        assert call.method == "POST" and call.json["receipt"] == REFERENCE
        assert call.headers["X-Payout-Idempotency"] == REFERENCE


@FUZZ
@given(expires_at=rfc3339())
def test_any_accepted_expiry_becomes_a_unix_timestamp(expires_at: str) -> None:
    request = dict(valid_request(11), expires_at=expires_at)
    if events.validate_request(request) is not None:
        event("rejected by the schema")
        return
    call = tolerating_known_bugs(CONNECTOR.create_call, request, REFERENCE, ACCOUNT)
    if call is not None:
        assert isinstance(call.json["expire_by"], int)
        event("sent")


razorpay_values = json_values | st.sampled_from([
    "poutlk_1", "https://rzp.io/i/x", "issued", "processed", REFERENCE, 1893456000, 0])
entities = st.fixed_dictionaries({}, optional={
    name: razorpay_values for name in ("id", "short_url", "status", "expire_by", "receipt",
                                       "created_at")})
# What Razorpay would send for a link, with each field now and then replaced by anything.
links = st.fixed_dictionaries(
    {"id": st.sampled_from(["poutlk_1", "poutlk_2"]) | razorpay_values,
     "short_url": st.just("https://rzp.io/i/x") | razorpay_values,
     "receipt": st.just(REFERENCE) | razorpay_values},
    optional={"status": st.sampled_from(["issued", "processed", "cancelled", "new"])
              | razorpay_values,
              "expire_by": st.integers(min_value=0, max_value=2**31) | razorpay_values,
              "created_at": st.integers(min_value=0, max_value=2**31) | razorpay_values})
errors = st.fixed_dictionaries({}, optional={
    name: razorpay_values | st.sampled_from(["insufficient_funds", "amount", "contact.email"])
    for name in ("code", "description", "reason", "field")})
bodies = st.one_of(
    st.binary(max_size=256), json_values.map(encode), entities.map(encode), links.map(encode),
    st.builds(lambda items: {"entity": "collection", "items": items},
              st.lists(links, max_size=3)).map(encode),
    st.builds(lambda items: {"entity": "collection", "items": items},
              st.lists(links | entities | json_values, max_size=4)).map(encode),
    st.builds(lambda items: {"items": items}, json_values).map(encode),
    st.builds(lambda error: {"error": error}, errors | json_values).map(encode))
headers = st.dictionaries(
    st.sampled_from(["retry-after", "Retry-After", "content-type"]) | st.text(max_size=12),
    st.sampled_from(["0", "1", "-3", "2.5", "nan", "inf", "1e999", "Wed, 21 Oct 2015 07:28:00 GMT",
                     ""]) | st.text(max_size=20),
    max_size=3)
statuses = st.one_of(st.just(200), st.sampled_from([400, 401, 403, 404, 429, 500, 502, 504]),
                     st.integers(min_value=100, max_value=599))


@FUZZ
@given(status=statuses, head=headers, body=bodies)
def test_any_provider_answer_reads_as_exactly_one_outcome(status: int, head: dict[str, str],
                                                          body: bytes) -> None:
    answer = HttpAnswer(status, head, body)
    created = tolerating_known_bugs(CONNECTOR.read_create, answer)
    looked_up = tolerating_known_bugs(CONNECTOR.read_lookup, answer, REFERENCE)
    note(f"create → {created!r}; lookup → {looked_up!r}")
    event(f"create → {type(created).__name__}, lookup → {type(looked_up).__name__}")
    assert created is None or isinstance(created, OUTCOMES[:-1])  # a create never "not found"
    assert looked_up is None or isinstance(looked_up, OUTCOMES)
    if status != 200:
        # Only a 200 can mean a link; a failed lookup proves nothing was created.
        assert not isinstance(created, LinkCreated) and not isinstance(looked_up, LinkCreated)
        assert not isinstance(looked_up, Unknown)
    if status >= 500:
        assert isinstance(created, Unknown)  # a gateway 5xx may follow a committed create


@FUZZ
@given(raw=st.binary(max_size=256) | json_values.map(encode) | corrupted(),
       key=st.none() | st.binary(max_size=16),
       head=st.lists(st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=8)),
                     max_size=3),
       offset=st.integers(min_value=0, max_value=2**62))
def test_dead_letters_keep_hostile_bytes_whole_and_valid(raw: bytes, key: bytes | None,
                                                        head: list, offset: int) -> None:
    out = events.parse_request(raw)
    error = out if isinstance(out, events.Unparseable) else events.Unparseable(
        "not_an_object", "forced")
    dead = events.dead_letter_event(
        events.SourceRecord(events.REQUESTED, 3, offset, key, raw, head, None), error)
    assert_schema_valid(dead)


# --- the hostile corpus: each kind of bad record and what it must become -------------

BASE = valid_request(11)


def request_with(mutate: Callable[[dict[str, Any]], Any]) -> bytes:
    request = orjson.loads(orjson.dumps(BASE))
    mutate(request)
    return orjson.dumps(request)


def spliced(name: str, raw_value: bytes) -> bytes:
    """The valid request with field ``name`` (re)written as raw JSON text at the end."""
    request = {k: v for k, v in BASE.items() if k != name}
    return orjson.dumps(request)[:-1] + b',"' + name.encode() + b'":' + raw_value + b"}"


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


SCHEMA_TYPES = {name: ("object" if spec.get("type") == "object" or "$ref" in spec
                       and spec["$ref"].endswith("money") else
                       "integer" if name == "schema_version" else "string")
                for name, spec in REQUEST_SCHEMA["properties"].items()}
WRONG_VALUES = {
    "string": [0, 12.5, True, None, [], {}],
    "integer": ["1", 1.5, True, None, [], {}, 2],
    "object": ["x", 0, 12.5, True, None, []],
}

CASES: list[Any] = []


def case(name: str, raw: bytes | None, kind: str, detail: str | None = None, *,
         says: str | None = None, marks: Any = ()) -> None:
    CASES.append(pytest.param(raw, kind, detail, says, id=name, marks=marks))


for _field, _type in sorted(SCHEMA_TYPES.items()):
    for _wrong in WRONG_VALUES[_type]:
        case(f"wrong-type-{_field}-{type(_wrong).__name__}-{_wrong!r}"[:60],
             request_with(lambda r, f=_field, w=_wrong: r.update({f: w})), "invalid", _field)
for _field in REQUEST_SCHEMA["required"]:
    case(f"missing-{_field}", request_with(lambda r, f=_field: r.pop(f)), "invalid", _field,
         says="required")

MINOR = "amount.minor_amount"
for _amount in (-1, -(2**63), 0, 10**14 + 1, 10**15, 2**63 - 1, 2**64 - 1):
    case(f"minor_amount-{_amount}",
         request_with(lambda r, a=_amount: r["amount"].update(minor_amount=a)), "invalid", MINOR)
case("minor_amount-10**14-is-the-limit",
     request_with(lambda r: r["amount"].update(minor_amount=10**14)), "valid")
case("minor_amount-2**64-read-as-float", spliced(
    "amount", b'{"minor_amount":18446744073709551616,"currency":"INR"}'), "invalid", MINOR)
case("minor_amount-10**400", spliced("amount", b'{"minor_amount":1' + b"0" * 400
                                     + b',"currency":"INR"}'), "dead", "unparseable")
case("minor_amount-float-fraction",
     request_with(lambda r: r["amount"].update(minor_amount=100.5)), "invalid", MINOR)
case("minor_amount-string", request_with(lambda r: r["amount"].update(minor_amount="100")),
     "invalid", MINOR)
case("minor_amount-string-float", request_with(lambda r: r["amount"].update(minor_amount="1e2")),
     "invalid", MINOR)
case("minor_amount-bool", request_with(lambda r: r["amount"].update(minor_amount=True)),
     "invalid", MINOR)
case("amount-as-bare-number", request_with(lambda r: r.update(amount=100)), "invalid", "amount")
case("amount-as-string", request_with(lambda r: r.update(amount="100 INR")), "invalid", "amount")
case("currency-unknown", request_with(lambda r: r["amount"].update(currency="XYZ")),
     "invalid", "amount.currency", says="not an allowed value")
case("currency-lowercase", request_with(lambda r: r["amount"].update(currency="inr")),
     "invalid", "amount.currency")
case("currency-1MB", request_with(lambda r: r["amount"].update(currency="I" * 1_000_000)),
     "invalid", "amount.currency")
case("destination-currency-lowercase",
     request_with(lambda r: r.update(destination_currency="usd")), "invalid",
     "destination_currency")
case("description-1MB", request_with(lambda r: r.update(description="x" * 1_000_000)),
     "invalid", "description")
case("payload-1MB-of-junk-fields", request_with(lambda r: r.update(
    {f"zz_junk_{i:05d}": "j" * 90 for i in range(10_500)})), "invalid", "zz_junk_00000")
case("metadata-1MB-of-junk", request_with(lambda r: r.update(
    metadata={f"k{i}": "v" * 200 for i in range(5_000)})), "invalid", "metadata")
case("invalid-utf8-in-string", spliced("description", b'"caf\xe9"'), "dead", "unparseable")
case("invalid-utf8-overlong", spliced("description", b'"\xc0\xaf"'), "dead", "unparseable")
case("invalid-utf8-encoded-surrogate", spliced("description", b'"\xed\xa0\x80"'), "dead",
     "unparseable")
case("lone-surrogate-escape", spliced("description", b'"\\ud800"'), "dead", "unparseable")
case("invalid-utf8-only", b"\xff\xfe\xfd", "dead", "unparseable")
case("utf16-encoded", json.dumps(BASE).encode("utf-16"), "dead", "unparseable")
case("utf8-bom", b"\xef\xbb\xbf" + orjson.dumps(BASE), "dead", "unparseable")
case("NaN-amount", spliced("amount", b'{"minor_amount":NaN,"currency":"INR"}'), "dead",
     "unparseable")
case("Infinity-amount", spliced("amount", b'{"minor_amount":Infinity,"currency":"INR"}'),
     "dead", "unparseable")
case("minus-Infinity-amount", spliced("amount", b'{"minor_amount":-Infinity,"currency":"INR"}'),
     "dead", "unparseable")
case("nested-10000-top-level-objects", nested(10_000), "dead", "unparseable")
case("nested-10000-top-level-arrays", b"[" * 10_000 + b"]" * 10_000, "dead", "unparseable")
case("nested-10000-in-metadata", spliced("metadata", nested(10_000)), "dead", "unparseable")
case("nested-1020-in-metadata", spliced("metadata", nested(1020)), "dead", "too_deeply_nested")
case("nested-100-in-metadata", spliced("metadata", b'{"k":' + nested(99) + b"}"), "dead",
     "too_deeply_nested")
case("nested-20-in-metadata", spliced("metadata", b'{"k":' + nested(20) + b"}"), "invalid",
     "metadata.k")
case("duplicate-amount-top-level", orjson.dumps(BASE)[:-1]
     + b',"amount":{"minor_amount":999999999,"currency":"INR"}}', "dead", "duplicate_key",
     says="duplicate key 'amount' in the top-level object")
case("duplicate-identical-values", orjson.dumps(BASE)[:-1] + b',"purpose":"refund"}', "dead",
     "duplicate_key", says="duplicate key 'purpose'")
case("duplicate-minor_amount-in-amount", orjson.dumps(BASE).replace(
    b'"amount":{', b'"amount":{"minor_amount":1,', 1), "dead", "duplicate_key",
     says="duplicate key 'minor_amount' in 'amount'")
case("duplicate-via-escape", orjson.dumps(BASE)[:-1] + b',"\\u0061mount":{}}', "dead",
     "duplicate_key", says="duplicate key 'amount'")
case("duplicate-deep-in-address", spliced(
    "address", b'{"billing_address":{"city":"A","city":"B"}}'), "dead", "duplicate_key",
     says="duplicate key 'city' in 'address.billing_address'")
case("duplicate-inside-an-array", spliced("metadata", b'{"k":[{"a":1,"a":2}]}'), "dead",
     "duplicate_key", says="duplicate key 'a' in 'metadata.k[0]'")
case("duplicate-in-1MB-payload", orjson.dumps(dict(BASE, description="x" * 1_000_000))[:-1]
     + b',"description":"y"}', "dead", "duplicate_key", says="duplicate key 'description'")
case("null-byte-escaped-in-merchant_id",
     request_with(lambda r: r.update(merchant_id="m_demo\x00")), "invalid", "merchant_id")
case("null-byte-escaped-in-description",  # free text: the schema allows it, Razorpay decides
     request_with(lambda r: r.update(description="refund\x00 for order")), "valid")
case("null-byte-escaped-in-metadata-key",
     request_with(lambda r: r.update(metadata={"k\x00": "v"})), "valid")
case("null-byte-raw-in-string", spliced("description", b'"a\x00b"'), "dead", "unparseable")
case("control-characters-raw-in-string", spliced("description", b'"a\nb"'), "dead",
     "unparseable")
case("empty-object", b"{}", "invalid", "event_id", says="required")
case("json-string", b'"payout"', "dead", "not_an_object", says="got str")
case("json-array", orjson.dumps([BASE]), "dead", "not_an_object", says="got list")
case("json-number", b"42", "dead", "not_an_object", says="got int")
case("json-null", b"null", "dead", "not_an_object")
case("json-true", b"true", "dead", "not_an_object")
case("empty-bytes", b"", "dead", "unparseable")
case("whitespace-only", b" \t\r\n ", "dead", "unparseable")
case("tombstone", None, "dead", "unparseable", says="tombstone")
case("truncated", orjson.dumps(BASE)[:-40], "dead", "unparseable")
case("trailing-garbage", orjson.dumps(BASE) + b"x", "dead", "unparseable")
case("two-objects", orjson.dumps(BASE) + orjson.dumps(BASE), "dead", "unparseable")
case("trailing-comma", orjson.dumps(BASE)[:-1] + b",}", "dead", "unparseable")
case("single-quotes", b"{'merchant_id': 'm'}", "dead", "unparseable")
case("comment", b"/* hi */" + orjson.dumps(BASE), "dead", "unparseable")
case("schema_version-2", request_with(lambda r: r.update(schema_version=2)), "invalid",
     "schema_version")
case("unknown-connector", request_with(lambda r: r.update(connector="stripe")), "invalid",
     "connector")
case("expires_at-not-a-date", request_with(lambda r: r.update(expires_at="tomorrow")),
     "invalid", "expires_at")
case("webhook-not-http", request_with(lambda r: r.update(webhook_url="javascript:alert(1)")),
     "invalid", "webhook_url")
case("customer-without-contact", request_with(
    lambda r: (r["customer"].pop("email"), r["customer"].pop("phone_number"))), "invalid",
     "customer.phone_number", says="email or a phone_number")
case("valid-request", orjson.dumps(BASE), "valid")


@pytest.mark.parametrize("raw, kind, detail, says", CASES)
def test_hostile_record_has_its_outcome(raw: bytes | None, kind: str, detail: str | None,
                                        says: str | None) -> None:
    got, value, built = classify(raw)
    assert got == kind, value if got != "valid" else "valid"
    if kind == "dead":
        assert value.code == detail, value
        kept = None if raw is None else raw[:events.MAX_DEAD_LETTER_VALUE_BYTES]
        assert built["raw_value_b64"] == (None if kept is None else base64.b64encode(kept).decode())
        assert built["raw_value_size"] == (None if raw is None else len(raw))
    elif kind == "invalid":
        assert value.field == detail, value
    else:
        assert isinstance(built, HttpCall) and built.json["amount"] == value["amount"][
            "minor_amount"]
    if says is not None:
        assert says in value.message, value.message


def test_duplicate_key_too_deep_to_locate_is_still_named(monkeypatch) -> None:
    class TooDeep:
        def decode(self, text: str) -> None:
            raise RecursionError

    monkeypatch.setattr(events, "_LOCATE_REPEATED", TooDeep())
    out = events.parse_request(b'{"x":{"amount":1,"amount":2}}')
    assert out == events.Unparseable(
        "duplicate_key", "duplicate key 'amount' in a JSON object: each key may appear only "
                         "once, and picking one of its values would be a guess")


def test_corpus_covers_what_the_issue_names() -> None:
    ids = " ".join(p.id for p in CASES)
    for needle in ("wrong-type", "missing", "minor_amount--1", "minor_amount-0",
                   "minor_amount-100000000000001", "minor_amount-float", "minor_amount-string",
                   "currency-unknown", "currency-lowercase", "description-1MB",
                   "payload-1MB", "invalid-utf8", "utf8-bom", "NaN", "Infinity",
                   "nested-10000-top-level", "nested-10000-in-metadata",
                   "duplicate-amount-top-level", "duplicate-minor_amount-in-amount",
                   "null-byte", "empty-object", "json-string", "json-array", "json-number",
                   "empty-bytes", "whitespace-only"):
        assert needle in ids, needle
    assert len(request_with(lambda r: r.update(
        {f"zz_junk_{i:05d}": "j" * 90 for i in range(10_500)}))) > 1_000_000


# --- regressions: bugs the fuzzing found, with their minimal inputs ------------------


def test_deep_request_is_dead_lettered_before_it_can_exhaust_an_encoder() -> None:
    kind, value, _ = classify(spliced("metadata", b'{"k":' + nested(300) + b"}"))
    assert kind == "dead" and value.code == "too_deeply_nested"


def test_regression_validation_runs_out_of_recursion_near_the_parse_limit() -> None:
    base = orjson.dumps({k: v for k, v in BASE.items() if k != "address"})[:-1]
    for depth in range(700, 1025):
        raw = (base + b',"address":{"billing_address":{"line1":' + b"[" * depth + b"]" * depth
               + b"}}}")
        request = events.parse_request(raw)
        if isinstance(request, events.Unparseable):
            break
        events.validate_request(request)


@pytest.mark.parametrize("raw_amount", [b"100.0", b"1e2"])
def test_regression_integral_float_amount_is_accepted(raw_amount: bytes) -> None:
    kind, invalid, _ = classify(spliced("amount", b'{"minor_amount":' + raw_amount
                                        + b',"currency":"INR"}'))
    assert kind == "invalid" and invalid.field == MINOR


@pytest.mark.parametrize("status, body", [
    (200, b'{"id": 5, "short_url": ["u"], "status": "issued"}'),
    (200, b'{"id": "poutlk_1", "short_url": "not a url", "status": "issued"}'),
    (200, b'{"id": "poutlk_1", "short_url": "https://rzp.io/i/x"}'),
    (400, b'{"error": {"code": 5, "description": ["x"], "reason": {}, "field": 1}}'),
])
def test_regression_provider_values_reach_events_unchecked(status: int, body: bytes) -> None:
    out = CONNECTOR.read_create(HttpAnswer(status, {}, body))
    if isinstance(out, LinkCreated):
        evt = events.created_event(
            BASE, connector="razorpay", connector_payout_id=out.connector_payout_id, url=out.url,
            payout_status=out.payout_status, connector_status=out.connector_status,
            reference=REFERENCE, expires_at=out.expires_at)
    elif isinstance(out, Unknown):
        return  # unreadable success: looked up again, never turned into an event
    else:
        assert isinstance(out, Rejected)
        evt = events.failed_event(BASE, code=out.code, message=out.message, field=out.field,
                                  status_code=out.status_code, connector="razorpay",
                                  connector_details=out.connector_details)
    assert_schema_valid(evt)


@pytest.mark.parametrize("value", ["inf", "1e999", "1000000000"])
def test_regression_unbounded_retry_after(value: str) -> None:
    out = CONNECTOR.read_create(HttpAnswer(429, {"retry-after": value}, b""))
    assert isinstance(out, Transient)
    assert out.retry_after_s is None or (math.isfinite(out.retry_after_s)
                                         and out.retry_after_s <= 300)


@pytest.mark.parametrize("expires_at", ["2030-01-01T00:00:00z", "2030-01-01t00:00:00.5z"])
def test_regression_lowercase_rfc3339_expiry(expires_at: str) -> None:
    request = dict(BASE, expires_at=expires_at)
    assert events.validate_request(request) is None
    body = CONNECTOR.create_call(request, REFERENCE, ACCOUNT).json
    assert body["expire_by"] == 1893456000


@pytest.mark.parametrize("body", [
    b"[1]", b'"x"', b"7", b'{"items": {"a": 1}}', b'{"items": 5}', b'{"items": [1]}',
    b'{"items": [{"receipt": "R", "created_at": "x", "id": "a", "short_url": "https://u"},'
    b' {"receipt": "R", "created_at": 1, "id": "b", "short_url": "https://u"}]}'])
def test_regression_unexpected_lookup_body(body: bytes) -> None:
    out = CONNECTOR.read_lookup(HttpAnswer(200, {}, body.replace(b'"R"', orjson.dumps(REFERENCE))),
                                REFERENCE)
    assert isinstance(out, OUTCOMES)
    assert not isinstance(out, NotFound)  # an unreadable answer is not proof of absence


@pytest.mark.parametrize("expire_by", [b'"2030-01-01"', b"1e300", b"99999999999999", b"[1]"])
def test_regression_unreadable_expire_by(expire_by: bytes) -> None:
    body = b'{"id":"poutlk_1","short_url":"https://rzp.io/i/x","expire_by":' + expire_by + b"}"
    out = CONNECTOR.read_create(HttpAnswer(200, {}, body))
    assert isinstance(out, LinkCreated) and out.expires_at is None


@FUZZ
@given(parts=st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_event_ids_are_exactly_uuid5(parts: list[str]) -> None:
    import uuid

    assert events.deterministic_event_id(*parts) == str(
        uuid.uuid5(events.EVENT_NAMESPACE, "|".join(parts)))
