"""Opaque page tokens of billing's listings (issue 9, finding 3), through the real gRPC server on
SQLite and PostgreSQL: a bad token is INVALID_ARGUMENT with reason INVALID_PAGE_TOKEN and field
page_token — never INTERNAL — and good tokens page through everything once."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc
from atelier_ports.paging import encode_page_token
from tests.support.billing_server import RunningBilling, start_billing_server
from tests.support.fakes import FakeClock


@dataclass
class Env:
    billing: RunningBilling
    stub: billing_pb2_grpc.BillingServiceStub
    clock: FakeClock

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return self.billing.metadata("u1")

    def ledger(self, size: int, token: str) -> pb.ListLedgerEntriesResponse:
        result: pb.ListLedgerEntriesResponse = self.stub.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(page_size=size, page_token=token), metadata=self.md
        )
        return result

    def orders(self, size: int, token: str) -> pb.ListOrdersResponse:
        result: pb.ListOrdersResponse = self.stub.ListOrders(
            pb.ListOrdersRequest(page_size=size, page_token=token), metadata=self.md
        )
        return result


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    clock = FakeClock()  # a still clock: many rows share one timestamp (keyset tie-breaks)
    billing = start_billing_server(database_url, ATELIER_DATA_DIR=str(tmp_path), clock=clock)
    with billing.channel() as channel:
        stub = billing.stub(channel)
        stub.SetUpAccount(pb.SetUpAccountRequest(), metadata=billing.metadata("u1"))
        yield Env(billing, stub, clock)
    billing.stop()


def _error_info(exc: grpc.RpcError) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    status = rpc_status.from_call(exc)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return exc.code(), info.reason, dict(info.metadata)
    return exc.code(), "", {}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_TOKENS = {
    "huge integer (was OverflowError → INTERNAL)": "9999999999999999999999999",
    "the old ledger format": "12",
    "the old orders format": "2026-11-01T12:00:00+00:00|ord_x",
    "garbage": "!!not a token!!",
    "base64 of garbage": _b64(b"\xff\xfe\x00garbage"),
    "json of the wrong shape": _b64(b'{"k": "billing.ledger", "v": "12"}'),
    "an out-of-range cursor": encode_page_token("billing.ledger", 10**30),
    "a negative int64 overflow": encode_page_token("billing.ledger", -(2**63) - 1),
    "a string where an integer belongs": encode_page_token("billing.ledger", "12"),
    "a bad timestamp": encode_page_token("billing.orders", "yesterday", "ord_x"),
    "a token of another service": encode_page_token("tasks.tasks", "2026", "t1"),
    "far too long": "A" * 5000,
    "absurdly long": "A" * 1_000_000,
    "NUL inside": "eyJrIjo\x00",
    "deep json": _b64(b"[" * 300),
}


@pytest.mark.parametrize("listing", ["ledger", "orders"])
def test_issue_3_bad_page_tokens_are_invalid_argument(env: Env, listing: str) -> None:
    call: Callable[[int, str], Any] = env.ledger if listing == "ledger" else env.orders
    for label, token in BAD_TOKENS.items():
        with pytest.raises(grpc.RpcError) as info:
            call(5, token)
        assert _error_info(info.value) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
            {"field": "page_token"},
        ), label


def test_issue_3_a_token_of_the_other_listing_is_refused(env: Env) -> None:
    for n in range(3):
        env.stub.CreateOrder(
            pb.CreateOrderRequest(item_id="pack_100", channel="local", request_id=f"o{n}"),
            metadata=env.md,
        )
        env.stub.HoldCredits(pb.HoldCreditsRequest(request_id=f"t{n}", amount=1), metadata=env.md)
    ledger_token = env.ledger(1, "").next_page_token
    orders_token = env.orders(1, "").next_page_token
    assert ledger_token and orders_token
    for call, foreign in ((env.ledger, orders_token), (env.orders, ledger_token)):
        with pytest.raises(grpc.RpcError) as info:
            call(1, foreign)
        assert _error_info(info.value)[:2] == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "INVALID_PAGE_TOKEN",
        )


def _page_all(call: Callable[[int, str], Any], size: int, attr: str) -> list[list[str]]:
    pages: list[list[str]] = []
    token = ""
    while True:
        response = call(size, token)
        pages.append([item.id for item in getattr(response, attr)])
        token = response.next_page_token
        if not token:
            return pages
        assert len(pages) < 100, "paging does not end"


def test_issue_3_page_tokens_walk_every_entry_once(env: Env) -> None:
    for n in range(10):
        env.stub.HoldCredits(pb.HoldCreditsRequest(request_id=f"t{n}", amount=1), metadata=env.md)
        if n % 3 == 0:
            env.clock.advance(seconds=1)
    for n in range(7):  # orders created in the same instant: the id breaks the tie
        env.stub.CreateOrder(
            pb.CreateOrderRequest(item_id="pack_100", channel="local", request_id=f"o{n}"),
            metadata=env.md,
        )
        if n == 4:
            env.clock.advance(seconds=1)
    all_entries = [e.id for e in env.ledger(100, "").entries]
    all_orders = [o.id for o in env.orders(100, "").orders]
    assert (len(all_entries), len(all_orders)) == (11, 7)
    for size in (1, 3, 4):
        entry_pages = _page_all(env.ledger, size, "entries")
        order_pages = _page_all(env.orders, size, "orders")
        assert [i for page in entry_pages for i in page] == all_entries  # no gap, no repeat
        assert [i for page in order_pages for i in page] == all_orders
        assert all(0 < len(page) <= size for page in entry_pages + order_pages)
    tokens = [env.ledger(4, "").next_page_token, env.orders(4, "").next_page_token]
    assert all(not t.isdigit() and "|" not in t for t in tokens)  # opaque, not a raw cursor
