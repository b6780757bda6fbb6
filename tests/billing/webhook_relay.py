"""A real HTTP endpoint standing in for the gateway's ``POST /webhooks/{provider}``: it forwards
the raw body and headers to billing's HandlePaymentNotification and answers 200 or 400."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from tests.support.billing_server import RunningBilling


class WebhookRelay:
    """Start it first (billing needs its URL), then ``attach`` the billing server."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                provider = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = pb.HandlePaymentNotificationRequest(
                    provider=provider,
                    headers=[pb.Header(name=k, value=v) for k, v in self.headers.items()],
                    body=body,
                )
                try:
                    relay.stub.HandlePaymentNotification(
                        request, metadata=relay.metadata, timeout=10
                    )
                    status = 200
                except grpc.RpcError as exc:
                    status = 400 if exc.code() != grpc.StatusCode.UNAVAILABLE else 503
                relay.statuses.append(status)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def attach(self, billing: RunningBilling) -> None:
        self._channel = billing.channel()
        self.stub = billing_pb2_grpc.BillingServiceStub(self._channel)
        self.metadata = billing.metadata(None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._channel.close()
