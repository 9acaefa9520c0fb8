from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Currency(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CURRENCY_UNSPECIFIED: _ClassVar[Currency]
    AED: _ClassVar[Currency]
    AFN: _ClassVar[Currency]
    ALL: _ClassVar[Currency]
    AMD: _ClassVar[Currency]
    ANG: _ClassVar[Currency]
    AOA: _ClassVar[Currency]
    ARS: _ClassVar[Currency]
    AUD: _ClassVar[Currency]
    AWG: _ClassVar[Currency]
    AZN: _ClassVar[Currency]
    BAM: _ClassVar[Currency]
    BBD: _ClassVar[Currency]
    BDT: _ClassVar[Currency]
    BGN: _ClassVar[Currency]
    BHD: _ClassVar[Currency]
    BIF: _ClassVar[Currency]
    BMD: _ClassVar[Currency]
    BND: _ClassVar[Currency]
    BOB: _ClassVar[Currency]
    BRL: _ClassVar[Currency]
    BSD: _ClassVar[Currency]
    BTN: _ClassVar[Currency]
    BWP: _ClassVar[Currency]
    BYN: _ClassVar[Currency]
    BZD: _ClassVar[Currency]
    CAD: _ClassVar[Currency]
    CDF: _ClassVar[Currency]
    CHF: _ClassVar[Currency]
    CLF: _ClassVar[Currency]
    CLP: _ClassVar[Currency]
    CNY: _ClassVar[Currency]
    COP: _ClassVar[Currency]
    CRC: _ClassVar[Currency]
    CUC: _ClassVar[Currency]
    CUP: _ClassVar[Currency]
    CVE: _ClassVar[Currency]
    CZK: _ClassVar[Currency]
    DJF: _ClassVar[Currency]
    DKK: _ClassVar[Currency]
    DOP: _ClassVar[Currency]
    DZD: _ClassVar[Currency]
    EGP: _ClassVar[Currency]
    ERN: _ClassVar[Currency]
    ETB: _ClassVar[Currency]
    EUR: _ClassVar[Currency]
    FJD: _ClassVar[Currency]
    FKP: _ClassVar[Currency]
    GBP: _ClassVar[Currency]
    GEL: _ClassVar[Currency]
    GHS: _ClassVar[Currency]
    GIP: _ClassVar[Currency]
    GMD: _ClassVar[Currency]
    GNF: _ClassVar[Currency]
    GTQ: _ClassVar[Currency]
    GYD: _ClassVar[Currency]
    HKD: _ClassVar[Currency]
    HNL: _ClassVar[Currency]
    HRK: _ClassVar[Currency]
    HTG: _ClassVar[Currency]
    HUF: _ClassVar[Currency]
    IDR: _ClassVar[Currency]
    ILS: _ClassVar[Currency]
    INR: _ClassVar[Currency]
    IQD: _ClassVar[Currency]
    IRR: _ClassVar[Currency]
    ISK: _ClassVar[Currency]
    JMD: _ClassVar[Currency]
    JOD: _ClassVar[Currency]
    JPY: _ClassVar[Currency]
    KES: _ClassVar[Currency]
    KGS: _ClassVar[Currency]
    KHR: _ClassVar[Currency]
    KMF: _ClassVar[Currency]
    KPW: _ClassVar[Currency]
    KRW: _ClassVar[Currency]
    KWD: _ClassVar[Currency]
    KYD: _ClassVar[Currency]
    KZT: _ClassVar[Currency]
    LAK: _ClassVar[Currency]
    LBP: _ClassVar[Currency]
    LKR: _ClassVar[Currency]
    LRD: _ClassVar[Currency]
    LSL: _ClassVar[Currency]
    LYD: _ClassVar[Currency]
    MAD: _ClassVar[Currency]
    MDL: _ClassVar[Currency]
    MGA: _ClassVar[Currency]
    MKD: _ClassVar[Currency]
    MMK: _ClassVar[Currency]
    MNT: _ClassVar[Currency]
    MOP: _ClassVar[Currency]
    MRU: _ClassVar[Currency]
    MUR: _ClassVar[Currency]
    MVR: _ClassVar[Currency]
    MWK: _ClassVar[Currency]
    MXN: _ClassVar[Currency]
    MYR: _ClassVar[Currency]
    MZN: _ClassVar[Currency]
    NAD: _ClassVar[Currency]
    NGN: _ClassVar[Currency]
    NIO: _ClassVar[Currency]
    NOK: _ClassVar[Currency]
    NPR: _ClassVar[Currency]
    NZD: _ClassVar[Currency]
    OMR: _ClassVar[Currency]
    PAB: _ClassVar[Currency]
    PEN: _ClassVar[Currency]
    PGK: _ClassVar[Currency]
    PHP: _ClassVar[Currency]
    PKR: _ClassVar[Currency]
    PLN: _ClassVar[Currency]
    PYG: _ClassVar[Currency]
    QAR: _ClassVar[Currency]
    RON: _ClassVar[Currency]
    RSD: _ClassVar[Currency]
    RUB: _ClassVar[Currency]
    RWF: _ClassVar[Currency]
    SAR: _ClassVar[Currency]
    SBD: _ClassVar[Currency]
    SCR: _ClassVar[Currency]
    SDG: _ClassVar[Currency]
    SEK: _ClassVar[Currency]
    SGD: _ClassVar[Currency]
    SHP: _ClassVar[Currency]
    SLE: _ClassVar[Currency]
    SLL: _ClassVar[Currency]
    SOS: _ClassVar[Currency]
    SRD: _ClassVar[Currency]
    SSP: _ClassVar[Currency]
    STD: _ClassVar[Currency]
    STN: _ClassVar[Currency]
    SVC: _ClassVar[Currency]
    SYP: _ClassVar[Currency]
    SZL: _ClassVar[Currency]
    THB: _ClassVar[Currency]
    TJS: _ClassVar[Currency]
    TMT: _ClassVar[Currency]
    TND: _ClassVar[Currency]
    TOP: _ClassVar[Currency]
    TRY: _ClassVar[Currency]
    TTD: _ClassVar[Currency]
    TWD: _ClassVar[Currency]
    TZS: _ClassVar[Currency]
    UAH: _ClassVar[Currency]
    UGX: _ClassVar[Currency]
    USD: _ClassVar[Currency]
    UYU: _ClassVar[Currency]
    UZS: _ClassVar[Currency]
    VES: _ClassVar[Currency]
    VND: _ClassVar[Currency]
    VUV: _ClassVar[Currency]
    WST: _ClassVar[Currency]
    XAF: _ClassVar[Currency]
    XCD: _ClassVar[Currency]
    XOF: _ClassVar[Currency]
    XPF: _ClassVar[Currency]
    YER: _ClassVar[Currency]
    ZAR: _ClassVar[Currency]
    ZMW: _ClassVar[Currency]
    ZWL: _ClassVar[Currency]
CURRENCY_UNSPECIFIED: Currency
AED: Currency
AFN: Currency
ALL: Currency
AMD: Currency
ANG: Currency
AOA: Currency
ARS: Currency
AUD: Currency
AWG: Currency
AZN: Currency
BAM: Currency
BBD: Currency
BDT: Currency
BGN: Currency
BHD: Currency
BIF: Currency
BMD: Currency
BND: Currency
BOB: Currency
BRL: Currency
BSD: Currency
BTN: Currency
BWP: Currency
BYN: Currency
BZD: Currency
CAD: Currency
CDF: Currency
CHF: Currency
CLF: Currency
CLP: Currency
CNY: Currency
COP: Currency
CRC: Currency
CUC: Currency
CUP: Currency
CVE: Currency
CZK: Currency
DJF: Currency
DKK: Currency
DOP: Currency
DZD: Currency
EGP: Currency
ERN: Currency
ETB: Currency
EUR: Currency
FJD: Currency
FKP: Currency
GBP: Currency
GEL: Currency
GHS: Currency
GIP: Currency
GMD: Currency
GNF: Currency
GTQ: Currency
GYD: Currency
HKD: Currency
HNL: Currency
HRK: Currency
HTG: Currency
HUF: Currency
IDR: Currency
ILS: Currency
INR: Currency
IQD: Currency
IRR: Currency
ISK: Currency
JMD: Currency
JOD: Currency
JPY: Currency
KES: Currency
KGS: Currency
KHR: Currency
KMF: Currency
KPW: Currency
KRW: Currency
KWD: Currency
KYD: Currency
KZT: Currency
LAK: Currency
LBP: Currency
LKR: Currency
LRD: Currency
LSL: Currency
LYD: Currency
MAD: Currency
MDL: Currency
MGA: Currency
MKD: Currency
MMK: Currency
MNT: Currency
MOP: Currency
MRU: Currency
MUR: Currency
MVR: Currency
MWK: Currency
MXN: Currency
MYR: Currency
MZN: Currency
NAD: Currency
NGN: Currency
NIO: Currency
NOK: Currency
NPR: Currency
NZD: Currency
OMR: Currency
PAB: Currency
PEN: Currency
PGK: Currency
PHP: Currency
PKR: Currency
PLN: Currency
PYG: Currency
QAR: Currency
RON: Currency
RSD: Currency
RUB: Currency
RWF: Currency
SAR: Currency
SBD: Currency
SCR: Currency
SDG: Currency
SEK: Currency
SGD: Currency
SHP: Currency
SLE: Currency
SLL: Currency
SOS: Currency
SRD: Currency
SSP: Currency
STD: Currency
STN: Currency
SVC: Currency
SYP: Currency
SZL: Currency
THB: Currency
TJS: Currency
TMT: Currency
TND: Currency
TOP: Currency
TRY: Currency
TTD: Currency
TWD: Currency
TZS: Currency
UAH: Currency
UGX: Currency
USD: Currency
UYU: Currency
UZS: Currency
VES: Currency
VND: Currency
VUV: Currency
WST: Currency
XAF: Currency
XCD: Currency
XOF: Currency
XPF: Currency
YER: Currency
ZAR: Currency
ZMW: Currency
ZWL: Currency

class PayoutEnums(_message.Message):
    __slots__ = ()
    class PayoutStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PAYOUT_STATUS_UNSPECIFIED: _ClassVar[PayoutEnums.PayoutStatus]
        SUCCESS: _ClassVar[PayoutEnums.PayoutStatus]
        FAILED: _ClassVar[PayoutEnums.PayoutStatus]
        CANCELLED: _ClassVar[PayoutEnums.PayoutStatus]
        INITIATED: _ClassVar[PayoutEnums.PayoutStatus]
        EXPIRED: _ClassVar[PayoutEnums.PayoutStatus]
        REVERSED: _ClassVar[PayoutEnums.PayoutStatus]
        PENDING: _ClassVar[PayoutEnums.PayoutStatus]
        INELIGIBLE: _ClassVar[PayoutEnums.PayoutStatus]
        REQUIRES_CREATION: _ClassVar[PayoutEnums.PayoutStatus]
        REQUIRES_CONFIRMATION: _ClassVar[PayoutEnums.PayoutStatus]
        REQUIRES_PAYOUT_METHOD_DATA: _ClassVar[PayoutEnums.PayoutStatus]
        REQUIRES_FULFILLMENT: _ClassVar[PayoutEnums.PayoutStatus]
        REQUIRES_VENDOR_ACCOUNT_CREATION: _ClassVar[PayoutEnums.PayoutStatus]
    PAYOUT_STATUS_UNSPECIFIED: PayoutEnums.PayoutStatus
    SUCCESS: PayoutEnums.PayoutStatus
    FAILED: PayoutEnums.PayoutStatus
    CANCELLED: PayoutEnums.PayoutStatus
    INITIATED: PayoutEnums.PayoutStatus
    EXPIRED: PayoutEnums.PayoutStatus
    REVERSED: PayoutEnums.PayoutStatus
    PENDING: PayoutEnums.PayoutStatus
    INELIGIBLE: PayoutEnums.PayoutStatus
    REQUIRES_CREATION: PayoutEnums.PayoutStatus
    REQUIRES_CONFIRMATION: PayoutEnums.PayoutStatus
    REQUIRES_PAYOUT_METHOD_DATA: PayoutEnums.PayoutStatus
    REQUIRES_FULFILLMENT: PayoutEnums.PayoutStatus
    REQUIRES_VENDOR_ACCOUNT_CREATION: PayoutEnums.PayoutStatus
    class PayoutPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        PAYOUT_PRIORITY_UNSPECIFIED: _ClassVar[PayoutEnums.PayoutPriority]
        INSTANT: _ClassVar[PayoutEnums.PayoutPriority]
        FAST: _ClassVar[PayoutEnums.PayoutPriority]
        REGULAR: _ClassVar[PayoutEnums.PayoutPriority]
        WIRE: _ClassVar[PayoutEnums.PayoutPriority]
        CROSS_BORDER: _ClassVar[PayoutEnums.PayoutPriority]
        INTERNAL: _ClassVar[PayoutEnums.PayoutPriority]
    PAYOUT_PRIORITY_UNSPECIFIED: PayoutEnums.PayoutPriority
    INSTANT: PayoutEnums.PayoutPriority
    FAST: PayoutEnums.PayoutPriority
    REGULAR: PayoutEnums.PayoutPriority
    WIRE: PayoutEnums.PayoutPriority
    CROSS_BORDER: PayoutEnums.PayoutPriority
    INTERNAL: PayoutEnums.PayoutPriority
    def __init__(self) -> None: ...

class SecretString(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: str
    def __init__(self, value: _Optional[str] = ...) -> None: ...

class Money(_message.Message):
    __slots__ = ("minor_amount", "currency")
    MINOR_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    minor_amount: int
    currency: Currency
    def __init__(self, minor_amount: _Optional[int] = ..., currency: _Optional[_Union[Currency, str]] = ...) -> None: ...

class Customer(_message.Message):
    __slots__ = ("name", "email", "id", "connector_customer_id", "phone_number", "phone_country_code")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PHONE_COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    email: SecretString
    id: str
    connector_customer_id: str
    phone_number: str
    phone_country_code: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[_Union[SecretString, _Mapping]] = ..., id: _Optional[str] = ..., connector_customer_id: _Optional[str] = ..., phone_number: _Optional[str] = ..., phone_country_code: _Optional[str] = ...) -> None: ...

class Address(_message.Message):
    __slots__ = ("first_name", "last_name", "line1", "line2", "line3", "city", "state", "zip_code", "email", "phone_number", "phone_country_code")
    FIRST_NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_NAME_FIELD_NUMBER: _ClassVar[int]
    LINE1_FIELD_NUMBER: _ClassVar[int]
    LINE2_FIELD_NUMBER: _ClassVar[int]
    LINE3_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ZIP_CODE_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PHONE_COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    first_name: SecretString
    last_name: SecretString
    line1: SecretString
    line2: SecretString
    line3: SecretString
    city: SecretString
    state: SecretString
    zip_code: SecretString
    email: SecretString
    phone_number: SecretString
    phone_country_code: str
    def __init__(self, first_name: _Optional[_Union[SecretString, _Mapping]] = ..., last_name: _Optional[_Union[SecretString, _Mapping]] = ..., line1: _Optional[_Union[SecretString, _Mapping]] = ..., line2: _Optional[_Union[SecretString, _Mapping]] = ..., line3: _Optional[_Union[SecretString, _Mapping]] = ..., city: _Optional[_Union[SecretString, _Mapping]] = ..., state: _Optional[_Union[SecretString, _Mapping]] = ..., zip_code: _Optional[_Union[SecretString, _Mapping]] = ..., email: _Optional[_Union[SecretString, _Mapping]] = ..., phone_number: _Optional[_Union[SecretString, _Mapping]] = ..., phone_country_code: _Optional[str] = ...) -> None: ...

class PayoutAddress(_message.Message):
    __slots__ = ("shipping_address", "billing_address")
    SHIPPING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BILLING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    shipping_address: Address
    billing_address: Address
    def __init__(self, shipping_address: _Optional[_Union[Address, _Mapping]] = ..., billing_address: _Optional[_Union[Address, _Mapping]] = ...) -> None: ...

class ErrorInfo(_message.Message):
    __slots__ = ("unified_details", "issuer_details", "connector_details")
    UNIFIED_DETAILS_FIELD_NUMBER: _ClassVar[int]
    ISSUER_DETAILS_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_DETAILS_FIELD_NUMBER: _ClassVar[int]
    unified_details: UnifiedErrorDetails
    issuer_details: IssuerErrorDetails
    connector_details: ConnectorErrorDetails
    def __init__(self, unified_details: _Optional[_Union[UnifiedErrorDetails, _Mapping]] = ..., issuer_details: _Optional[_Union[IssuerErrorDetails, _Mapping]] = ..., connector_details: _Optional[_Union[ConnectorErrorDetails, _Mapping]] = ...) -> None: ...

class UnifiedErrorDetails(_message.Message):
    __slots__ = ("code", "message", "description", "user_guidance_message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    USER_GUIDANCE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    description: str
    user_guidance_message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., description: _Optional[str] = ..., user_guidance_message: _Optional[str] = ...) -> None: ...

class IssuerErrorDetails(_message.Message):
    __slots__ = ("code", "message", "network_details")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_DETAILS_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    network_details: NetworkErrorDetails
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., network_details: _Optional[_Union[NetworkErrorDetails, _Mapping]] = ...) -> None: ...

class NetworkErrorDetails(_message.Message):
    __slots__ = ("advice_code", "decline_code", "error_message")
    ADVICE_CODE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    advice_code: str
    decline_code: str
    error_message: str
    def __init__(self, advice_code: _Optional[str] = ..., decline_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class ConnectorErrorDetails(_message.Message):
    __slots__ = ("code", "message", "reason", "connector_transaction_id")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_TRANSACTION_ID_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    reason: str
    connector_transaction_id: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ..., connector_transaction_id: _Optional[str] = ...) -> None: ...

class ConnectorError(_message.Message):
    __slots__ = ("error_message", "error_code", "http_status_code", "error_info")
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_INFO_FIELD_NUMBER: _ClassVar[int]
    error_message: str
    error_code: str
    http_status_code: int
    error_info: ErrorInfo
    def __init__(self, error_message: _Optional[str] = ..., error_code: _Optional[str] = ..., http_status_code: _Optional[int] = ..., error_info: _Optional[_Union[ErrorInfo, _Mapping]] = ...) -> None: ...

class IntegrationError(_message.Message):
    __slots__ = ("error_message", "error_code", "suggested_action", "doc_url")
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_ACTION_FIELD_NUMBER: _ClassVar[int]
    DOC_URL_FIELD_NUMBER: _ClassVar[int]
    error_message: str
    error_code: str
    suggested_action: str
    doc_url: str
    def __init__(self, error_message: _Optional[str] = ..., error_code: _Optional[str] = ..., suggested_action: _Optional[str] = ..., doc_url: _Optional[str] = ...) -> None: ...

class PayoutServiceCreateLinkRequest(_message.Message):
    __slots__ = ("merchant_payout_id", "address", "connector_feature_data", "connector_quote_id", "connector_payout_id", "amount", "destination_currency", "customer", "priority", "connector_payout_method_id", "webhook_url", "access_token")
    MERCHANT_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_FEATURE_DATA_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_QUOTE_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_CURRENCY_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_PAYOUT_METHOD_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    merchant_payout_id: str
    address: PayoutAddress
    connector_feature_data: SecretString
    connector_quote_id: str
    connector_payout_id: str
    amount: Money
    destination_currency: Currency
    customer: Customer
    priority: PayoutEnums.PayoutPriority
    connector_payout_method_id: str
    webhook_url: str
    access_token: SecretString
    def __init__(self, merchant_payout_id: _Optional[str] = ..., address: _Optional[_Union[PayoutAddress, _Mapping]] = ..., connector_feature_data: _Optional[_Union[SecretString, _Mapping]] = ..., connector_quote_id: _Optional[str] = ..., connector_payout_id: _Optional[str] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., destination_currency: _Optional[_Union[Currency, str]] = ..., customer: _Optional[_Union[Customer, _Mapping]] = ..., priority: _Optional[_Union[PayoutEnums.PayoutPriority, str]] = ..., connector_payout_method_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., access_token: _Optional[_Union[SecretString, _Mapping]] = ...) -> None: ...

class PayoutServiceGetRequest(_message.Message):
    __slots__ = ("merchant_payout_id", "connector_payout_id", "access_token")
    MERCHANT_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    merchant_payout_id: str
    connector_payout_id: str
    access_token: SecretString
    def __init__(self, merchant_payout_id: _Optional[str] = ..., connector_payout_id: _Optional[str] = ..., access_token: _Optional[_Union[SecretString, _Mapping]] = ...) -> None: ...

class PayoutServiceVoidRequest(_message.Message):
    __slots__ = ("merchant_payout_id", "address", "connector_feature_data", "connector_payout_id", "access_token")
    MERCHANT_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_FEATURE_DATA_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    merchant_payout_id: str
    address: PayoutAddress
    connector_feature_data: SecretString
    connector_payout_id: str
    access_token: SecretString
    def __init__(self, merchant_payout_id: _Optional[str] = ..., address: _Optional[_Union[PayoutAddress, _Mapping]] = ..., connector_feature_data: _Optional[_Union[SecretString, _Mapping]] = ..., connector_payout_id: _Optional[str] = ..., access_token: _Optional[_Union[SecretString, _Mapping]] = ...) -> None: ...

class PayoutServiceCreateLinkResponse(_message.Message):
    __slots__ = ("merchant_payout_id", "payout_status", "connector_payout_id", "error", "status_code")
    MERCHANT_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_STATUS_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    merchant_payout_id: str
    payout_status: PayoutEnums.PayoutStatus
    connector_payout_id: str
    error: ErrorInfo
    status_code: int
    def __init__(self, merchant_payout_id: _Optional[str] = ..., payout_status: _Optional[_Union[PayoutEnums.PayoutStatus, str]] = ..., connector_payout_id: _Optional[str] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., status_code: _Optional[int] = ...) -> None: ...

class PayoutServiceGetResponse(_message.Message):
    __slots__ = ("merchant_payout_id", "payout_status", "connector_payout_id", "error", "status_code")
    MERCHANT_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_STATUS_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    merchant_payout_id: str
    payout_status: PayoutEnums.PayoutStatus
    connector_payout_id: str
    error: ErrorInfo
    status_code: int
    def __init__(self, merchant_payout_id: _Optional[str] = ..., payout_status: _Optional[_Union[PayoutEnums.PayoutStatus, str]] = ..., connector_payout_id: _Optional[str] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., status_code: _Optional[int] = ...) -> None: ...

class PayoutServiceVoidResponse(_message.Message):
    __slots__ = ("merchant_payout_id", "payout_status", "connector_payout_id", "error", "status_code")
    MERCHANT_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYOUT_STATUS_FIELD_NUMBER: _ClassVar[int]
    CONNECTOR_PAYOUT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    merchant_payout_id: str
    payout_status: PayoutEnums.PayoutStatus
    connector_payout_id: str
    error: ErrorInfo
    status_code: int
    def __init__(self, merchant_payout_id: _Optional[str] = ..., payout_status: _Optional[_Union[PayoutEnums.PayoutStatus, str]] = ..., connector_payout_id: _Optional[str] = ..., error: _Optional[_Union[ErrorInfo, _Mapping]] = ..., status_code: _Optional[int] = ...) -> None: ...
