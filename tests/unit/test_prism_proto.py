"""Our Prism proto: the committed generated code is current, and the wire numbers are Prism's.

The field numbers asserted here are the wire facts of shared/reference/prism-payouts.md
(Prism's May 2026 release), read back from the generated descriptors -- so an edit of the
.proto that renumbers a field fails here even after `make proto`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from streams.connectors.prism.gen import payout_service_pb2 as pb
from streams.devkit import protogen


def numbers(message: type) -> dict[str, int]:
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_committed_generated_code_is_current() -> None:
    assert protogen.stale_files() == [], "run `make proto` and commit the result"


def test_the_check_names_an_edited_and_a_stray_generated_file(tmp_path: Path) -> None:
    root = protogen.REPO_ROOT
    shutil.copytree(root / protogen.PROTO_DIR, tmp_path / protogen.PROTO_DIR)
    shutil.copytree(root / protogen.GEN_PACKAGE_DIR, tmp_path / protogen.GEN_PACKAGE_DIR,
                    ignore=shutil.ignore_patterns("__pycache__"))
    assert protogen.stale_files(tmp_path) == []
    gen = tmp_path / protogen.GEN_PACKAGE_DIR
    with (gen / "payout_service_pb2.py").open("a") as f:
        f.write("# edited by hand\n")
    (gen / "old_pb2.py").write_text("")
    assert protogen.stale_files(tmp_path) == [
        "streams/connectors/prism/gen/payout_service_pb2.py",
        "streams/connectors/prism/gen/old_pb2.py (not generated)",
    ]


def test_the_generated_imports_name_our_package() -> None:
    grpc_module = (protogen.REPO_ROOT / protogen.GEN_PACKAGE_DIR / "payout_service_pb2_grpc.py").read_text()
    assert "from streams.connectors.prism.gen import payout_service_pb2" in grpc_module
    assert pb.PayoutServiceCreateLinkRequest.__module__ == "streams.connectors.prism.gen.payout_service_pb2"


def test_service_and_rpcs() -> None:
    service = pb.DESCRIPTOR.services_by_name["PayoutService"]
    assert service.full_name == "types.PayoutService"
    assert pb.DESCRIPTOR.package == "types"
    rpcs = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}
    assert rpcs == {
        "CreateLink": ("types.PayoutServiceCreateLinkRequest", "types.PayoutServiceCreateLinkResponse"),
        "Get": ("types.PayoutServiceGetRequest", "types.PayoutServiceGetResponse"),
        "Void": ("types.PayoutServiceVoidRequest", "types.PayoutServiceVoidResponse"),
    }


def test_create_link_request_wire_numbers() -> None:
    assert numbers(pb.PayoutServiceCreateLinkRequest) == {
        "merchant_payout_id": 1, "address": 2, "connector_feature_data": 3,
        "connector_quote_id": 5, "connector_payout_id": 6, "amount": 7, "destination_currency": 8,
        "customer": 9, "priority": 10, "connector_payout_method_id": 11, "webhook_url": 12,
        "access_token": 14,
    }
    # payout_method_data (4) and browser_info (13) are Prism's, not sent by us: reserved
    reserved = pb.PayoutServiceCreateLinkRequest.DESCRIPTOR
    assert {4, 13}.isdisjoint(f.number for f in reserved.fields)
    assert numbers(pb.Money) == {"minor_amount": 1, "currency": 2}
    assert numbers(pb.Customer) == {"name": 1, "email": 2, "id": 3, "connector_customer_id": 4,
                                    "phone_number": 5, "phone_country_code": 6}
    assert numbers(pb.PayoutAddress) == {"shipping_address": 1, "billing_address": 2}
    assert numbers(pb.SecretString) == {"value": 1}


@pytest.mark.parametrize("response", [pb.PayoutServiceCreateLinkResponse, pb.PayoutServiceGetResponse,
                                      pb.PayoutServiceVoidResponse])
def test_every_payout_response_has_the_same_five_fields(response: type) -> None:
    assert numbers(response) == {"merchant_payout_id": 1, "payout_status": 2, "connector_payout_id": 3,
                                 "error": 4, "status_code": 5}


def test_get_and_void_request_wire_numbers() -> None:
    assert numbers(pb.PayoutServiceGetRequest) == {"merchant_payout_id": 1, "connector_payout_id": 2,
                                                   "access_token": 3}
    assert numbers(pb.PayoutServiceVoidRequest) == {"merchant_payout_id": 1, "address": 2,
                                                    "connector_feature_data": 3, "connector_payout_id": 4,
                                                    "access_token": 5}


def test_error_wire_numbers() -> None:
    assert numbers(pb.ErrorInfo) == {"unified_details": 1, "issuer_details": 2, "connector_details": 3}
    assert numbers(pb.ConnectorErrorDetails) == {"code": 1, "message": 2, "reason": 3,
                                                 "connector_transaction_id": 4}
    assert numbers(pb.UnifiedErrorDetails) == {"code": 1, "message": 2, "description": 3,
                                               "user_guidance_message": 4}
    assert numbers(pb.ConnectorError)["http_status_code"] == 3
    assert numbers(pb.ConnectorError)["error_info"] == 4


def test_enum_numbers() -> None:
    status = pb.PayoutEnums.PayoutStatus
    assert pb.PayoutEnums.DESCRIPTOR.enum_types_by_name["PayoutStatus"].full_name == "types.PayoutEnums.PayoutStatus"
    assert {name: status.Value(name) for name in ("SUCCESS", "FAILED", "CANCELLED", "EXPIRED", "REVERSED",
                                                  "PENDING", "REQUIRES_PAYOUT_METHOD_DATA",
                                                  "REQUIRES_FULFILLMENT", "REQUIRES_VENDOR_ACCOUNT_CREATION")} == {
        "SUCCESS": 1, "FAILED": 2, "CANCELLED": 3, "EXPIRED": 5, "REVERSED": 6, "PENDING": 7,
        "REQUIRES_PAYOUT_METHOD_DATA": 11, "REQUIRES_FULFILLMENT": 12, "REQUIRES_VENDOR_ACCOUNT_CREATION": 13,
    }
    assert max(status.values()) == 13  # NOT_PERMITTED (14) is a later release's
    priority = pb.PayoutEnums.PayoutPriority
    assert (priority.Value("INSTANT"), priority.Value("WIRE"), priority.Value("INTERNAL")) == (1, 4, 6)
    assert (pb.EUR, pb.GBP, pb.INR, pb.USD) == (45, 48, 63, 146)
    assert len(pb.Currency.values()) == 161 and pb.Currency.Value("ZWL") == 160


def test_customer_phone_number_is_the_may_release_plain_string() -> None:
    field = pb.Customer.DESCRIPTOR.fields_by_name["phone_number"]
    assert field.type == field.TYPE_STRING


def test_the_module_entry_point_checks() -> None:
    assert protogen.main(["--check"]) == 0
