"""The catalog and orders (F9, F10): create an order (idempotent per request_id) and start its
checkout; read one order or a page of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from atelier_billing.application.checkout import StartCheckout
from atelier_billing.application.config import BillingConfig
from atelier_billing.application.inputs import MAX_REQUEST_ID, Page, page_size, shown
from atelier_billing.application.ports import (
    BillingUnitOfWorkFactory,
    DuplicateKey,
    PaymentProvider,
)
from atelier_billing.domain import errors
from atelier_billing.domain.model import Catalog, CatalogItem, Order, OrderStatus
from atelier_ports import problems
from atelier_ports.clock import Clock
from atelier_ports.ids import IdGenerator
from atelier_ports.paging import InvalidPageToken, decode_page_token, encode_page_token

# The listing's page-token kind: a token of another listing is refused.
ORDERS_PAGE = "billing.orders"


@dataclass(frozen=True, slots=True)
class CatalogView:
    market: str
    channels: list[str]
    catalog: Catalog


@dataclass(frozen=True, slots=True)
class CreateOrder:
    user_id: str
    item_id: str
    channel: str
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class GetOrder:
    user_id: str
    order_id: str


@dataclass(frozen=True, slots=True)
class ListOrders:
    user_id: str
    page_size: int
    page_token: str


class GetCatalogHandler:
    def __init__(self, config: BillingConfig, providers: Mapping[str, PaymentProvider]) -> None:
        self._config, self._providers = config, providers

    def __call__(self) -> CatalogView:
        return CatalogView(
            market=self._config.market,
            channels=sorted(self._providers),
            catalog=self._config.catalog,
        )


class CreateOrderHandler:
    def __init__(
        self,
        uow: BillingUnitOfWorkFactory,
        clock: Clock,
        ids: IdGenerator,
        config: BillingConfig,
        providers: Mapping[str, PaymentProvider],
        start_checkout: StartCheckout,
    ) -> None:
        self._uow, self._clock, self._ids, self._config = uow, clock, ids, config
        self._providers, self._start_checkout = providers, start_checkout

    def __call__(self, cmd: CreateOrder) -> Order:
        item, provider, price = self._priced(cmd.item_id, cmd.channel)
        request_id = cmd.request_id.strip()
        if len(request_id) > MAX_REQUEST_ID:
            raise problems.InvalidArgument("request_id too long", field="request_id")
        now = self._clock.now()
        order = Order(
            id=self._ids.new_id("ord"),
            number=f"AT-{now:%y%m%d}-{self._ids.readable_code(6)}",
            user_id=cmd.user_id,
            item_id=item.id,
            item_kind=item.kind,
            credits=item.credits,
            period_days=item.period_days,
            amount=price,
            currency=provider.currency,
            channel=cmd.channel,
            status=OrderStatus.PENDING,
            created_at=now,
            expires_at=now + self._config.order_ttl,
            request_id=request_id or None,
        )
        order, existed = self._insert(order)
        if existed:
            if (order.item_id, order.channel) != (cmd.item_id, cmd.channel):
                raise errors.IdempotencyConflict("request_id was used for another order")
            if order.checkout_url or order.checkout_code_url or order.status != OrderStatus.PENDING:
                return order
        return self._start_checkout(order, provider)

    def _priced(self, item_id: str, channel: str) -> tuple[CatalogItem, PaymentProvider, int]:
        item = self._config.catalog.get(item_id)
        if item is None:
            raise errors.CatalogItemNotFound(
                f"unknown catalog item {shown(item_id)}", field="item_id"
            )
        provider = self._providers.get(channel)
        if provider is None:
            raise errors.ChannelNotAvailable(
                f"channel must be one of {', '.join(sorted(self._providers))}", field="channel"
            )
        price = item.price_in(provider.currency)
        if price is None:
            raise errors.ChannelNotAvailable(
                f"{item_id!r} has no price in {provider.currency}", field="channel"
            )
        return item, provider, price

    def _insert(self, order: Order, attempts: int = 3) -> tuple[Order, bool]:
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


class GetOrderHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, query: GetOrder) -> Order:
        with self._uow() as uow:
            order = uow.orders.get(query.order_id)
        if order is None or order.user_id != query.user_id:
            raise errors.OrderNotFound("order not found")  # never reveal others' orders
        return order


class ListOrdersHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory, config: BillingConfig) -> None:
        self._uow, self._config = uow, config

    def __call__(self, query: ListOrders) -> Page[Order]:
        size = page_size(query.page_size, self._config)
        after: tuple[datetime, str] | None = None
        if query.page_token:
            ts, oid = decode_page_token(query.page_token, ORDERS_PAGE, (str, str))
            try:
                after = (datetime.fromisoformat(str(ts)), str(oid))
            except ValueError:
                raise InvalidPageToken() from None
        with self._uow() as uow:
            rows = list(uow.orders.page(query.user_id, size + 1, after))
        more = len(rows) > size
        rows = rows[:size]
        token = (
            encode_page_token(ORDERS_PAGE, rows[-1].created_at.isoformat(), rows[-1].id)
            if more
            else ""
        )
        return Page(items=rows, next_token=token)
