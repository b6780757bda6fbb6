"""Reading google.rpc.ErrorInfo reasons from gRPC errors in tests."""

from __future__ import annotations

import grpc

from atelier_tasks.adapters.billing_grpc import error_reason as _reason


def error_reason(error: grpc.RpcError) -> str:
    return _reason(error)
