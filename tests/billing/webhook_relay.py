"""The webhook endpoint for payment providers: relays to billing's HandlePaymentNotification
and answers 200, 400 (refused) or 503 (billing unavailable)."""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from tests.support.billing_server import RunningBilling
from tests.support.webhook_relay import WebhookRelay as _Relay


class WebhookRelay(_Relay):
    def attach(self, billing: RunningBilling) -> None:
        channel = billing.channel()
        self._closers.append(channel.close)
        stub = billing_pb2_grpc.BillingServiceStub(channel)
        metadata = billing.metadata(None)

        def forward(provider: str, headers: Mapping[str, str], body: bytes) -> int:
            request = pb.HandlePaymentNotificationRequest(
                provider=provider,
                headers=[pb.Header(name=k, value=v) for k, v in headers.items()],
                body=body,
            )
            try:
                stub.HandlePaymentNotification(request, metadata=metadata, timeout=10)
            except grpc.RpcError as exc:
                return 503 if exc.code() == grpc.StatusCode.UNAVAILABLE else 400
            return 200

        self.forward = forward
