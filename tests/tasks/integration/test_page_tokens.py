"""Issue 9 #3: every tasks listing pages with opaque tokens; a bad token is INVALID_ARGUMENT
(reason INVALID_PAGE_TOKEN, field page_token) over the real gRPC server, never a 5xx."""

from __future__ import annotations

import base64
from collections.abc import Callable

import grpc
import pytest
from atelier_common.context import outgoing_metadata
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from atelier.tasks.v1 import tasks_pb2 as pb
from atelier_ports.paging import encode_page_token
from atelier_tasks.application.views import ALL_TASKS_PAGE, IMAGES_PAGE, TASKS_PAGE
from tests.tasks.grpc_stack import GrpcStack

Lister = Callable[[GrpcStack, int, str], tuple[list[str], str]]


def list_tasks(stack: GrpcStack, size: int, token: str) -> tuple[list[str], str]:
    reply = stack.stub.ListTasks(
        pb.ListTasksRequest(page_size=size, page_token=token), metadata=stack.md("alice")
    )
    return [t.id for t in reply.tasks], reply.next_page_token


def list_all_tasks(stack: GrpcStack, size: int, token: str) -> tuple[list[str], str]:
    admin = outgoing_metadata(stack.billing.internal_token, user_id="root", role="admin")
    reply = stack.stub.ListAllTasks(
        pb.ListAllTasksRequest(page_size=size, page_token=token), metadata=admin
    )
    return [t.id for t in reply.tasks], reply.next_page_token


def list_images(stack: GrpcStack, size: int, token: str) -> tuple[list[str], str]:
    reply = stack.stub.ListImages(
        pb.ListImagesRequest(page_size=size, page_token=token), metadata=stack.md("alice")
    )
    return [i.id for i in reply.images], reply.next_page_token


LISTINGS: dict[str, tuple[Lister, str]] = {
    "ListTasks": (list_tasks, TASKS_PAGE),
    "ListAllTasks": (list_all_tasks, ALL_TASKS_PAGE),
    "ListImages": (list_images, IMAGES_PAGE),
}


def error_info(error: grpc.RpcError) -> tuple[str, dict[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info.reason, dict(info.metadata)
    return "", {}


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def bad_tokens(kind: str) -> dict[str, str]:
    foreign = {TASKS_PAGE: IMAGES_PAGE, ALL_TASKS_PAGE: TASKS_PAGE, IMAGES_PAGE: ALL_TASKS_PAGE}
    return {
        "huge decimal": "9999999999999999999999999",
        "huge int in a well-formed token": encode_page_token(kind, 2**62, "task_x"),
        "int64 minimum": encode_page_token(kind, -(2**63), "task_x"),
        "int beyond 64 bits": b64(b'{"k":"%s","v":[%d,"t"]}' % (kind.encode(), 10**30)),
        "garbage": "%%%not base64%%%",
        "base64 of garbage": b64(b"\xff\xfe\x00garbage"),
        "json not an object": b64(b"[1,2,3]"),
        "wrong shape": encode_page_token(kind, "task_x", 5),
        "too few values": encode_page_token(kind, 5),
        "a bool for the time": b64(b'{"k":"%s","v":[true,"t"]}' % kind.encode()),
        "foreign listing": encode_page_token(foreign[kind], 1_700_000_000_000_000, "task_x"),
        "another service": encode_page_token("billing.v1.ledger", 12),
        "old-style cursor": b64(b"2026-11-20T12:00:00+00:00|task_1"),
        "very long": "A" * 5000,
        "deep json": b64(b"[" * 100_000),
    }


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_bad_page_tokens_are_invalid_argument(grpc_stack: GrpcStack, listing: str) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    stack.create("alice")
    stack.run_worker()
    lister, kind = LISTINGS[listing]
    for name, token in bad_tokens(kind).items():
        with pytest.raises(grpc.RpcError) as err:
            lister(stack, 2, token)
        assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT, name
        assert error_info(err.value) == ("INVALID_PAGE_TOKEN", {"field": "page_token"}), name


def test_a_token_of_one_listing_is_refused_by_every_other(grpc_stack: GrpcStack) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    for _ in range(3):
        stack.create("alice")
    stack.run_worker()
    issued = {name: lister(stack, 1, "")[1] for name, (lister, _) in LISTINGS.items()}
    assert all(issued.values())
    for name, (lister, _) in LISTINGS.items():
        assert lister(stack, 1, issued[name])[0]  # each continues its own listing
        for other, token in issued.items():
            if other == name:
                continue
            with pytest.raises(grpc.RpcError) as err:
                lister(stack, 1, token)
            assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT, (name, other)
            assert error_info(err.value)[0] == "INVALID_PAGE_TOKEN"


@pytest.mark.parametrize("listing", sorted(LISTINGS))
def test_paging_round_trip_has_no_gaps_or_duplicates(grpc_stack: GrpcStack, listing: str) -> None:
    stack = grpc_stack
    stack.set_up("alice")
    created = [stack.create("alice").id for _ in range(7)]  # one frozen clock: equal created_at
    stack.run_worker()
    lister, _ = LISTINGS[listing]
    everything, last = lister(stack, 100, "")
    assert not last and len(everything) == 7
    if listing != "ListImages":
        assert sorted(everything) == sorted(created)
    for size in (1, 2, 3, 7):
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            ids, token = lister(stack, size, token)
            seen.extend(ids)
            pages += 1
            assert pages <= 8
            if not token:
                break
        assert seen == everything, size  # same order, nothing missing, nothing twice
