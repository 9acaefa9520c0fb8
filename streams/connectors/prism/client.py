"""The Prism flow wiring: one ``grpc.aio`` channel per worker, CreateLink, Get and Void.

Unary calls on one HTTP/2 channel, opened on first use inside the worker's loop and
reused by every call. Every call has a deadline of connect + read timeout: the same
call window the ownership lease waits out (:mod:`streams.ownership`), so no call of a
fenced-off worker can outlive its lease.

Provably not sent: a call is only started on a READY channel. When the channel cannot
become ready within the connect timeout the call never left (:class:`Transient`); once
started, any failure that the transformers don't know to be a refusal is an unknown
outcome, and the link is looked up with Get before anything is sent again.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import grpc

from streams.connectors.base import (
    CancelOutcome,
    LinkRef,
    ProviderOutcome,
    StatusOutcome,
    Transient,
)
from streams.connectors.prism import transformers as tf
from streams.connectors.prism.account import PrismAccount
from streams.connectors.prism.gen import payout_service_pb2 as pb
from streams.ownership import require_ownership

log = logging.getLogger(__name__)

ATTEMPT_MEMORY = 50_000  # references whose call count we remember (LRU), for x-request-id
# Reconnect quickly once Prism is back: gRPC's default backoff grows to two minutes, and
# every link routed to Prism waits on the channel meanwhile.
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.enable_retries", 0),  # a retry is ours to decide: Prism detects no duplicates
)


def parse_target(base_url: str) -> tuple[str, bool]:
    """``http://host:port`` (plaintext), ``https://host:port`` (TLS) or ``host:port``
    → (gRPC target, TLS?)."""
    for scheme, tls in (("https://", True), ("http://", False)):
        if base_url.startswith(scheme):
            return base_url[len(scheme):].rstrip("/"), tls
    return base_url.rstrip("/"), False


class PrismClient:
    """create / lookup → outcome through Prism (a :class:`~streams.connectors.provider.ProviderClient`)."""

    def __init__(self, base_url: str, *, connect_timeout_s: float, read_timeout_s: float) -> None:
        self.target, self.tls = parse_target(base_url)
        self._connect_timeout_s = connect_timeout_s
        self._deadline_s = connect_timeout_s + read_timeout_s
        self._channel: grpc.aio.Channel | None = None
        self._create: Any = None
        self._get: Any = None
        self._void: Any = None
        self._attempts: OrderedDict[str, int] = OrderedDict()

    def _open(self) -> grpc.aio.Channel:
        if self.tls:
            channel = grpc.aio.secure_channel(self.target, grpc.ssl_channel_credentials(),
                                              options=CHANNEL_OPTIONS)
        else:
            channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
        # Typed by hand rather than through the generated stub (untyped): the same
        # method paths and (de)serialisers the stub would use.
        self._create = channel.unary_unary(
            tf.CREATE_LINK, request_serializer=pb.PayoutServiceCreateLinkRequest.SerializeToString,
            response_deserializer=pb.PayoutServiceCreateLinkResponse.FromString)
        self._get = channel.unary_unary(
            tf.GET, request_serializer=pb.PayoutServiceGetRequest.SerializeToString,
            response_deserializer=pb.PayoutServiceGetResponse.FromString)
        self._void = channel.unary_unary(
            tf.VOID, request_serializer=pb.PayoutServiceVoidRequest.SerializeToString,
            response_deserializer=pb.PayoutServiceVoidResponse.FromString)
        self._channel = channel
        return channel

    async def _ready(self) -> bool:
        """Whether the channel is (or becomes, within the connect timeout) READY."""
        channel = self._channel or self._open()
        if channel.get_state(try_to_connect=True) is grpc.ChannelConnectivity.READY:
            return True
        try:
            await asyncio.wait_for(channel.channel_ready(), self._connect_timeout_s)
        except TimeoutError:
            return False
        return True

    def _request_id(self, reference: str, flow: str) -> str:
        attempt = self._attempts.get(reference, 0) + 1
        self._attempts[reference] = attempt
        self._attempts.move_to_end(reference)
        if len(self._attempts) > ATTEMPT_MEMORY:
            self._attempts.popitem(last=False)
        return tf.request_id(reference, flow, attempt)

    async def _call(self, flow: str, message: Any, account: PrismAccount, merchant_id: str,
                    reference: str) -> Any:
        """The answer, a :class:`~streams.connectors.prism.transformers.RpcError`, or
        :class:`Transient` when the channel was not ready (the call never left)."""
        if not await self._ready():
            log.warning("prism %s of %s: %s not reachable within %.1f s: not sent", flow,
                        reference, self.target, self._connect_timeout_s)
            return Transient("not_sent:prism_unreachable")
        method = {"create_link": self._create, "get": self._get,  # opened by _ready
                  "void": self._void}[flow]
        metadata = tf.metadata(account, merchant_id, self._request_id(reference, flow))
        # Fencing (streams.ownership): the last check before bytes may leave. Raises
        # Fenced, which is not a provider outcome: the work is abandoned, not retried.
        require_ownership()
        try:
            return await method(message, timeout=self._deadline_s, metadata=metadata,
                                wait_for_ready=False)
        except grpc.aio.AioRpcError as exc:
            task = asyncio.current_task()
            if exc.code() is grpc.StatusCode.CANCELLED and task is not None and task.cancelling():
                raise asyncio.CancelledError from exc  # abandoned work, not an outcome
            error = tf.RpcError(exc.code(), exc.details() or "",
                                tf.trailer(list(exc.trailing_metadata() or ())))
            # The status and Prism's message: metadata (credentials) never reaches a log.
            log.warning("prism %s of %s: %s %s", flow, reference, error.code.name,
                        tf._text(error.message, 200))
            return error

    async def create(self, prepared: tf.PrismCreate, account: PrismAccount) -> ProviderOutcome:
        answer = await self._call("create_link", prepared.message, account,
                                  prepared.merchant_id, prepared.reference)
        if isinstance(answer, Transient):
            return answer
        if isinstance(answer, tf.RpcError):
            return tf.read_create_error(answer)
        return tf.read_create(answer, prepared)

    async def lookup(self, reference: str, account: PrismAccount,
                     sent: Any = None) -> ProviderOutcome:
        """Get by ``merchant_payout_id``: never creates; only a found payout or NOT_FOUND
        is an answer, anything else proves nothing (:class:`Transient`)."""
        merchant_id = sent.merchant_id if isinstance(sent, (tf.PrismCreate, LinkRef)) else ""
        answer = await self._call("get", tf.get_request(reference), account, merchant_id,
                                  reference)
        if isinstance(answer, Transient):
            return Transient("lookup_" + answer.reason)
        if isinstance(answer, tf.RpcError):
            return tf.read_get_error(answer)
        return tf.read_get(answer, reference)

    async def status(self, link: LinkRef, account: PrismAccount) -> StatusOutcome:
        """Get by our reference and the connector's payout id: its status now. A refusal
        or a failure proves nothing (the caller polls again)."""
        answer = await self._call("get", tf.status_request(link), account,
                                  link.merchant_id, link.reference)
        if isinstance(answer, Transient):
            return answer
        if isinstance(answer, tf.RpcError):
            return tf.read_status_error(answer)
        return tf.read_status(answer, link)

    async def cancel(self, link: LinkRef, account: PrismAccount) -> CancelOutcome:
        """Void the payout. A connector without the flow answers FAILED_PRECONDITION
        (``connector_flow_not_supported``); an answer lost after the call started may
        follow a cancel (Unknown)."""
        answer = await self._call("void", tf.void_request(link), account,
                                  link.merchant_id, link.reference)
        if isinstance(answer, Transient):
            return answer
        if isinstance(answer, tf.RpcError):
            return tf.read_void_error(answer)
        return tf.read_void(answer, link)

    async def aclose(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._create = self._get = self._void = None
            await channel.close()
