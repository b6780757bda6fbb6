"""The webhook endpoint for generation providers: relays to the tasks service's
HandleProviderNotification and answers 200, 400 (bad signature) or 503, recording the reasons."""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from atelier_common.context import outgoing_metadata

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from tests.support.webhook_relay import WebhookRelay
from tests.tasks.billing_rpc import error_reason


class GenerationWebhookRelay(WebhookRelay):
    """Start it first (the tasks settings need its URL), then ``attach`` the tasks server."""

    def __init__(self) -> None:
        super().__init__()
        self.reasons: list[str] = []

    def attach(self, tasks_port: int, internal_token: str) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{tasks_port}")
        self._closers.append(channel.close)
        stub = pb_grpc.TaskServiceStub(channel)
        metadata = outgoing_metadata(internal_token, user_id=None)

        def forward(provider: str, headers: Mapping[str, str], body: bytes) -> int:
            request = pb.HandleProviderNotificationRequest(
                provider=provider,
                headers=[pb.Header(name=k.lower(), value=v) for k, v in headers.items()],
                body=body,
            )
            try:
                stub.HandleProviderNotification(request, metadata=metadata, timeout=15)
            except grpc.RpcError as exc:
                self.reasons.append(error_reason(exc))
                return 400 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 503
            return 200

        self.forward = forward
