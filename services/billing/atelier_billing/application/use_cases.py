"""Billing use cases (the application service).

Each method is one transaction on a unit of work. Every change to a user's credits first takes
the account's row lock, then applies atomic conditional updates; the database's CHECK and UNIQUE
constraints are the last line of defence (F7). Network calls to payment providers never happen
inside a database transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from atelier_billing.application.policy import BillingPolicy
from atelier_billing.application.ports import DuplicateKey, UnitOfWork, UnitOfWorkFactory
from atelier_billing.domain import errors
from atelier_billing.domain.model import (
    Balance,
    Catalog,
    Grant,
    GrantSource,
    Hold,
    HoldStatus,
    ItemKind,
    LedgerCheck,
    LedgerEntry,
    LedgerKind,
    Membership,
    MembershipStatus,
    NewLedgerEntry,
    Order,
    OrderStatus,
    allocate,
    next_membership_period,
    sources_of,
)
from atelier_ports import problems
from atelier_ports.clock import Clock
from atelier_ports.errors import InvalidNotification, ProviderRejected, ProviderUnavailable
from atelier_ports.ids import IdGenerator
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token
from atelier_ports.payments import (
    CheckoutMode,
    CheckoutRequest,
    NotificationSender,
    OrderRef,
    PaymentEvent,
    PaymentEventKind,
    PaymentProvider,
    PaymentState,
    SandboxPaymentProvider,
)

log = logging.getLogger("atelier.billing")

T = TypeVar("T")

MAX_REQUEST_ID = 128
MAX_REASON = 500
MAX_EMAIL = 320
MAX_NAME = 200
# The most credits one hold or adjustment may move: far above any real use, far below the
# int64 columns, so no sum of them can overflow into a database error.
MAX_CREDITS = 1_000_000_000
# The listings' page-token kinds: a token of one listing is refused by the other.
LEDGER_PAGE = "billing.ledger"
ORDERS_PAGE = "billing.orders"


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: Sequence[T]
    next_token: str


@dataclass(frozen=True, slots=True)
class NotificationOutcome:
    applied: bool
    event_id: str
    order_id: str | None


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    expired_grants: int = 0
    expired_credits: int = 0
    expired_orders: int = 0
    expired_memberships: int = 0


def _shown(value: str, limit: int = 64) -> str:
    """A caller's value as quoted in an error message: never more than ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


def _require_key(value: str, name: str) -> str:
    value = value.strip()
    if not value or len(value) > MAX_REQUEST_ID:
        raise problems.InvalidArgument(f"{name} must be 1-{MAX_REQUEST_ID} characters", field=name)
    return value


def _contact(email: str | None, name: str | None) -> tuple[str | None, str | None]:
    email, name = (email or "").strip() or None, (name or "").strip() or None
    if email is not None and (len(email) > MAX_EMAIL or "@" not in email):
        raise problems.InvalidArgument("email is not a valid address", field="email")
    if name is not None and len(name) > MAX_NAME:
        raise problems.InvalidArgument(f"name is longer than {MAX_NAME} characters", field="name")
    return email, name


def _positive(amount: int, name: str = "amount") -> int:
    if not 0 < amount <= MAX_CREDITS:
        raise problems.InvalidArgument(f"{name} must be between 1 and {MAX_CREDITS}", field=name)
    return amount


class BillingService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        policy: BillingPolicy,
        providers: Mapping[str, PaymentProvider],
        sender: NotificationSender | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._ids = ids
        self._policy = policy
        self._providers = dict(providers)
        self._sender = sender

    # ---- accounts and balances -------------------------------------------------------------

    def set_up_account(
        self, user_id: str, email: str | None = None, name: str | None = None
    ) -> tuple[Balance, bool]:
        """Create the account and grant the sign-up bonus — once per user, however often called."""
        email, name = _contact(email, name)
        now = self._clock.now()
        with self._uow() as uow:
            created = uow.accounts.create(user_id, now)
            uow.accounts.set_contact(user_id, email, name)
            bonus = self._policy.signup_bonus
            if created and bonus > 0:
                expires = (
                    now + self._policy.signup_bonus_validity
                    if self._policy.signup_bonus_validity
                    else None
                )
                uow.accounts.lock(user_id)
                self._grant(
                    uow,
                    user_id,
                    GrantSource.SIGNUP_BONUS,
                    bonus,
                    expires,
                    now,
                    key=f"signup:{user_id}",
                    reference="signup bonus",
                )
            uow.commit()
        return self.get_balance(user_id), created

    def update_contact(self, user_id: str, email: str | None, name: str | None) -> list[str]:
        """Remember new contact details and push them to providers' customer records (F3)."""
        email, name = _contact(email, name)
        with self._uow() as uow:
            if uow.accounts.lock(user_id) is None:
                raise errors.AccountNotFound("no billing account for this user")
            uow.accounts.set_contact(user_id, email, name)
            customers = dict(uow.customers.for_user(user_id))
            uow.commit()
        pushed: list[str] = []
        for provider_name, customer_id in sorted(customers.items()):
            provider = self._providers.get(provider_name)
            if provider is None:
                continue
            try:
                provider.update_customer(customer_id, email, name)
            except (ProviderUnavailable, ProviderRejected) as exc:
                raise errors.PaymentProviderUnavailable(
                    f"could not update the customer at {provider_name}"
                ) from exc
            pushed.append(provider_name)
        return pushed

    def get_balance(self, user_id: str) -> Balance:
        with self._uow() as uow:
            return self._balance_in(uow, user_id, self._clock.now())

    @staticmethod
    def _balance_in(uow: UnitOfWork, user_id: str, now: datetime) -> Balance:
        """The balance as this unit of work sees it (no second unit of work: on SQLite that
        would wait for the first one's lock)."""
        account = uow.accounts.get(user_id)
        if account is None:
            raise errors.AccountNotFound("no billing account for this user")
        grants = tuple(
            g for g in uow.grants.for_user(user_id) if g.remaining > 0 and not g.is_expired(now)
        )
        membership = uow.memberships.get(user_id)
        quota_left = 0
        if membership is not None and membership.is_active(now):
            quota_left = sum(g.remaining for g in grants if g.source is GrantSource.MEMBERSHIP)
        return Balance(
            user_id=user_id,
            available=sum(g.remaining for g in grants),
            held=account.held,
            grants=grants,
            membership=membership,
            quota_left=quota_left,
        )

    def list_ledger(self, user_id: str, page_size: int, page_token: str) -> Page[LedgerEntry]:
        size = self._page_size(page_size)
        before: int | None = None
        if page_token:
            (value,) = decode_page_token(page_token, LEDGER_PAGE, (int,))
            before = int(value)
        with self._uow() as uow:
            rows = list(uow.ledger.page(user_id, size + 1, before))
        more = len(rows) > size
        rows = rows[:size]
        return Page(
            items=rows, next_token=encode_page_token(LEDGER_PAGE, rows[-1].id) if more else ""
        )

    # ---- holds (F6) ---------------------------------------------------------------------------

    def hold_credits(self, user_id: str, request_id: str, amount: int, reference: str) -> Hold:
        request_id = _require_key(request_id, "request_id")
        _positive(amount)
        now = self._clock.now()
        try:
            with self._uow() as uow:
                self._lock(uow, user_id)
                # Under the account lock a repeat sees the first call's committed hold.
                existing = uow.holds.get(user_id, request_id)
                if existing is not None:
                    return self._same_hold(existing, amount)
                self._expire_user_grants(uow, user_id, now)
                after = uow.accounts.move_to_held(user_id, amount)
                if after is None:
                    raise errors.InsufficientCredits(
                        f"{amount} credits needed", metadata={"needed": str(amount)}
                    )
                allocations = allocate(uow.grants.spendable(user_id, now), amount, now)
                for part in allocations:
                    if not uow.grants.take(part.grant_id, part.amount):
                        raise errors.InsufficientCredits("credits changed concurrently")
                hold = Hold(
                    id=self._ids.new_id("hold"),
                    user_id=user_id,
                    request_id=request_id,
                    amount=amount,
                    status=HoldStatus.HELD,
                    reference=reference[:200],
                    created_at=now,
                    allocations=tuple(allocations),
                )
                uow.holds.add(hold)
                uow.ledger.append(
                    NewLedgerEntry(
                        user_id=user_id,
                        kind=LedgerKind.HOLD,
                        amount=-amount,
                        held_change=amount,
                        balance_after=after,
                        reference=hold.reference,
                        hold_id=hold.id,
                    ),
                    now,
                )
                uow.commit()
                return hold
        except DuplicateKey:
            # A concurrent call with the same request_id won; ours rolled back. Return its hold.
            found = self._existing_hold(user_id, request_id, amount)
            if found is None:  # pragma: no cover - the unique key guarantees it exists
                raise
            return found

    def _existing_hold(self, user_id: str, request_id: str, amount: int) -> Hold | None:
        with self._uow() as uow:
            hold = uow.holds.get(user_id, request_id)
        return self._same_hold(hold, amount) if hold is not None else None

    @staticmethod
    def _same_hold(hold: Hold, amount: int) -> Hold:
        if hold.amount != amount:
            raise errors.IdempotencyConflict(
                f"request_id {hold.request_id!r} already holds {hold.amount} credits"
            )
        return hold

    def capture_hold(self, user_id: str, request_id: str) -> Hold:
        return self._settle(user_id, request_id, HoldStatus.CAPTURED)

    def release_hold(self, user_id: str, request_id: str) -> Hold:
        return self._settle(user_id, request_id, HoldStatus.RELEASED)

    def _settle(self, user_id: str, request_id: str, target: HoldStatus) -> Hold:
        request_id = _require_key(request_id, "request_id")
        now = self._clock.now()
        with self._uow() as uow:
            hold = uow.holds.get(user_id, request_id)
            if hold is None:
                raise errors.HoldNotFound(f"no hold for request_id {request_id!r}")
            self._lock(uow, user_id)
            if not uow.holds.transition(hold.id, HoldStatus.HELD, target, now):
                current = uow.holds.get(user_id, request_id)
                assert current is not None
                if current.status == target:
                    return current  # a repeat: one effect
                if current.status is HoldStatus.CAPTURED:
                    raise errors.HoldAlreadyCaptured("the hold was already captured")
                raise errors.HoldAlreadyReleased("the hold was already released")
            release = target is HoldStatus.RELEASED
            after = uow.accounts.settle_held(user_id, hold.amount, back_to_available=release)
            if release:
                self._return_to_grants(uow, hold, now)
            uow.ledger.append(
                NewLedgerEntry(
                    user_id=user_id,
                    kind=LedgerKind.RELEASE if release else LedgerKind.CAPTURE,
                    amount=hold.amount if release else 0,
                    held_change=-hold.amount,
                    balance_after=after,
                    reference=hold.reference,
                    hold_id=hold.id,
                ),
                now,
            )
            uow.commit()
        return replace(hold, status=target, settled_at=now)

    def _return_to_grants(self, uow: UnitOfWork, hold: Hold, now: datetime) -> None:
        """Credits go back to the grants they came from; an expired grant's share is re-granted
        with a grace expiry (F6), so no credit silently vanishes."""
        regrant = 0
        for part in uow.holds.allocations(hold.id):
            grant = uow.grants.get(part.grant_id)
            if (
                grant is None
                or grant.is_expired(now)
                or not uow.grants.give_back(part.grant_id, part.amount)
            ):
                regrant += part.amount
        if regrant:
            uow.grants.add(
                Grant(
                    id=self._ids.new_id("grant"),
                    user_id=hold.user_id,
                    source=GrantSource.GRACE,
                    amount=regrant,
                    remaining=regrant,
                    expires_at=now + self._policy.grace_period,
                    created_at=now,
                    reference=f"returned from {hold.reference or hold.request_id}",
                ),
                idempotency_key=f"grace:{hold.id}",
            )

    # ---- admin adjustments ----------------------------------------------------------------

    def adjust_credits(
        self,
        admin: bool,
        user_id: str,
        amount: int,
        reason: str,
        request_id: str,
        expires_at: datetime | None,
    ) -> Balance:
        if not admin:
            raise errors.AdminOnly("only an admin can adjust credits")
        request_id = _require_key(request_id, "request_id")
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise problems.InvalidArgument("a reason is required", field="reason")
        if amount == 0 or abs(amount) > MAX_CREDITS:
            raise problems.InvalidArgument(
                f"amount must be non-zero and at most {MAX_CREDITS} either way", field="amount"
            )
        key = f"adjust:{request_id}"
        now = self._clock.now()
        if amount > 0 and expires_at is not None and expires_at <= now:
            raise problems.InvalidArgument("expire_time must be in the future", field="expire_time")
        try:
            with self._uow() as uow:
                self._lock(uow, user_id)
                # Under the account lock a repeat sees the first call's committed entry; it is
                # answered from this same unit of work (#11: never a second one inside it).
                earlier = uow.ledger.by_key(key)
                if earlier is not None:
                    if (earlier.user_id, earlier.amount) != (user_id, amount):
                        raise errors.IdempotencyConflict(
                            f"request_id {request_id!r} was used for another adjustment"
                        )
                    return self._balance_in(uow, user_id, now)
                if amount > 0:
                    self._grant(
                        uow,
                        user_id,
                        GrantSource.ADMIN,
                        amount,
                        expires_at,
                        now,
                        key=key,
                        reference="admin adjustment",
                        reason=reason,
                        kind=LedgerKind.ADJUST,
                    )
                else:
                    self._expire_user_grants(uow, user_id, now)
                    for part in allocate(uow.grants.spendable(user_id, now), -amount, now):
                        if not uow.grants.take(part.grant_id, part.amount):
                            raise errors.InsufficientCredits("credits changed concurrently")
                    after = uow.accounts.add_available(user_id, amount)
                    uow.ledger.append(
                        NewLedgerEntry(
                            user_id=user_id,
                            kind=LedgerKind.ADJUST,
                            amount=amount,
                            held_change=0,
                            balance_after=after,
                            reference="admin adjustment",
                            reason=reason,
                            idempotency_key=key,
                        ),
                        now,
                    )
                uow.commit()
        except DuplicateKey:
            pass  # the same adjustment committed concurrently: one effect
        log.info(
            "credits adjusted",
            extra={"fields": {"user": user_id, "amount": amount, "reason": reason}},
        )
        return self.get_balance(user_id)

    # ---- catalog and orders (F9, F10) -----------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        return self._policy.catalog

    @property
    def market(self) -> str:
        return self._policy.market

    @property
    def channels(self) -> list[str]:
        return sorted(self._providers)

    def create_order(self, user_id: str, item_id: str, channel: str, request_id: str) -> Order:
        item = self._policy.catalog.get(item_id)
        if item is None:
            raise errors.CatalogItemNotFound(
                f"unknown catalog item {_shown(item_id)}", field="item_id"
            )
        provider = self._providers.get(channel)
        if provider is None:
            raise errors.ChannelNotAvailable(
                f"channel must be one of {', '.join(self.channels)}", field="channel"
            )
        price = item.price_in(provider.currency)
        if price is None:
            raise errors.ChannelNotAvailable(
                f"{item_id!r} has no price in {provider.currency}", field="channel"
            )
        request_id = request_id.strip()
        if len(request_id) > MAX_REQUEST_ID:
            raise problems.InvalidArgument("request_id too long", field="request_id")
        now = self._clock.now()
        order = Order(
            id=self._ids.new_id("ord"),
            number=f"AT-{now:%y%m%d}-{self._ids.readable_code(6)}",
            user_id=user_id,
            item_id=item.id,
            item_kind=item.kind,
            credits=item.credits,
            period_days=item.period_days,
            amount=price,
            currency=provider.currency,
            channel=channel,
            status=OrderStatus.PENDING,
            created_at=now,
            expires_at=now + self._policy.order_ttl,
            request_id=request_id or None,
        )
        order, existed = self._insert_order(order)
        if existed:
            if (order.item_id, order.channel) != (item_id, channel):
                raise errors.IdempotencyConflict("request_id was used for another order")
            if order.checkout_url or order.checkout_code_url or order.status != OrderStatus.PENDING:
                return order
        return self._start_checkout(order, provider)

    def _insert_order(self, order: Order, attempts: int = 3) -> tuple[Order, bool]:
        """Insert a new order → (it, False); or (the earlier order, True) when its request_id
        was used before.

        A clash of the random order number (not of the request_id) retries with a new number.
        """
        for _ in range(attempts):
            with self._uow() as uow:
                if uow.accounts.get(order.user_id) is None:
                    raise errors.AccountNotFound("no billing account for this user")
                if order.request_id:
                    existing = uow.orders.by_request(order.user_id, order.request_id)
                    if existing is not None:
                        return existing, True
                try:
                    uow.orders.add(order)
                    uow.commit()
                    return order, False
                except DuplicateKey:
                    pass  # a concurrent twin with our request_id, or a number clash
            number = f"{order.number.rsplit('-', 1)[0]}-{self._ids.readable_code(6)}"
            order = replace(order, number=number)
        raise problems.Unavailable("could not allocate an order number; try again")

    def _customer(self, user_id: str, provider: PaymentProvider) -> str | None:
        """The user's customer at the provider: created once, remembered (F3)."""
        with self._uow() as uow:
            known = uow.customers.get(user_id, provider.name)
            account = uow.accounts.get(user_id)
        if known is not None or account is None:
            return known
        customer_id = provider.ensure_customer(user_id, account.email, account.name)
        if customer_id is None:
            return None
        try:
            with self._uow() as uow:
                uow.customers.add(user_id, provider.name, customer_id)
                uow.commit()
        except DuplicateKey:
            with self._uow() as uow:
                return uow.customers.get(user_id, provider.name)
        return customer_id

    def _start_checkout(self, order: Order, provider: PaymentProvider) -> Order:
        item = self._policy.catalog.get(order.item_id)
        try:
            customer_id = self._customer(order.user_id, provider)
            checkout = provider.create_checkout(
                CheckoutRequest(
                    order_id=order.id,
                    order_number=order.number,
                    user_id=order.user_id,
                    item_id=order.item_id,
                    item_name=item.name if item else order.item_id,
                    amount=order.amount,
                    currency=order.currency,
                    mode=(
                        CheckoutMode.SUBSCRIPTION
                        if order.item_kind is ItemKind.MEMBERSHIP
                        else CheckoutMode.ONE_TIME
                    ),
                    expires_at=order.expires_at,
                    period_days=order.period_days,
                    customer_id=customer_id,
                )
            )
        except ProviderUnavailable as exc:
            log.warning("checkout failed", extra={"fields": {"order": order.id, "error": str(exc)}})
            raise errors.PaymentProviderUnavailable(
                "the payment provider is unavailable; try again"
            ) from exc
        except ProviderRejected as exc:
            log.error("checkout refused", extra={"fields": {"order": order.id, "error": str(exc)}})
            with self._uow() as uow:
                uow.orders.transition(
                    order.id,
                    frozenset({OrderStatus.PENDING}),
                    OrderStatus.FAILED,
                    self._clock.now(),
                )
                uow.commit()
            raise errors.PaymentProviderRejected("the payment provider refused the order") from exc
        with self._uow() as uow:
            uow.orders.set_checkout(
                order.id, checkout.url, checkout.code_url, checkout.provider_reference
            )
            uow.commit()
        return replace(
            order,
            checkout_url=checkout.url,
            checkout_code_url=checkout.code_url,
            provider_reference=checkout.provider_reference,
        )

    def get_order(self, user_id: str, order_id: str) -> Order:
        with self._uow() as uow:
            order = uow.orders.get(order_id)
        if order is None or order.user_id != user_id:
            raise errors.OrderNotFound("order not found")  # never reveal others' orders
        return order

    def list_orders(self, user_id: str, page_size: int, page_token: str) -> Page[Order]:
        size = self._page_size(page_size)
        after: tuple[datetime, str] | None = None
        if page_token:
            ts, oid = decode_page_token(page_token, ORDERS_PAGE, (str, str))
            try:
                after = (datetime.fromisoformat(str(ts)), str(oid))
            except ValueError:
                raise InvalidPageToken() from None
        with self._uow() as uow:
            rows = list(uow.orders.page(user_id, size + 1, after))
        more = len(rows) > size
        rows = rows[:size]
        token = (
            encode_page_token(ORDERS_PAGE, rows[-1].created_at.isoformat(), rows[-1].id)
            if more
            else ""
        )
        return Page(items=rows, next_token=token)

    def refresh_order(self, user_id: str, order_id: str) -> Order:
        """Ask the provider (F12): a lost webhook never loses a payment."""
        order = self.get_order(user_id, order_id)
        if order.status not in (OrderStatus.PENDING, OrderStatus.EXPIRED, OrderStatus.FAILED):
            return order
        self._reconcile(order)
        return self.get_order(user_id, order_id)

    def reconcile_pending_orders(self, min_age: timedelta, limit: int = 100) -> int:
        """The periodic sweep of F12: ask providers about orders pending for a while.
        Returns how many orders this sweep changed."""
        with self._uow() as uow:
            pending = list(uow.orders.pending_since(self._clock.now() - min_age, limit))
        changed = 0
        for order in pending:
            try:
                changed += self._reconcile(order)
            except problems.DomainError as exc:  # one bad order must not stop the sweep
                log.warning(
                    "reconciliation failed",
                    extra={"fields": {"order": order.id, "reason": exc.reason}},
                )
        return changed

    def _reconcile(self, order: Order) -> bool:
        """Apply what the provider says about the order; True if that changed it."""
        provider = self._provider(order.channel)
        try:
            report = provider.query_payment(self._ref(order))
        except (ProviderUnavailable, ProviderRejected) as exc:
            raise errors.PaymentProviderUnavailable("could not reach the provider") from exc
        kind = {
            PaymentState.PAID: PaymentEventKind.PAYMENT_SUCCEEDED,
            PaymentState.FAILED: PaymentEventKind.PAYMENT_FAILED,
            PaymentState.EXPIRED: PaymentEventKind.CHECKOUT_EXPIRED,
        }.get(report.state)
        if kind is None:
            return False
        event = PaymentEvent(
            provider=order.channel,
            event_id=f"query:{order.id}:{report.state}",
            kind=kind,
            occurred_at=self._clock.now(),
            order_id=order.id,
            transaction_id=report.transaction_id,
            amount=report.amount,
            currency=report.currency,
            subscription_id=report.subscription_id,
            customer_id=report.customer_id,
            period_end=report.period_end,
        )
        return self._apply_event(event).applied

    # ---- payment notifications (F11) ------------------------------------------------------

    def handle_notification(
        self, provider_name: str, headers: Mapping[str, str], body: bytes
    ) -> NotificationOutcome:
        provider = self._providers.get(provider_name)
        if provider is None:
            raise errors.UnknownProvider(
                f"no payment provider {_shown(provider_name)}", field="provider"
            )
        try:
            event = provider.parse_notification(headers, body)
        except InvalidNotification as exc:
            log.warning(
                "notification refused",
                extra={"fields": {"provider": provider_name, "why": str(exc)}},
            )
            raise errors.InvalidSignature("the notification could not be verified") from exc
        except (ProviderUnavailable, ProviderRejected) as exc:
            # Reading the event needed the provider (e.g. which invoice a refund paid): not
            # recorded, so the provider delivers it again.
            raise errors.PaymentProviderUnavailable(
                f"could not ask {provider_name} about the notification"
            ) from exc
        if event.kind is PaymentEventKind.CUSTOMER_UPDATED:
            return self._customer_updated(event)
        return self._apply_event(event)

    def _apply_event(self, event: PaymentEvent) -> NotificationOutcome:
        now = self._clock.now()
        try:
            with self._uow() as uow:
                if uow.payment_events.seen(event.provider, event.event_id):
                    return NotificationOutcome(False, event.event_id, event.order_id)
                applied = self._apply_in(uow, event, now)
                uow.payment_events.record(
                    event.provider, event.event_id, event.kind, event.order_id, now
                )
                uow.commit()
        except DuplicateKey:
            return NotificationOutcome(False, event.event_id, event.order_id)
        log.info(
            "payment event",
            extra={"fields": {"provider": event.provider, "kind": event.kind, "applied": applied}},
        )
        return NotificationOutcome(applied, event.event_id, event.order_id)

    def _apply_in(self, uow: UnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        kind = event.kind
        if kind is PaymentEventKind.IGNORED:
            return False
        if kind is PaymentEventKind.SUBSCRIPTION_RENEWED:
            return self._renew(uow, event, now)
        if kind in (
            PaymentEventKind.SUBSCRIPTION_UPDATED,
            PaymentEventKind.SUBSCRIPTION_CANCELED,
        ):
            return self._subscription_changed(uow, event)
        if kind is PaymentEventKind.CUSTOMER_UPDATED:
            return False  # handled before any unit of work (it may call the provider)
        if kind is PaymentEventKind.REFUNDED:
            return self._refunded(uow, event, now)
        order = self._order_of(uow, event)
        if kind is PaymentEventKind.PAYMENT_SUCCEEDED:
            if event.amount != order.amount or (event.currency or "").upper() != order.currency:
                log.error(
                    "payment amount mismatch",
                    extra={
                        "fields": {
                            "order": order.id,
                            "expected": f"{order.amount} {order.currency}",
                            "got": f"{event.amount} {event.currency}",
                        }
                    },
                )
                raise errors.PaymentAmountMismatch("paid amount does not match the order")
            self._lock(uow, order.user_id)
            if not uow.orders.transition(
                order.id,
                sources_of(OrderStatus.PAID),
                OrderStatus.PAID,
                now,
                transaction_id=event.transaction_id,
            ):
                return False  # already paid (or refunded): nothing twice
            self._fulfil(uow, order, event, now)
            return True
        target = (
            OrderStatus.FAILED if kind is PaymentEventKind.PAYMENT_FAILED else OrderStatus.EXPIRED
        )
        return uow.orders.transition(order.id, frozenset({OrderStatus.PENDING}), target, now)

    def _order_of(self, uow: UnitOfWork, event: PaymentEvent) -> Order:
        order = self._find_order(uow, event)
        if order is None:
            raise errors.OrderNotFound("the notification names an unknown order")
        return order

    @staticmethod
    def _find_order(uow: UnitOfWork, event: PaymentEvent) -> Order | None:
        """By our order id, else by the provider's payment id, else by the invoice it paid (a
        subscription's first invoice is the transaction id of its order)."""
        order = uow.orders.get(event.order_id) if event.order_id else None
        for transaction in (event.transaction_id, event.details.get("invoice_id")):
            if order is None and transaction:
                order = uow.orders.by_transaction(event.provider, transaction)
        if order is None or order.channel != event.provider:
            return None
        return order

    def _renew(self, uow: UnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        """A subscription invoice was paid: grant the next period's quota, once per invoice."""
        membership = (
            uow.memberships.by_subscription(event.subscription_id)
            if event.subscription_id
            else None
        )
        if membership is None:
            # The checkout that created the subscription has not been applied yet (events arrive
            # out of order): refuse, so the provider delivers this again later.
            raise errors.SubscriptionNotYetKnown("renewal for a subscription we do not know yet")
        plan = self._policy.catalog.get(membership.plan_id)
        if plan is None:
            raise errors.CatalogItemNotFound(f"plan {membership.plan_id!r} left the catalog")
        key = f"renewal:{event.provider}:{event.transaction_id or event.event_id}"
        if uow.grants.by_idempotency_key(key) is not None:
            return False
        start = max(membership.period_end, now)
        end = event.period_end if event.period_end and event.period_end > start else None
        end = end or start + timedelta(days=plan.period_days)
        self._lock(uow, membership.user_id)
        uow.memberships.put(
            replace(
                membership,
                status=MembershipStatus.ACTIVE,
                period_start=start,
                period_end=end,
                quota_total=plan.credits,
            )
        )
        self._grant(
            uow,
            membership.user_id,
            GrantSource.MEMBERSHIP,
            plan.credits,
            end,
            now,
            key=key,
            reference=f"renewal {event.transaction_id or ''}".strip(),
        )
        return True

    def _subscription_changed(self, uow: UnitOfWork, event: PaymentEvent) -> bool:
        membership = (
            uow.memberships.by_subscription(event.subscription_id)
            if event.subscription_id
            else None
        )
        if membership is None:
            raise errors.SubscriptionNotYetKnown("update for a subscription we do not know yet")
        if membership.status is MembershipStatus.CANCELED:
            return False  # final: a late "updated" never revives a deleted subscription
        if event.kind is PaymentEventKind.SUBSCRIPTION_CANCELED:
            updated = replace(membership, status=MembershipStatus.CANCELED)
        else:
            updated = replace(
                membership,
                cancel_at_period_end=event.details.get("cancel_at_period_end") == "true",
            )
        if updated == membership:
            return False
        uow.memberships.put(updated)
        return True

    def _customer_updated(self, event: PaymentEvent) -> NotificationOutcome:
        """The gateway's profile is the source of truth for contact details (#14). Billing's copy
        is only what the gateway pushed; an edit made at the provider is not taken over but
        overwritten with billing's copy, deliberately and logged. Our own push comes back as a
        ``customer.updated`` that matches the copy: a no-op, so there is no loop."""
        with self._uow() as uow:
            if uow.payment_events.seen(event.provider, event.event_id):
                return NotificationOutcome(False, event.event_id, None)
            user_id = (
                uow.customers.by_customer(event.provider, event.customer_id)
                if event.customer_id
                else None
            )
            account = uow.accounts.get(user_id) if user_id else None
        overwritten = False
        if account is not None and event.customer_id:
            drifted = sorted(
                name
                for name, ours in (("email", account.email), ("name", account.name))
                if ours is not None and event.details.get(name) != ours
            )
            if drifted:
                overwritten = self._overwrite_customer(
                    event.provider, event.customer_id, account.email, account.name, drifted
                )
        try:
            with self._uow() as uow:
                uow.payment_events.record(
                    event.provider, event.event_id, event.kind, None, self._clock.now()
                )
                uow.commit()
        except DuplicateKey:
            return NotificationOutcome(False, event.event_id, None)
        return NotificationOutcome(overwritten, event.event_id, None)

    def _overwrite_customer(
        self,
        provider_name: str,
        customer_id: str,
        email: str | None,
        name: str | None,
        drifted: list[str],
    ) -> bool:
        provider = self._provider(provider_name)
        try:
            provider.update_customer(customer_id, email, name)
        except ProviderUnavailable as exc:
            # Not recorded: the provider delivers the event again and we try again.
            raise errors.PaymentProviderUnavailable(
                f"could not restore the customer at {provider_name}"
            ) from exc
        except ProviderRejected as exc:
            log.error(
                "provider-side customer edit could not be overwritten",
                extra={"fields": {"provider": provider_name, "customer": customer_id}},
            )
            log.debug("provider refusal", exc_info=exc)
            return False
        log.warning(
            "provider-side customer edit overwritten with the profile",
            extra={
                "fields": {
                    "provider": provider_name,
                    "customer": customer_id,
                    "fields": ",".join(drifted),
                }
            },
        )
        return True

    def _refunded(self, uow: UnitOfWork, event: PaymentEvent, now: datetime) -> bool:
        order = self._find_order(uow, event)
        if order is not None:
            return self._refund(uow, order, event, now)
        invoice = event.details.get("invoice_id")
        renewal = (
            uow.grants.by_idempotency_key(f"renewal:{event.provider}:{invoice}")
            if invoice
            else None
        )
        if renewal is None:
            raise errors.OrderNotFound("the refund names an unknown payment")
        # A refunded renewal: that period's quota goes, and the membership ends.
        self._lock(uow, renewal.user_id)
        if uow.ledger.has_key(f"refund:{renewal.id}"):
            return False
        self._end_membership(uow, renewal.user_id, f"renewal {invoice}", now)
        if not uow.ledger.has_key(f"refund:{renewal.id}"):
            # nothing unspent was left: remember the refund all the same
            self._take_back(
                uow, renewal, 0, f"renewal {invoice}", f"refund:{renewal.id}", now, memo=True
            )
        return True

    def _refund(self, uow: UnitOfWork, order: Order, event: PaymentEvent, now: datetime) -> bool:
        """Refunded: the order is marked so and the unspent part of what it bought is taken back
        (never below zero); the ledger says how much. A refunded membership ends at once, with
        the unspent quota of its period taken back."""
        self._lock(uow, order.user_id)
        if not uow.orders.transition(
            order.id, frozenset({OrderStatus.PAID}), OrderStatus.REFUNDED, now
        ):
            return False
        if order.item_kind is ItemKind.MEMBERSHIP:
            self._end_membership(uow, order.user_id, f"order {order.number}", now)
            return True
        grant = uow.grants.by_idempotency_key(f"order:{order.id}")
        if grant is None or grant.remaining == 0:
            return True
        refunded = event.amount if event.amount is not None else order.amount
        wanted = -(-order.credits * min(refunded, order.amount) // max(order.amount, 1))
        self._take_back(uow, grant, wanted, f"order {order.number}", f"refund:{order.id}", now)
        return True

    def _end_membership(self, uow: UnitOfWork, user_id: str, reference: str, now: datetime) -> None:
        """End the membership now (final, like a deleted subscription) and take back every unspent
        credit of its quota: without a membership there is no quota."""
        membership = uow.memberships.get(user_id)
        if membership is not None and membership.status is not MembershipStatus.CANCELED:
            uow.memberships.put(
                replace(
                    membership,
                    status=MembershipStatus.CANCELED,
                    period_end=min(membership.period_end, now),
                )
            )
        for grant in uow.grants.for_user(user_id):
            if grant.source is GrantSource.MEMBERSHIP and grant.remaining > 0:
                self._take_back(uow, grant, grant.remaining, reference, f"refund:{grant.id}", now)

    @staticmethod
    def _take_back(
        uow: UnitOfWork,
        grant: Grant,
        wanted: int,
        reference: str,
        key: str,
        now: datetime,
        *,
        memo: bool = False,
    ) -> None:
        """Take up to ``wanted`` unspent credits back from ``grant``, in the ledger under ``key``;
        with ``memo`` a zero entry is written even when nothing was left to take."""
        take = max(0, min(grant.remaining, wanted))
        if take > 0:
            if not uow.grants.take(grant.id, take):
                return
            after = uow.accounts.add_available(grant.user_id, -take)
        elif memo:
            account = uow.accounts.get(grant.user_id)
            after = account.available if account else 0
        else:
            return
        uow.ledger.append(
            NewLedgerEntry(
                user_id=grant.user_id,
                kind=LedgerKind.ADJUST,
                amount=-take,
                held_change=0,
                balance_after=after,
                reference=reference,
                reason=f"refund: {take} unspent credits taken back",
                idempotency_key=key,
                grant_id=grant.id,
            ),
            now,
        )

    def _fulfil(self, uow: UnitOfWork, order: Order, event: PaymentEvent, now: datetime) -> None:
        """Grant what the order bought, in the transaction that marks it paid (F11)."""
        if order.item_kind is ItemKind.MEMBERSHIP:
            current = uow.memberships.get(order.user_id)
            period = next_membership_period(current, order.period_days, now)
            uow.memberships.put(
                Membership(
                    user_id=order.user_id,
                    plan_id=order.item_id,
                    status=MembershipStatus.ACTIVE,
                    period_start=period.start,
                    period_end=period.end,
                    quota_total=order.credits,
                    subscription_id=event.subscription_id
                    or (current.subscription_id if current else None),
                )
            )
            self._grant(
                uow,
                order.user_id,
                GrantSource.MEMBERSHIP,
                order.credits,
                period.end,
                now,
                key=f"order:{order.id}",
                reference=f"order {order.number}",
            )
            return
        item = self._policy.catalog.get(order.item_id)
        validity = item.validity_days if item else None
        self._grant(
            uow,
            order.user_id,
            GrantSource.PACK,
            order.credits,
            now + timedelta(days=validity) if validity else None,
            now,
            key=f"order:{order.id}",
            reference=f"order {order.number}",
        )

    def complete_sandbox_checkout(self, order_id: str, paid: bool) -> Order:
        """The sandbox page's Pay/Fail: the local provider sends its signed notification to our
        webhook endpoint, which verifies it like any provider's."""
        with self._uow() as uow:
            order = uow.orders.get(order_id)
        if order is None:
            raise errors.OrderNotFound("order not found")
        provider = self._provider(order.channel)
        if not isinstance(provider, SandboxPaymentProvider) or self._sender is None:
            raise errors.NotSandboxChannel("this order cannot be paid in the sandbox")
        if order.status is not OrderStatus.PENDING:
            raise errors.OrderNotPayable(f"the order is {order.status}")
        notification = provider.sandbox_notification(self._ref(order), paid, self._clock.now())
        try:
            status = self._sender.send(notification)
        except ProviderUnavailable as exc:
            raise errors.PaymentProviderUnavailable("the webhook endpoint is unreachable") from exc
        if not 200 <= status < 300:
            raise errors.PaymentProviderUnavailable(f"the webhook endpoint answered {status}")
        with self._uow() as uow:
            updated = uow.orders.get(order_id)
        assert updated is not None
        return updated

    # ---- expiry (F5, F10, F13) ------------------------------------------------------------

    def run_expiry(self, batch: int = 500) -> ExpiryReport:
        now = self._clock.now()
        grants = credits = 0
        with self._uow() as uow:
            users = list(uow.grants.users_with_due_grants(now))
        for user_id in users:
            with self._uow() as uow:
                self._lock(uow, user_id)
                n, c = self._expire_user_grants(uow, user_id, now)
                uow.commit()
            grants, credits = grants + n, credits + c
        orders = 0
        with self._uow() as uow:
            for order in uow.orders.due_for_expiry(now, batch):
                if uow.orders.transition(
                    order.id, frozenset({OrderStatus.PENDING}), OrderStatus.EXPIRED, now
                ):
                    orders += 1
            memberships = uow.memberships.expire_due(now)
            uow.commit()
        return ExpiryReport(grants, credits, orders, memberships)

    def check_ledger(self) -> list[LedgerCheck]:
        with self._uow() as uow:
            return [uow.ledger.check(user_id) for user_id in uow.accounts.user_ids()]

    # ---- helpers --------------------------------------------------------------------------

    def _expire_user_grants(self, uow: UnitOfWork, user_id: str, now: datetime) -> tuple[int, int]:
        count = total = 0
        for grant in uow.grants.due_for_expiry(now, user_id):
            expired = uow.grants.expire(grant.id, now)
            if expired <= 0:
                continue
            after = uow.accounts.add_available(user_id, -expired)
            uow.ledger.append(
                NewLedgerEntry(
                    user_id=user_id,
                    kind=LedgerKind.EXPIRE,
                    amount=-expired,
                    held_change=0,
                    balance_after=after,
                    reference=grant.reference or str(grant.source),
                    grant_id=grant.id,
                ),
                now,
            )
            count, total = count + 1, total + expired
        return count, total

    def _grant(
        self,
        uow: UnitOfWork,
        user_id: str,
        source: GrantSource,
        amount: int,
        expires_at: datetime | None,
        now: datetime,
        *,
        key: str,
        reference: str,
        reason: str = "",
        kind: LedgerKind = LedgerKind.GRANT,
    ) -> Grant:
        grant = Grant(
            id=self._ids.new_id("grant"),
            user_id=user_id,
            source=source,
            amount=amount,
            remaining=amount,
            expires_at=expires_at,
            created_at=now,
            reference=reference,
        )
        uow.grants.add(grant, idempotency_key=key)
        after = uow.accounts.add_available(user_id, amount)
        uow.ledger.append(
            NewLedgerEntry(
                user_id=user_id,
                kind=kind,
                amount=amount,
                held_change=0,
                balance_after=after,
                reference=reference,
                reason=reason,
                idempotency_key=key,
                grant_id=grant.id,
            ),
            now,
        )
        return grant

    def _lock(self, uow: UnitOfWork, user_id: str) -> None:
        if uow.accounts.lock(user_id) is None:
            raise errors.AccountNotFound("no billing account for this user")

    def _provider(self, channel: str) -> PaymentProvider:
        provider = self._providers.get(channel)
        if provider is None:
            raise errors.PaymentProviderUnavailable(f"channel {_shown(channel)} is not configured")
        return provider

    @staticmethod
    def _ref(order: Order) -> OrderRef:
        return OrderRef(
            order_id=order.id,
            order_number=order.number,
            provider_reference=order.provider_reference,
            amount=order.amount,
            currency=order.currency,
        )

    def _page_size(self, requested: int) -> int:
        if requested < 0:
            raise problems.InvalidArgument("page_size must be >= 0", field="page_size")
        return min(requested or self._policy.default_page_size, self._policy.max_page_size)
