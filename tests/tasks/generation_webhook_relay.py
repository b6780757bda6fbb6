"""A real HTTP endpoint standing in for the gateway's ``POST /webhooks/{provider}`` for
generation providers: it forwards the raw body and headers to the tasks service's
HandleProviderNotification and answers 200, 400 (bad signature) or 503, recording the reasons."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from atelier_common.context import outgoing_metadata

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier.tasks.v1 import tasks_pb2_grpc as pb_grpc
from tests.tasks.billing_rpc import error_reason


class GenerationWebhookRelay:
    """Start it first (the tasks settings need its URL), then ``attach`` the tasks server."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.reasons: list[str] = []
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                provider = self.path.rsplit("/", 1)[-1]
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = pb.HandleProviderNotificationRequest(
                    provider=provider,
                    headers=[pb.Header(name=k.lower(), value=v) for k, v in self.headers.items()],
                    body=body,
                )
                try:
                    relay.stub.HandleProviderNotification(
                        request, metadata=relay.metadata, timeout=15
                    )
                    status = 200
                except grpc.RpcError as exc:
                    relay.reasons.append(error_reason(exc))
                    status = 400 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 503
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
        self._channel: grpc.Channel | None = None

    def attach(self, tasks_port: int, internal_token: str) -> None:
        self._channel = grpc.insecure_channel(f"127.0.0.1:{tasks_port}")
        self.stub = pb_grpc.TaskServiceStub(self._channel)
        self.metadata = outgoing_metadata(internal_token, user_id=None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._channel is not None:
            self._channel.close()
