"""A real gRPC server on port 0 that answers each method with a scripted status (and
``google.rpc.ErrorInfo``), counting the calls: for testing how clients read failed calls."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

GENERIC = "/atelier.test.v1.ScriptedService/Call"
SLOW = "SLOW"  # an answer that never comes before the caller's deadline


@dataclass
class Answer:
    status: str = "OK"
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


class ScriptedServer:
    def __init__(self, methods: tuple[str, ...]) -> None:
        self.answers: dict[str, Answer] = {m: Answer() for m in methods}
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handlers = {
            m.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(
                self._handler(m),
                request_deserializer=lambda b: b,
                response_serializer=lambda b: b,
            )
            for m in methods
        }
        services: dict[str, dict[str, Any]] = {}
        for m in methods:
            service = m.split("/")[1]
            services.setdefault(service, {})[m.rsplit("/", 1)[1]] = handlers[m.rsplit("/", 1)[1]]
        for service, table in services.items():
            self._server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, table),)
            )
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def answer(self, method: str, status: str, reason: str = "", **metadata: str) -> None:
        self.answers[method] = Answer(status, reason, dict(metadata))
        self.calls.clear()

    def _handler(self, method: str) -> Any:
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            with self._lock:
                self.calls[method] += 1
                answer = self.answers[method]
            if answer.status == "OK":
                return b""
            if answer.status == SLOW:
                done = threading.Event()
                context.add_callback(done.set)
                done.wait(30)  # until the caller gives up (or 30 s)
                return b""
            info = error_details_pb2.ErrorInfo(
                reason=answer.reason, domain="test.atelier", metadata=answer.metadata
            )
            detail = any_pb2.Any()
            detail.Pack(info)
            status = status_pb2.Status(
                code=getattr(code_pb2, answer.status),
                message=f"scripted {answer.status}",
                details=[detail],
            )
            context.abort_with_status(rpc_status.to_status(status))
            raise AssertionError("unreachable")

        return handle

    def stop(self) -> None:
        self._server.stop(None)


@contextmanager
def scripted_server(*methods: str) -> Iterator[ScriptedServer]:
    server = ScriptedServer(methods or (GENERIC,))
    try:
        yield server
    finally:
        server.stop()
