"""Billing over gRPC: the ``BillingGateway`` port (asyncio, for the HTTP routes) and the
``BillingAccounts`` port (blocking, for the sign-up and profile use cases).

With ``grpc_tasks`` the only modules of the gateway that import generated code: billing's
messages are built and read here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import grpc
from atelier_common.context import outgoing_metadata
from atelier_common.grpc_client import (
    ErrorCategory,
    RemoteCallError,
    RetryPolicy,
    call_unary,
    raise_as_problem,
)
from google.protobuf.message import Message

from atelier.billing.v1 import billing_pb2, billing_pb2_grpc
from atelier_gateway.adapters.grpc_channel import AsyncChannel, enum_name, time_of
from atelier_gateway.application import billing_views as dto
from atelier_gateway.application.calls import (
    Caller,
    Notification,
    NotificationReceipt,
    Page,
    PageRequest,
)

# Calls that wait on a payment provider get a longer deadline than the default.
PROVIDER_CALL_TIMEOUT = 15.0

pb = billing_pb2
T = TypeVar("T")


# Wire enums → the API's names. An unknown value (a proto newer than this gateway) is a
# KeyError: an internal error, never a made-up name.
LEDGER_KINDS: Mapping[pb.LedgerEntryKind, dto.LedgerKind] = {
    pb.LEDGER_ENTRY_KIND_GRANT: "grant",
    pb.LEDGER_ENTRY_KIND_HOLD: "hold",
    pb.LEDGER_ENTRY_KIND_CAPTURE: "capture",
    pb.LEDGER_ENTRY_KIND_RELEASE: "release",
    pb.LEDGER_ENTRY_KIND_EXPIRE: "expire",
    pb.LEDGER_ENTRY_KIND_ADJUST: "adjust",
}
ORDER_STATUSES: Mapping[pb.OrderStatus, dto.OrderStatus] = {
    pb.ORDER_STATUS_PENDING: "pending",
    pb.ORDER_STATUS_PAID: "paid",
    pb.ORDER_STATUS_FAILED: "failed",
    pb.ORDER_STATUS_EXPIRED: "expired",
    pb.ORDER_STATUS_REFUNDED: "refunded",
}
ITEM_KINDS: Mapping[pb.CatalogItemKind, dto.ItemKind] = {
    pb.CATALOG_ITEM_KIND_PACK: "pack",
    pb.CATALOG_ITEM_KIND_MEMBERSHIP: "membership",
}
SANDBOX_OUTCOMES: Mapping[dto.SandboxOutcome, pb.SandboxOutcome] = {
    "paid": pb.SANDBOX_OUTCOME_PAID,
    "failed": pb.SANDBOX_OUTCOME_FAILED,
}


def balance_of(b: pb.Balance) -> dto.Balance:
    membership = None
    if b.HasField("membership"):
        m = b.membership
        membership = dto.Membership(
            active=m.active,
            plan_id=m.plan_id,
            status=enum_name(pb.MembershipStatus, m.status, "MEMBERSHIP_STATUS_"),
            period_end=time_of(m, "period_end_time"),
            quota_total=m.quota_total,
            quota_left=m.quota_left,
        )
    return dto.Balance(
        available=b.available,
        held=b.held,
        membership=membership,
        grants=[
            dto.Grant(
                id=g.id,
                source=enum_name(pb.GrantSource, g.source, "GRANT_SOURCE_"),
                amount=g.amount,
                remaining=g.remaining,
                expires_at=time_of(g, "expire_time"),
                created_at=time_of(g, "create_time"),
            )
            for g in b.grants
        ],
    )


def ledger_entry_of(e: pb.LedgerEntry) -> dto.LedgerEntry:
    return dto.LedgerEntry(
        id=e.id,
        kind=LEDGER_KINDS[e.kind],
        amount=e.amount,
        held_change=e.held_change,
        balance_after=e.balance_after,
        reference=e.reference,
        reason=e.reason,
        created_at=time_of(e, "create_time"),
    )


def catalog_of(reply: pb.GetCatalogResponse) -> dto.Catalog:
    return dto.Catalog(
        market=reply.market,
        items=[
            dto.CatalogItem(
                id=item.id,
                kind=ITEM_KINDS[item.kind],
                name=item.name,
                credits=item.credits,
                period_days=(
                    item.period_days if item.kind == pb.CATALOG_ITEM_KIND_MEMBERSHIP else None
                ),
                prices=[dto.Price(currency=p.currency, amount=p.amount) for p in item.prices],
            )
            for item in reply.items
        ],
        channels=list(reply.channels),
    )


def order_of(o: pb.Order) -> dto.Order:
    return dto.Order(
        id=o.id,
        number=o.number,
        status=ORDER_STATUSES[o.status],
        item_id=o.item_id,
        item_kind=ITEM_KINDS[o.item_kind],
        credits=o.credits,
        amount=o.amount,
        currency=o.currency,
        channel=o.channel,
        checkout=dto.Checkout(
            url=o.checkout.url or None,
            code_url=o.checkout.code_url or None,
            expires_at=time_of(o.checkout, "expire_time"),
        ),
        provider_transaction_id=o.provider_transaction_id or None,
        created_at=time_of(o, "create_time"),
        paid_at=time_of(o, "paid_time"),
        failed_at=time_of(o, "failed_time"),
        expired_at=time_of(o, "expired_time"),
        refunded_at=time_of(o, "refunded_time"),
    )


ACTIVITY_KINDS: Mapping[pb.ActivityKind, dto.ActivityKind] = {
    pb.ACTIVITY_KIND_LEDGER: "ledger",
    pb.ACTIVITY_KIND_PAYMENT: "payment",
    pb.ACTIVITY_KIND_REFUND: "refund",
}


def activity_of(a: pb.ActivityEntry) -> dto.AccountActivity:
    return dto.AccountActivity(
        id=a.id,
        kind=ACTIVITY_KINDS[a.kind],
        at=time_of(a, "time"),
        ledger_entry=ledger_entry_of(a.ledger_entry) if a.HasField("ledger_entry") else None,
        order=order_of(a.order) if a.HasField("order") else None,
        cause=a.cause,
        cause_id=a.cause_id,
        page_token=a.page_token,
    )


class GrpcBillingGateway:
    """The ``BillingGateway`` port over an asyncio channel."""

    def __init__(self, address: str, internal_token: str, timeout: float = 5.0) -> None:
        self._remote = AsyncChannel("billing", address, internal_token, timeout)
        self._stub: billing_pb2_grpc.BillingServiceAsyncStub | None = None

    def _billing(self) -> billing_pb2_grpc.BillingServiceAsyncStub:
        if self._stub is None:
            self._stub = billing_pb2_grpc.BillingServiceStub(self._remote.channel())
        return self._stub

    async def get_balance(self, caller: Caller) -> dto.Balance:
        reply = await self._remote.unary(self._billing().GetBalance, pb.GetBalanceRequest(), caller)
        return balance_of(reply.balance)

    async def list_ledger(self, caller: Caller, page: PageRequest) -> Page[dto.LedgerEntry]:
        request = pb.ListLedgerEntriesRequest(page_size=page.page_size, page_token=page.page_token)
        reply = await self._remote.unary(self._billing().ListLedgerEntries, request, caller)
        return Page([ledger_entry_of(e) for e in reply.entries], reply.next_page_token)

    async def get_catalog(self, caller: Caller) -> dto.Catalog:
        reply = await self._remote.unary(self._billing().GetCatalog, pb.GetCatalogRequest(), caller)
        return catalog_of(reply)

    async def create_order(
        self, caller: Caller, order: dto.NewOrder, request_id: str | None
    ) -> dto.Order:
        request = pb.CreateOrderRequest(
            item_id=order.item_id, channel=order.channel, request_id=request_id or ""
        )
        reply = await self._remote.unary(self._billing().CreateOrder, request, caller)
        return order_of(reply.order)

    async def list_orders(self, caller: Caller, page: PageRequest) -> Page[dto.Order]:
        request = pb.ListOrdersRequest(page_size=page.page_size, page_token=page.page_token)
        reply = await self._remote.unary(self._billing().ListOrders, request, caller)
        return Page([order_of(o) for o in reply.orders], reply.next_page_token)

    async def get_order(self, caller: Caller, order_id: str) -> dto.Order:
        request = pb.GetOrderRequest(order_id=order_id)
        reply = await self._remote.unary(self._billing().GetOrder, request, caller)
        return order_of(reply.order)

    async def refresh_order(self, caller: Caller, order_id: str) -> dto.Order:
        request = pb.RefreshOrderRequest(order_id=order_id)
        reply = await self._remote.unary(
            self._billing().RefreshOrder, request, caller, PROVIDER_CALL_TIMEOUT
        )
        return order_of(reply.order)

    async def refund_order(self, caller: Caller, order_id: str, reason: str) -> dto.Order:
        request = pb.RefundOrderRequest(order_id=order_id, reason=reason)
        reply = await self._remote.unary(
            self._billing().RefundOrder, request, caller, PROVIDER_CALL_TIMEOUT
        )
        return order_of(reply.order)

    async def get_account(self, caller: Caller, user_id: str, recent_orders: int) -> dto.Account:
        request = pb.GetAccountRequest(user_id=user_id, recent_orders=recent_orders)
        reply = await self._remote.unary(self._billing().GetAccount, request, caller)
        return dto.Account(
            balance=balance_of(reply.balance),
            recent_orders=[order_of(o) for o in reply.recent_orders],
        )

    async def list_account_activity(
        self, caller: Caller, user_id: str, page: PageRequest
    ) -> Page[dto.AccountActivity]:
        request = pb.ListAccountActivityRequest(
            user_id=user_id, page_size=page.page_size, page_token=page.page_token
        )
        reply = await self._remote.unary(self._billing().ListAccountActivity, request, caller)
        entries = [activity_of(a) for a in reply.entries]
        return Page(entries, reply.next_page_token, [a.page_token for a in entries])

    async def adjust_credits(
        self, caller: Caller, user_id: str, amount: int, reason: str, request_id: str
    ) -> dto.Balance:
        request = pb.AdjustCreditsRequest(
            user_id=user_id, amount=amount, reason=reason, request_id=request_id
        )
        reply = await self._remote.unary(self._billing().AdjustCredits, request, caller)
        return balance_of(reply.balance)

    async def complete_sandbox_checkout(
        self, caller: Caller, order_id: str, outcome: dto.SandboxOutcome
    ) -> None:
        request = pb.CompleteSandboxCheckoutRequest(
            order_id=order_id, outcome=SANDBOX_OUTCOMES[outcome]
        )
        await self._remote.unary(
            self._billing().CompleteSandboxCheckout, request, caller, PROVIDER_CALL_TIMEOUT
        )

    async def handle_payment_notification(
        self, caller: Caller, notification: Notification
    ) -> NotificationReceipt:
        request = pb.HandlePaymentNotificationRequest(
            provider=notification.provider,
            headers=[pb.Header(name=k, value=v) for k, v in notification.headers],
            body=notification.body,
        )
        reply = await self._remote.unary(
            self._billing().HandlePaymentNotification, request, caller, PROVIDER_CALL_TIMEOUT
        )
        return NotificationReceipt(applied=reply.applied, event_id=reply.event_id or None)

    async def healthy(self) -> bool:
        return await self._remote.healthy()

    async def close(self) -> None:
        await self._remote.close()
        self._stub = None


class GrpcBillingAccounts:
    """The ``BillingAccounts`` port over a blocking channel (use cases run in worker threads).

    Both calls are idempotent (one account and bonus per user; contact details overwrite), so
    the transient statuses are retried; billing's refusals become the matching problem
    (``to_problem``) and are never reported as "unavailable".
    """

    def __init__(self, address: str, internal_token: str, timeout: float = 5.0) -> None:
        self._token = internal_token
        self._timeout = timeout
        self._channel = grpc.insecure_channel(address)
        self._stub = billing_pb2_grpc.BillingServiceStub(self._channel)
        self._policy = RetryPolicy(attempts=2, backoff=0.1)

    def _call(self, method: Callable[..., T], request: Message, user_id: str) -> T:
        return call_unary(
            method,
            request,
            service="billing",
            metadata=outgoing_metadata(self._token, user_id, "user"),
            timeout=self._timeout,
            idempotent=True,
            policy=self._policy,
            budget=self._timeout,
        )

    def set_up_account(self, user_id: str, email: str | None, name: str | None) -> bool:
        request = pb.SetUpAccountRequest(email=email or "", name=name or "")
        try:
            reply = self._call(self._stub.SetUpAccount, request, user_id)
        except RemoteCallError as e:
            raise_as_problem(e)
        return bool(reply.created)

    def update_contact(self, user_id: str, email: str | None, name: str | None) -> None:
        request = pb.UpdateAccountContactRequest(email=email or "", name=name or "")
        try:
            self._call(self._stub.UpdateAccountContact, request, user_id)
        except RemoteCallError as e:
            if e.category is ErrorCategory.NOT_FOUND:
                return  # no billing account yet: it will be created with the new details
            raise_as_problem(e)

    def close(self) -> None:
        self._channel.close()
