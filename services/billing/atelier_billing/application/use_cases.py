"""Billing's use cases wired on given ports: ``build_use_cases`` builds each handler once, with
exactly the dependencies it needs; the composition root (``bootstrap.py``) and the unit tests
call it. Each handler lives in its own module (``accounts``, ``holds``, ``adjustments``,
``orders``, ``checkout``, ``payments``, ``reconcile``, ``refund_order``, ``expiry``,
``ledger_check``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atelier_billing.application.account_activity import (
    GetAccountHandler,
    ListAccountActivityHandler,
)
from atelier_billing.application.accounts import (
    GetBalanceHandler,
    ListLedgerHandler,
    SetUpAccountHandler,
    UpdateContactHandler,
)
from atelier_billing.application.adjustments import AdjustCreditsHandler
from atelier_billing.application.checkout import CompleteSandboxCheckoutHandler, StartCheckout
from atelier_billing.application.config import BillingConfig
from atelier_billing.application.expiry import RunExpiryHandler
from atelier_billing.application.holds import (
    CaptureHoldHandler,
    HoldCreditsHandler,
    ReleaseHoldHandler,
)
from atelier_billing.application.ledger_check import CheckLedgerHandler
from atelier_billing.application.orders import (
    CreateOrderHandler,
    GetCatalogHandler,
    GetOrderHandler,
    ListOrdersHandler,
)
from atelier_billing.application.payments.customers import CustomerUpdated
from atelier_billing.application.payments.notifications import (
    ApplyPaymentEventHandler,
    HandleNotificationHandler,
    event_handlers,
)
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    NotificationSender,
    PaymentProvider,
)
from atelier_billing.application.reconcile import (
    Reconcile,
    ReconcilePendingOrdersHandler,
    RefreshOrderHandler,
)
from atelier_billing.application.refund_order import RefundOrderHandler
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator


@dataclass(frozen=True, slots=True)
class BillingUseCases:
    set_up_account: SetUpAccountHandler
    update_contact: UpdateContactHandler
    get_balance: GetBalanceHandler
    list_ledger: ListLedgerHandler
    hold_credits: HoldCreditsHandler
    capture_hold: CaptureHoldHandler
    release_hold: ReleaseHoldHandler
    adjust_credits: AdjustCreditsHandler
    get_catalog: GetCatalogHandler
    create_order: CreateOrderHandler
    get_order: GetOrderHandler
    list_orders: ListOrdersHandler
    refresh_order: RefreshOrderHandler
    refund_order: RefundOrderHandler
    reconcile_pending_orders: ReconcilePendingOrdersHandler
    apply_payment_event: ApplyPaymentEventHandler
    handle_notification: HandleNotificationHandler
    complete_sandbox_checkout: CompleteSandboxCheckoutHandler
    run_expiry: RunExpiryHandler
    check_ledger: CheckLedgerHandler
    get_account: GetAccountHandler
    list_account_activity: ListAccountActivityHandler


def build_use_cases(
    *,
    uow: BillingUnitOfWorkFactory,
    clock: Clock,
    ids: IdGenerator,
    config: BillingConfig,
    providers: Mapping[str, PaymentProvider],
    sender: NotificationSender | None = None,
) -> BillingUseCases:
    providers = dict(providers)
    get_order = GetOrderHandler(uow)
    apply_event = ApplyPaymentEventHandler(uow, clock, event_handlers(ids, config))
    reconcile = Reconcile(clock, providers, apply_event)
    get_balance = GetBalanceHandler(uow, clock)
    return BillingUseCases(
        set_up_account=SetUpAccountHandler(uow, clock, ids, config),
        update_contact=UpdateContactHandler(uow, providers),
        get_balance=get_balance,
        list_ledger=ListLedgerHandler(uow, config),
        hold_credits=HoldCreditsHandler(uow, clock, ids),
        capture_hold=CaptureHoldHandler(uow, clock, ids, config),
        release_hold=ReleaseHoldHandler(uow, clock, ids, config),
        adjust_credits=AdjustCreditsHandler(uow, clock, ids),
        get_catalog=GetCatalogHandler(config, providers),
        create_order=CreateOrderHandler(
            uow, clock, ids, config, providers, StartCheckout(uow, clock, config)
        ),
        get_order=get_order,
        list_orders=ListOrdersHandler(uow, config),
        refresh_order=RefreshOrderHandler(get_order, reconcile),
        refund_order=RefundOrderHandler(uow, clock, providers, apply_event),
        reconcile_pending_orders=ReconcilePendingOrdersHandler(uow, clock, reconcile),
        apply_payment_event=apply_event,
        handle_notification=HandleNotificationHandler(
            providers, apply_event, CustomerUpdated(uow, clock, providers)
        ),
        complete_sandbox_checkout=CompleteSandboxCheckoutHandler(uow, clock, providers, sender),
        run_expiry=RunExpiryHandler(uow, clock, providers),
        check_ledger=CheckLedgerHandler(uow),
        get_account=GetAccountHandler(uow, get_balance, config),
        list_account_activity=ListAccountActivityHandler(uow, config),
    )
