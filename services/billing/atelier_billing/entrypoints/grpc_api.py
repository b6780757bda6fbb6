"""The gRPC inbound adapter: maps protobuf messages to use-case calls and back.

Errors are not handled here: domain errors propagate to the interceptor of
``atelier_common.grpc_server``, which owns the one exception → status table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc
from atelier_common.context import current_call, require_user
from atelier_common.timestamps import from_timestamp, to_timestamp
from google.protobuf.message import Message

from atelier.billing.v1 import billing_pb2 as pb
from atelier.billing.v1 import billing_pb2_grpc as pb_grpc
from atelier_billing.application.account_activity import GetAccount, ListAccountActivity
from atelier_billing.application.accounts import (
    GetBalance,
    ListLedger,
    SetUpAccount,
    UpdateContact,
)
from atelier_billing.application.adjustments import AdjustCredits
from atelier_billing.application.checkout import CompleteSandboxCheckout
from atelier_billing.application.expiry import RunExpiry
from atelier_billing.application.holds import CaptureHold, HoldCredits, ReleaseHold
from atelier_billing.application.orders import CreateOrder, GetOrder, ListOrders
from atelier_billing.application.payments.notifications import HandleNotification
from atelier_billing.application.reconcile import RefreshOrder
from atelier_billing.application.refund_order import RefundOrder
from atelier_billing.application.use_cases import BillingUseCases
from atelier_billing.domain import model
from atelier_ports import problems
from atelier_ports.clock import Clock
from atelier_ports.paging import InvalidPageToken

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BillingService"].full_name
USERLESS_METHODS = frozenset(
    {
        f"/{SERVICE_NAME}/HandlePaymentNotification",
        f"/{SERVICE_NAME}/CompleteSandboxCheckout",
        f"/{SERVICE_NAME}/RunExpiry",
        f"/{SERVICE_NAME}/GetCatalog",
    }
)


# No text field of this API needs more (the longest, a webhook's signature header, is < 1 KiB).
MAX_TEXT = 10_000


def _check_text(message: Message) -> None:
    """No text field may hold a NUL character (PostgreSQL cannot store one, and no identifier,
    reason or name needs it) or be absurdly long. Refused as INVALID_ARGUMENT naming the field."""
    for descriptor, value in message.ListFields():
        values = value if descriptor.is_repeated else [value]
        for item in values:
            if isinstance(item, str):
                if descriptor.name == "page_token" and ("\x00" in item or len(item) > MAX_TEXT):
                    raise InvalidPageToken()  # one reason for every bad token
                if "\x00" in item:
                    raise problems.InvalidArgument(
                        f"{descriptor.name} must not contain NUL characters",
                        field=descriptor.name,
                    )
                if len(item) > MAX_TEXT:
                    raise problems.InvalidArgument(
                        f"{descriptor.name} is longer than {MAX_TEXT} characters",
                        field=descriptor.name,
                    )
            if isinstance(item, Message):
                _check_text(item)


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _checked(method: _Method) -> _Method:
    """Checks every request of a servicer method before the method sees it."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Message, context: grpc.ServicerContext) -> Any:
        _check_text(request)
        return method(self, request, context)

    return wrapper  # type: ignore[return-value]


_SOURCES = {
    model.GrantSource.SIGNUP_BONUS: pb.GRANT_SOURCE_SIGNUP_BONUS,
    model.GrantSource.PACK: pb.GRANT_SOURCE_PACK,
    model.GrantSource.MEMBERSHIP: pb.GRANT_SOURCE_MEMBERSHIP,
    model.GrantSource.ADMIN: pb.GRANT_SOURCE_ADMIN,
    model.GrantSource.GRACE: pb.GRANT_SOURCE_GRACE,
}
_LEDGER_KINDS = {
    model.LedgerKind.GRANT: pb.LEDGER_ENTRY_KIND_GRANT,
    model.LedgerKind.HOLD: pb.LEDGER_ENTRY_KIND_HOLD,
    model.LedgerKind.CAPTURE: pb.LEDGER_ENTRY_KIND_CAPTURE,
    model.LedgerKind.RELEASE: pb.LEDGER_ENTRY_KIND_RELEASE,
    model.LedgerKind.EXPIRE: pb.LEDGER_ENTRY_KIND_EXPIRE,
    model.LedgerKind.ADJUST: pb.LEDGER_ENTRY_KIND_ADJUST,
}
_HOLD_STATUS = {
    model.HoldStatus.HELD: pb.HOLD_STATUS_HELD,
    model.HoldStatus.CAPTURED: pb.HOLD_STATUS_CAPTURED,
    model.HoldStatus.RELEASED: pb.HOLD_STATUS_RELEASED,
}
_ITEM_KINDS = {
    model.ItemKind.PACK: pb.CATALOG_ITEM_KIND_PACK,
    model.ItemKind.MEMBERSHIP: pb.CATALOG_ITEM_KIND_MEMBERSHIP,
}
_ORDER_STATUS = {
    model.OrderStatus.PENDING: pb.ORDER_STATUS_PENDING,
    model.OrderStatus.PAID: pb.ORDER_STATUS_PAID,
    model.OrderStatus.FAILED: pb.ORDER_STATUS_FAILED,
    model.OrderStatus.EXPIRED: pb.ORDER_STATUS_EXPIRED,
    model.OrderStatus.REFUNDED: pb.ORDER_STATUS_REFUNDED,
}
_MEMBERSHIP_STATUS = {
    model.MembershipStatus.ACTIVE: pb.MEMBERSHIP_STATUS_ACTIVE,
    model.MembershipStatus.EXPIRED: pb.MEMBERSHIP_STATUS_EXPIRED,
    model.MembershipStatus.CANCELED: pb.MEMBERSHIP_STATUS_CANCELED,
}


def balance_pb(balance: model.Balance, now: datetime) -> pb.Balance:
    msg = pb.Balance(
        user_id=balance.user_id,
        available=balance.available,
        held=balance.held,
        grants=[
            pb.Grant(
                id=g.id,
                source=_SOURCES[g.source],
                amount=g.amount,
                remaining=g.remaining,
                expire_time=to_timestamp(g.expires_at),
                create_time=to_timestamp(g.created_at),
                reference=g.reference,
            )
            for g in balance.grants
        ],
    )
    m = balance.membership
    if m is not None:
        msg.membership.CopyFrom(
            pb.Membership(
                active=m.is_active(now),
                plan_id=m.plan_id,
                status=_MEMBERSHIP_STATUS[m.status],
                period_end_time=to_timestamp(m.period_end),
                quota_total=m.quota_total,
                quota_left=balance.quota_left,
            )
        )
    return msg


def hold_pb(hold: model.Hold) -> pb.Hold:
    return pb.Hold(
        request_id=hold.request_id,
        amount=hold.amount,
        status=_HOLD_STATUS[hold.status],
        reference=hold.reference,
        create_time=to_timestamp(hold.created_at),
        settle_time=to_timestamp(hold.settled_at),
    )


def order_pb(order: model.Order) -> pb.Order:
    return pb.Order(
        id=order.id,
        number=order.number,
        user_id=order.user_id,
        item_id=order.item_id,
        item_kind=_ITEM_KINDS[order.item_kind],
        credits=order.credits,
        amount=order.amount,
        currency=order.currency,
        channel=order.channel,
        status=_ORDER_STATUS[order.status],
        checkout=pb.Checkout(
            url=order.checkout_url or "",
            code_url=order.checkout_code_url or "",
            expire_time=to_timestamp(order.expires_at),
        ),
        provider_transaction_id=order.provider_transaction_id or "",
        create_time=to_timestamp(order.created_at),
        paid_time=to_timestamp(order.paid_at),
        failed_time=to_timestamp(order.failed_at),
        expired_time=to_timestamp(order.expired_at),
        refunded_time=to_timestamp(order.refunded_at),
    )


def ledger_entry_pb(e: model.LedgerEntry) -> pb.LedgerEntry:
    return pb.LedgerEntry(
        id=str(e.id),
        kind=_LEDGER_KINDS[e.kind],
        amount=e.amount,
        held_change=e.held_change,
        balance_after=e.balance_after,
        reference=e.reference,
        reason=e.reason,
        create_time=to_timestamp(e.created_at),
    )


_ACTIVITY_KINDS = {
    "ledger": pb.ACTIVITY_KIND_LEDGER,
    "payment": pb.ACTIVITY_KIND_PAYMENT,
    "refund": pb.ACTIVITY_KIND_REFUND,
}


class BillingServicer(pb_grpc.BillingServiceServicer):
    def __init__(self, use_cases: BillingUseCases, clock: Clock) -> None:
        self._uc = use_cases
        self._clock = clock.now

    @_checked
    def SetUpAccount(
        self, request: pb.SetUpAccountRequest, context: grpc.ServicerContext
    ) -> pb.SetUpAccountResponse:
        done = self._uc.set_up_account(
            SetUpAccount(require_user(), request.email or None, request.name or None)
        )
        return pb.SetUpAccountResponse(
            balance=balance_pb(done.balance, self._clock()), created=done.created
        )

    @_checked
    def UpdateAccountContact(
        self, request: pb.UpdateAccountContactRequest, context: grpc.ServicerContext
    ) -> pb.UpdateAccountContactResponse:
        pushed = self._uc.update_contact(
            UpdateContact(require_user(), request.email or None, request.name or None)
        )
        return pb.UpdateAccountContactResponse(providers=pushed)

    @_checked
    def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.ServicerContext
    ) -> pb.GetBalanceResponse:
        balance = self._uc.get_balance(GetBalance(require_user()))
        return pb.GetBalanceResponse(balance=balance_pb(balance, self._clock()))

    @_checked
    def ListLedgerEntries(
        self, request: pb.ListLedgerEntriesRequest, context: grpc.ServicerContext
    ) -> pb.ListLedgerEntriesResponse:
        page = self._uc.list_ledger(
            ListLedger(require_user(), request.page_size, request.page_token)
        )
        return pb.ListLedgerEntriesResponse(
            entries=[
                pb.LedgerEntry(
                    id=str(e.id),
                    kind=_LEDGER_KINDS[e.kind],
                    amount=e.amount,
                    held_change=e.held_change,
                    balance_after=e.balance_after,
                    reference=e.reference,
                    reason=e.reason,
                    create_time=to_timestamp(e.created_at),
                )
                for e in page.items
            ],
            next_page_token=page.next_token,
        )

    @_checked
    def HoldCredits(
        self, request: pb.HoldCreditsRequest, context: grpc.ServicerContext
    ) -> pb.HoldCreditsResponse:
        hold = self._uc.hold_credits(
            HoldCredits(require_user(), request.request_id, request.amount, request.reference)
        )
        return pb.HoldCreditsResponse(hold=hold_pb(hold))

    @_checked
    def CaptureHold(
        self, request: pb.CaptureHoldRequest, context: grpc.ServicerContext
    ) -> pb.CaptureHoldResponse:
        return pb.CaptureHoldResponse(
            hold=hold_pb(self._uc.capture_hold(CaptureHold(require_user(), request.request_id)))
        )

    @_checked
    def ReleaseHold(
        self, request: pb.ReleaseHoldRequest, context: grpc.ServicerContext
    ) -> pb.ReleaseHoldResponse:
        return pb.ReleaseHoldResponse(
            hold=hold_pb(self._uc.release_hold(ReleaseHold(require_user(), request.request_id)))
        )

    @_checked
    def AdjustCredits(
        self, request: pb.AdjustCreditsRequest, context: grpc.ServicerContext
    ) -> pb.AdjustCreditsResponse:
        call = current_call()
        expires = (
            from_timestamp(request.expire_time, "expire_time")
            if request.HasField("expire_time")
            else None
        )
        balance = self._uc.adjust_credits(
            AdjustCredits(
                call.is_admin,
                request.user_id,
                request.amount,
                request.reason,
                request.request_id,
                expires,
            )
        )
        return pb.AdjustCreditsResponse(balance=balance_pb(balance, self._clock()))

    @_checked
    def GetAccount(
        self, request: pb.GetAccountRequest, context: grpc.ServicerContext
    ) -> pb.GetAccountResponse:
        account = self._uc.get_account(
            GetAccount(current_call().is_admin, request.user_id, request.recent_orders)
        )
        return pb.GetAccountResponse(
            balance=balance_pb(account.balance, self._clock()),
            recent_orders=[order_pb(o) for o in account.recent_orders],
        )

    @_checked
    def ListAccountActivity(
        self, request: pb.ListAccountActivityRequest, context: grpc.ServicerContext
    ) -> pb.ListAccountActivityResponse:
        page = self._uc.list_account_activity(
            ListAccountActivity(
                current_call().is_admin, request.user_id, request.page_size, request.page_token
            )
        )
        return pb.ListAccountActivityResponse(
            entries=[
                pb.ActivityEntry(
                    id=a.id,
                    kind=_ACTIVITY_KINDS[a.kind],
                    time=to_timestamp(a.at),
                    ledger_entry=ledger_entry_pb(a.ledger_entry) if a.ledger_entry else None,
                    order=order_pb(a.order) if a.order else None,
                    page_token=a.page_token,
                    cause=a.cause,
                    cause_id=a.cause_id,
                )
                for a in page.items
            ],
            next_page_token=page.next_token,
        )

    @_checked
    def GetCatalog(
        self, request: pb.GetCatalogRequest, context: grpc.ServicerContext
    ) -> pb.GetCatalogResponse:
        view = self._uc.get_catalog()
        return pb.GetCatalogResponse(
            market=view.market,
            channels=view.channels,
            items=[
                pb.CatalogItem(
                    id=i.id,
                    kind=_ITEM_KINDS[i.kind],
                    name=i.name,
                    credits=i.credits,
                    period_days=i.period_days,
                    prices=[pb.Price(currency=c, amount=a) for c, a in sorted(i.prices.items())],
                )
                for i in view.catalog.items
            ],
        )

    @_checked
    def CreateOrder(
        self, request: pb.CreateOrderRequest, context: grpc.ServicerContext
    ) -> pb.CreateOrderResponse:
        order = self._uc.create_order(
            CreateOrder(require_user(), request.item_id, request.channel, request.request_id)
        )
        return pb.CreateOrderResponse(order=order_pb(order))

    @_checked
    def GetOrder(
        self, request: pb.GetOrderRequest, context: grpc.ServicerContext
    ) -> pb.GetOrderResponse:
        return pb.GetOrderResponse(
            order=order_pb(self._uc.get_order(GetOrder(require_user(), request.order_id)))
        )

    @_checked
    def ListOrders(
        self, request: pb.ListOrdersRequest, context: grpc.ServicerContext
    ) -> pb.ListOrdersResponse:
        page = self._uc.list_orders(
            ListOrders(require_user(), request.page_size, request.page_token)
        )
        return pb.ListOrdersResponse(
            orders=[order_pb(o) for o in page.items], next_page_token=page.next_token
        )

    @_checked
    def RefreshOrder(
        self, request: pb.RefreshOrderRequest, context: grpc.ServicerContext
    ) -> pb.RefreshOrderResponse:
        order = self._uc.refresh_order(RefreshOrder(require_user(), request.order_id))
        return pb.RefreshOrderResponse(order=order_pb(order))

    @_checked
    def RefundOrder(
        self, request: pb.RefundOrderRequest, context: grpc.ServicerContext
    ) -> pb.RefundOrderResponse:
        order = self._uc.refund_order(
            RefundOrder(current_call().is_admin, request.order_id, request.reason)
        )
        return pb.RefundOrderResponse(order=order_pb(order))

    @_checked
    def HandlePaymentNotification(
        self, request: pb.HandlePaymentNotificationRequest, context: grpc.ServicerContext
    ) -> pb.HandlePaymentNotificationResponse:
        headers = {h.name: h.value for h in request.headers}
        outcome = self._uc.handle_notification(
            HandleNotification(request.provider, headers, request.body)
        )
        return pb.HandlePaymentNotificationResponse(
            applied=outcome.applied, event_id=outcome.event_id, order_id=outcome.order_id or ""
        )

    @_checked
    def CompleteSandboxCheckout(
        self, request: pb.CompleteSandboxCheckoutRequest, context: grpc.ServicerContext
    ) -> pb.CompleteSandboxCheckoutResponse:
        if request.outcome not in (pb.SANDBOX_OUTCOME_PAID, pb.SANDBOX_OUTCOME_FAILED):
            raise problems.InvalidArgument("outcome must be PAID or FAILED", field="outcome")
        order = self._uc.complete_sandbox_checkout(
            CompleteSandboxCheckout(request.order_id, request.outcome == pb.SANDBOX_OUTCOME_PAID)
        )
        return pb.CompleteSandboxCheckoutResponse(order=order_pb(order))

    @_checked
    def RunExpiry(
        self, request: pb.RunExpiryRequest, context: grpc.ServicerContext
    ) -> pb.RunExpiryResponse:
        report = self._uc.run_expiry(RunExpiry())
        return pb.RunExpiryResponse(
            expired_grants=report.expired_grants,
            expired_credits=report.expired_credits,
            expired_orders=report.expired_orders,
            expired_memberships=report.expired_memberships,
        )
