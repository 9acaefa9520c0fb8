"""Requests generated from the published schema itself, driven down the whole create path.

The request schema is the contract upstream services code against, so every value it
accepts must end one of two ways: the worker rejects it cleanly, naming the field
(``events.InvalidRequest``, or the connector's ``Unsupported`` when the provider can't
honour it), or it becomes a create body the provider accepts — here the simulator's own
``validate_create`` stands in for RazorpayX. Nothing may raise on the way.

The requests come from the schema file: ``hypothesis-jsonschema`` builds every value
that is not an object, with our own strategies for the formats whose corners matter —
RFC 3339 date-times in every spelling the RFC allows (leap seconds, lowercase ``t``/``z``,
offsets up to ±23:59, years 0001 and 9999, fractions of many digits), emails and URIs
of the kinds validators disagree on. Objects are assembled here from the schema's own
``properties``/``required``/``anyOf``: hypothesis-jsonschema 0.23.1 (the latest) draws
objects through a Hypothesis internal that hypothesis 6.170 no longer has, and rebuilds
each nested strategy on every draw (~60 ms a request).

``events.validate_request`` judges a request with jsonschema-rs and describes a
violation with the Python ``jsonschema``; the last property holds them to the same
verdict, since a value one accepts and the other refuses is a schema that means two
things.
"""
from __future__ import annotations

import calendar
import copy
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, event, given, note, settings, strategies as st
from hypothesis.errors import HypothesisWarning
from hypothesis_jsonschema import from_schema
from jsonschema import FormatChecker

from streams import events
from streams.connectors.base import HttpAnswer, LinkCreated, Unsupported, link_reference
from streams.connectors.razorpay import RazorpayAccount, RazorpayConnector, transformers as razorpay
from streams.devkit.sims import razorpay as simulator
from streams.devkit.sims.razorpay import validate_create

SCHEMA = orjson.loads((events.SCHEMA_DIR / f"{events.REQUESTED}.schema.json").read_bytes())
ACCOUNT = RazorpayAccount("rzp_test_x", "secret-never-logged", "2323230041626905")
CONNECTOR = RazorpayConnector()
FORMATS = FormatChecker()  # the checker hypothesis-jsonschema holds custom formats to
DAY = 86400

# Sized for a 2-core CI machine (a few seconds a property). No example database:
# nothing is written into the work tree; a failure prints its example.
FUZZ = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# --- RFC 3339 date-times, every corner the RFC allows ---------------------------------

CORNER_YEARS = st.sampled_from([1, 2, 999, 1969, 1970, 1999, 2000, 2099, 2100, 2999, 3000,
                                9998, 9999])
OFFSETS = st.one_of(
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+05:30", "-12:00"]),
    st.builds("{}{:02d}:{:02d}".format, st.sampled_from("+-"), st.integers(0, 23),
              st.integers(0, 59)))
FRACTIONS = st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,9}", fullmatch=True),
                      st.from_regex(r"\.[0-9]{10,60}", fullmatch=True))


@st.composite
def rfc3339_datetimes(draw: st.DrawFn, years: st.SearchStrategy[int] = st.one_of(
        st.integers(2000, 2099), CORNER_YEARS, st.integers(1, 9999)),
        leap_seconds: bool = True) -> str:
    """Any ``date-time`` of RFC 3339 section 5.6, weighted towards its odd spellings."""
    year, month = draw(years), draw(st.integers(1, 12))
    day = draw(st.integers(1, calendar.monthrange(year, month)[1]))
    if leap_seconds and draw(st.integers(0, 7)) == 0:  # 23:59:60 UTC, or any :60
        hour, minute, second = draw(st.sampled_from([(23, 59, 60)])
                                    | st.tuples(st.integers(0, 23), st.integers(0, 59),
                                                st.just(60)))
    else:
        hour, minute, second = draw(st.tuples(st.integers(0, 23), st.integers(0, 59),
                                              st.integers(0, 59)))
    return (f"{year:04d}-{month:02d}-{day:02d}{draw(st.sampled_from('Tt'))}"
            f"{hour:02d}:{minute:02d}:{second:02d}{draw(FRACTIONS)}{draw(OFFSETS)}")


@st.composite
def expiries_near(draw: st.DrawFn, now: float) -> tuple[str, int]:
    """An expiry around the provider's window from ``now``, oddly spelled, and its second."""
    lead = draw(st.one_of(
        st.integers(-DAY, razorpay.MAX_EXPIRY_LEAD_S + DAY),
        st.sampled_from([razorpay.MIN_EXPIRY_LEAD_S + d for d in (-1, 0, 1, 2)]
                        + [razorpay.MAX_EXPIRY_LEAD_S + d for d in (-1, 0, 1)])))
    second = int(now) + lead
    offset = draw(st.sampled_from([0, 23 * 60 + 59, -(23 * 60 + 59), 330])
                  | st.integers(-(23 * 60 + 59), 23 * 60 + 59))
    local = datetime.fromtimestamp(second, UTC) + timedelta(minutes=offset)
    zone = (draw(st.sampled_from(["Z", "z", "+00:00", "-00:00"])) if offset == 0 else
            "{}{:02d}:{:02d}".format("-" if offset < 0 else "+", *divmod(abs(offset), 60)))
    text = (local.strftime("%Y-%m-%d") + draw(st.sampled_from("Tt")) + local.strftime("%H:%M:%S")
            + draw(FRACTIONS) + zone)
    return text, second


def expected_second(text: str) -> int:
    """The unix second of an accepted date-time, worked out apart from the connector."""
    text = text.upper()
    leap = text[17:19] == "60"
    if leap:
        text = text[:17] + "59" + text[19:]
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(moment.timestamp()) + leap


# --- emails and URIs validators may see differently -----------------------------------

EMAIL_CORNERS = st.sampled_from([
    "a@b", "a@b.c", "a@b.123", '"a b"@example.com', "user@[127.0.0.1]", "a..b@example.com",
    ".a@example.com", "a.@example.com", "é@example.com", "user@exämple.com",
    "x" * 64 + "@example.com", "x" * 65 + "@example.com", "a@" + "b" * 63 + ".com",
    "a@" + "b" * 64 + ".com", "a@-example.com", "a@example-.com", "a@exa_mple.com",
    "a@example..com", "a@example.com.", "user+tag@example.co.in", "O'Brien@example.ie",
    "a@b.c\n", "a b@example.com", "a@b.c\x00", "a@xn--e1afmkfd.com", "a@A.XN--11B4C3D",
    "a@ab--c.com"])
EMAILS = st.one_of(st.emails(), st.sampled_from([
    "user+tag@example.co.in", "O'Brien@example.ie", "x" * 64 + "@example.com",
    "a@" + "b" * 63 + ".com", "a@b.123", "a@abc--d.com", "ravi.rao42@example.com"]))
HOSTILE_EMAILS = EMAILS | EMAIL_CORNERS | st.from_regex(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~ \"é-]{1,70}@[A-Za-z0-9._\[\]é-]{1,70}", fullmatch=True)
URI_CORNERS = st.sampled_from([
    "https://x", "http://", "https://x:99999/", "https://[::1]/", "https://a%zz",
    "https://a/b c", 'https://a/"', "https://a/<>", "https://a/{}", "https://a/|",
    "https://é.example/", "https://a/#x#y", "https://a/?q=[x]", "https://a/%4",
    "https://user:pw@a/", "https://a/\n", "https://hooks.example.com/payouts?x=1#f",
    "https://a/%7e%2F?q=%20"])
URIS = st.one_of(URI_CORNERS, st.builds(
    "{}://{}{}{}".format, st.sampled_from(["http", "https"]),
    st.from_regex(r"[A-Za-z0-9._~-]{1,30}", fullmatch=True),
    st.sampled_from(["", ":443", ":8080", ":0"]),
    st.from_regex(r"(/([A-Za-z0-9._~!$&'()*+,;=:@-]|%[0-9A-Fa-f]{2}){0,12}){0,3}"
                  r"(\?[A-Za-z0-9=&%/?-]{0,20})?(#[A-Za-z0-9/?-]{0,10})?", fullmatch=True)))
HOSTILE_URIS = URIS | st.builds("{}://{}{}".format, st.sampled_from(["http", "https"]),
                                st.from_regex(r"[A-Za-z0-9.é\[\]:-]{0,30}", fullmatch=True),
                                st.text(max_size=20))


def _python_accepts(format_name: str) -> Any:
    """hypothesis-jsonschema holds a custom format to jsonschema's checker: feed it only
    what that checker passes (the rest reaches the validators through ``MUTATIONS``)."""
    return lambda value: FORMATS.conforms(value, format_name)


# The schema allows no leap second and only 2000-2099: date-times it generates are drawn
# there (the corners outside reach the worker through the substitution properties).
CUSTOM_FORMATS = {
    "date-time": rfc3339_datetimes(st.integers(2000, 2099), leap_seconds=False)
    .filter(_python_accepts("date-time")),
    "email": EMAILS.filter(_python_accepts("email")),
    "uri": URIS,
}


def resolved(node: Mapping[str, Any]) -> dict[str, Any]:
    """``node`` with its local ``$ref`` merged in (only ``#/$defs/…`` occur)."""
    node = dict(node)
    ref = node.pop("$ref", None)
    if ref is None:
        return node
    assert ref.startswith("#/$defs/"), ref
    return {**resolved(SCHEMA["$defs"][ref.removeprefix("#/$defs/")]), **node}


ANNOTATIONS = {"$schema", "$id", "$comment", "$defs", "title", "description"}
OBJECT_KEYWORDS = {"type", "properties", "required", "additionalProperties", "anyOf",
                   "propertyNames", "maxProperties"}


def values_of(node: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """Every value the schema ``node`` accepts: objects built from its keywords here,
    anything else by hypothesis-jsonschema, once per node."""
    node = {k: v for k, v in resolved(node).items() if k not in ANNOTATIONS}
    if node.get("type") != "object":
        with warnings.catch_warnings():  # "overriding standard format": on purpose
            warnings.simplefilter("ignore", HypothesisWarning)
            return from_schema(node, custom_formats=CUSTOM_FORMATS)
    assert set(node) <= OBJECT_KEYWORDS, f"teach values_of {set(node) - OBJECT_KEYWORDS}"
    if "properties" not in node:  # a string map: metadata
        names = values_of({"type": "string", **node.get("propertyNames", {})})
        return st.dictionaries(names, values_of(node["additionalProperties"]),
                               max_size=node.get("maxProperties", 20))
    assert node.get("additionalProperties") is False
    properties = {name: values_of(sub) for name, sub in node["properties"].items()}

    def shaped(required: set[str]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {name: properties[name] for name in sorted(required)},
            optional={n: s for n, s in properties.items() if n not in required})

    required = set(node.get("required", ()))
    if "anyOf" in node:  # each branch only requires more (customer: email or phone)
        assert all(set(branch) == {"required"} for branch in node["anyOf"])
        return st.one_of([shaped(required | set(b["required"])) for b in node["anyOf"]])
    return shaped(required)


REQUESTS = values_of(SCHEMA)

# Any "now" the date-time pattern leaves room around: a year either side.
NOWS = st.floats(min_value=datetime(2001, 1, 1, tzinfo=UTC).timestamp(),
                 max_value=datetime(2098, 1, 1, tzinfo=UTC).timestamp())


# --- the path of one request ---------------------------------------------------------


def events_example() -> dict[str, Any]:
    """The published example request, which routes to razorpay."""
    return orjson.loads((events.SCHEMA_DIR / "examples" / "payout-link-requested.json")
                        .read_bytes())


def field_value(request: dict[str, Any], path: str) -> Any:
    value: Any = request
    for part in path.split("."):
        assert isinstance(value, dict) and part in value, f"{path} is not in the request"
        value = value[part]
    return value


def drive(request: dict[str, Any], now: float) -> str:
    """validate → capability check → create call → JSON → the provider's validation.

    Returns how the request ended; asserts it ended cleanly.
    """
    invalid = events.validate_request(request)
    if invalid is not None:
        assert isinstance(invalid, events.InvalidRequest) and invalid.field, invalid
        return f"invalid_request {invalid.field}"
    gap = CONNECTOR.unsupported(request, now)
    if gap is not None:
        assert isinstance(gap, Unsupported) and gap.message.strip(), gap
        field_value(request, gap.field)  # names a field the request has
        return f"unsupported {gap.field}"
    key = events.link_key(request["merchant_id"], request["merchant_payout_id"])
    call = CONNECTOR.create_call(request, link_reference(key), ACCOUNT)
    assert call.json is not None
    body = orjson.loads(orjson.dumps(call.json))
    failure = validate_create(body, now)
    assert failure is None, (failure, body)
    # The create handler's own rules beyond validate_create.
    assert not body["send_sms"] or body["contact"].get("contact"), body
    assert not body["send_email"] or body["contact"].get("email"), body
    # Everything asked for is honoured: amount, currency, expiry.
    assert (body["amount"], body["currency"]) == (request["amount"]["minor_amount"], "INR")
    assert request.get("destination_currency", "INR") == body["currency"]
    if "expires_at" in request:
        assert body["expire_by"] == expected_second(request["expires_at"]), body
        created = CONNECTOR.read_create(HttpAnswer(200, {}, orjson.dumps(
            {"id": "poutlk_1", "short_url": "https://rzp.io/i/x", "status": "issued",
             "expire_by": body["expire_by"]})), call)
        assert isinstance(created, LinkCreated) and created.expires_at is not None
        assert int(datetime.fromisoformat(created.expires_at.replace("Z", "+00:00"))
                   .timestamp()) == body["expire_by"]
    else:
        assert "expire_by" not in body
    return "created"


def in_rupees(request: dict[str, Any]) -> dict[str, Any]:
    """Only INR routes to razorpay: the transform is exercised in rupees."""
    request = copy.deepcopy(request)
    request["amount"]["currency"] = "INR"
    return request


def honourable(request: dict[str, Any]) -> dict[str, Any]:
    """The request with every field but its date-times made one RazorpayX can honour."""
    request = in_rupees(request)
    request["amount"]["minor_amount"] = max(request["amount"]["minor_amount"],
                                            razorpay.MIN_AMOUNT_PAISE)
    request.pop("destination_currency", None)
    customer, notify = request["customer"], request.get("notify", {})
    if "phone_number" in customer:
        customer["phone_number"] = customer["phone_number"].rjust(razorpay.PHONE_DIGITS[0], "9")
    notify["sms"] = notify.get("sms", False) and "phone_number" in customer
    notify["email"] = notify.get("email", False) and "email" in customer
    return request


# --- properties ----------------------------------------------------------------------


@FUZZ
@given(request=REQUESTS, now=NOWS, data=st.data())
def test_every_schema_valid_request_is_rejected_cleanly_or_accepted_by_the_provider(
        request: dict[str, Any], now: float, data: st.DataObject) -> None:
    gap = CONNECTOR.unsupported(request, now) if request["amount"]["currency"] != "INR" else None
    assert gap is None or gap.field == "amount.currency"
    request = in_rupees(request)
    # A schema-random expiry or currency would nearly always be turned away: half the
    # time, ask for one the provider can honour, so the create path sees them too.
    if "expires_at" in request and data.draw(st.booleans(), label="expiry near now"):
        request["expires_at"] = data.draw(expiries_near(now), label="expiry")[0]
    if "destination_currency" in request and data.draw(st.booleans(), label="same currency"):
        request["destination_currency"] = "INR"
    outcome = drive(request, now)
    event(outcome)


@FUZZ
@given(request=REQUESTS.map(honourable), now=NOWS, data=st.data(),
       field=st.sampled_from(["expires_at", "occurred_at"]))
def test_any_rfc3339_date_time_is_refused_naming_it_or_sent_as_that_instant(
        request: dict[str, Any], now: float, data: st.DataObject, field: str) -> None:
    if field == "expires_at" and data.draw(st.booleans(), label="near now"):
        value = data.draw(expiries_near(now), label="expiry")[0]
    else:
        value = data.draw(rfc3339_datetimes(), label=field)
    request[field] = value
    invalid = events.validate_request(request)
    if invalid is not None:
        assert invalid.field == field, invalid
        event(f"{field}: invalid_request")
        return
    outcome = drive(request, now)
    event(f"{field}: {outcome}")


@FUZZ
@given(now=NOWS, data=st.data())
def test_the_connector_and_the_simulator_agree_on_every_expiry(now: float,
                                                               data: st.DataObject) -> None:
    """The capability check and the provider draw the window's edges at the same second."""
    text, second = data.draw(expiries_near(now))
    request = dict(events_example(), expires_at=text)
    gap = CONNECTOR.unsupported(request, now)
    body = CONNECTOR.create_call(request, "pl_x", ACCOUNT).json
    assert body is not None and body["expire_by"] == second
    provider = validate_create(orjson.loads(orjson.dumps(body)), now)
    assert (gap is None) == (provider is None), (gap, provider)
    assert gap is None or (gap.field, provider[0]) == ("expires_at", "expire_by")
    event("accepted" if gap is None else "refused")


# One hostile value at one path of a schema-valid request, for the validators to judge.
NEWLINE_PATHS = ["merchant_id", "merchant_payout_id", "customer.phone_number",
                 "customer.phone_country_code", "event_id"]
MUTATIONS = st.one_of(
    st.tuples(st.sampled_from(["occurred_at", "expires_at"]),
              rfc3339_datetimes() | st.sampled_from([
                  "0000-01-01T00:00:00Z", "2030-02-29T00:00:00Z", "2030-04-31T00:00:00Z",
                  "2030-01-01 00:00:00Z", "2030-01-01T24:00:00Z", "2030-01-01T00:00:00+24:00",
                  "2030-01-01T00:00:00", "2030-01-01T00:00:00.Z", "2030-01-01T00:00Z",
                  "2030-01-01T00:00:00Z\n", "2016-12-31T23:59:60Z", "2016-12-31T15:59:60-08:00",
                  "+12030-01-01T00:00:00Z", "２０３０-01-01T00:00:00Z"])),
    st.tuples(st.just("customer.email"), HOSTILE_EMAILS),
    st.tuples(st.just("webhook_url"), HOSTILE_URIS),
    st.tuples(st.sampled_from(NEWLINE_PATHS), st.sampled_from(["9876543210\n", "m_1\n", "+91\n"])),
    st.tuples(st.just("customer.name"), st.text(min_size=2, max_size=4) | st.text(
        st.characters(min_codepoint=0x10000), min_size=48, max_size=52)),
    st.tuples(st.just("address.billing_address.country"), st.sampled_from(
        ["IN", "in", "IN\n", "IND", "ＩＮ"])),
)


def put(request: dict[str, Any], path: str, value: Any) -> None:
    *parents, name = path.split(".")
    target = request
    for parent in parents:
        target = target.setdefault(parent, {})
    target[name] = value


@FUZZ
@given(request=REQUESTS, mutation=st.none() | MUTATIONS)
def test_the_fast_and_the_describing_validator_agree(request: dict[str, Any],
                                                     mutation: tuple[str, Any] | None) -> None:
    if mutation is not None:
        put(request, *mutation)
    fast = events._fast_request_validator().is_valid(request)
    errors = [e.message[:120] for e in events.validator_for(events.REQUESTED).iter_errors(request)]
    note(f"jsonschema-rs: {'valid' if fast else 'invalid'}; jsonschema: {errors or 'valid'}")
    assert fast == (not errors)
    assert fast or mutation is not None  # what the schema generates, the schema accepts
    event(f"{mutation[0] if mutation else 'as generated'}: {'valid' if fast else 'invalid'}")


# --- regressions: what the fuzzing found, with minimal inputs -------------------------
#
# Against the code and schema as they were: a leap second or year 0000 in expires_at
# passed jsonschema-rs and raised in the create call; an expiry from year 3000 on was
# sent and read back as "no expiry"; destination_currency was ignored; 1-99 paise, a
# 6-7 digit phone and notify.sms without a phone passed the schema and were refused by
# the provider; the validators disagreed on year 0000, leap seconds, punycode emails,
# URIs with characters a URI can't hold, and a trailing newline under every pattern.
# Date-times, emails, URIs and patterns are now tightened in the schema; the rest is
# the connector's capability check (tests/unit/test_razorpay_transformers.py).


@pytest.mark.parametrize("path, value", [
    ("occurred_at", "0000-01-01T00:00:00Z"),
    ("occurred_at", "2016-12-31T23:59:60Z"),
    ("customer.email", "a@A.XN--11B4C3D"),
    ("customer.email", "a@b"),
    ("webhook_url", 'https://a/"'),
    ("merchant_id", "m_1\n"),
    ("customer.phone_number", "9876543210\n"),
])
def test_regression_values_the_two_validators_judged_differently(path: str,
                                                                 value: str) -> None:
    request = events_example()
    put(request, path, value)
    assert not events._fast_request_validator().is_valid(request)
    invalid = events.validate_request(request)
    assert invalid is not None and invalid.field == path, invalid


@pytest.mark.parametrize("expires_at", [
    "2030-06-30T23:59:60Z",       # leap second: jsonschema-rs passed it, datetime raised
    "0000-01-01T00:00:00Z",       # year 0: jsonschema-rs passed it, datetime raised
    "9999-12-31T23:59:59-23:59",  # sent as expire_by, read back as no expiry at all
    "3000-01-01T00:00:00Z",       # the same: _iso reads nothing from year 3000 on
    "0001-01-01T00:00:00+01:00",  # sent to the provider as a time before year 1
])
def test_regression_date_times_the_settle_path_could_not_take(expires_at: str) -> None:
    request = dict(events_example(), expires_at=expires_at)
    invalid = events.validate_request(request)
    assert invalid is not None and invalid.field == "expires_at", invalid


@pytest.mark.parametrize("expires_at, second", [
    ("2030-01-01T05:29:59.999999999999+05:30", 1893455999),
    ("2029-12-31t00:01:00-23:59", 1893456000),
    ("2030-01-01T23:58:59+23:59", 1893455999),
    ("2030-01-01T00:00:00." + "9" * 5000 + "z", 1893456000),
])
def test_odd_spellings_of_one_instant_are_sent_as_that_instant(expires_at: str,
                                                               second: int) -> None:
    request = dict(events_example(), expires_at=expires_at)
    assert events.validate_request(request) is None
    body = CONNECTOR.create_call(request, "pl_x", ACCOUNT).json
    assert body is not None and body["expire_by"] == second


def test_an_expiry_in_range_of_the_schema_but_not_of_the_provider_is_refused() -> None:
    request = dict(events_example(), expires_at="2099-12-31T23:59:59Z")
    assert events.validate_request(request) is None
    gap = CONNECTOR.unsupported(request, datetime(2030, 1, 1, tzinfo=UTC).timestamp())
    assert gap is not None and gap.field == "expires_at"


def test_connector_and_simulator_share_the_expiry_window() -> None:
    assert (razorpay.MIN_EXPIRY_LEAD_S, razorpay.MAX_EXPIRY_LEAD_S) == (
        simulator.MIN_EXPIRY_LEAD_S, simulator.MAX_EXPIRY_LEAD_S)
