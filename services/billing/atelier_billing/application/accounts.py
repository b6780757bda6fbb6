"""Accounts and balances: set up an account (with its sign-up bonus), update the contact details,
read the balance and the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.credits import NewGrant, balance_in, grant_credits, lock_account
from atelier_billing.application.inputs import Page, contact, page_size
from atelier_billing.application.ports import BillingUnitOfWorkFactory, PaymentProvider
from atelier_billing.domain import errors
from atelier_billing.domain.model import Balance, GrantSource, LedgerEntry
from atelier_ports.clock import Clock
from atelier_ports.errors import ProviderRejected, ProviderUnavailable
from atelier_ports.ids import IdGenerator
from atelier_ports.paging import decode_page_token, encode_page_token

# The listing's page-token kind: a token of another listing is refused.
LEDGER_PAGE = "billing.ledger"


@dataclass(frozen=True, slots=True)
class SetUpAccount:
    user_id: str
    email: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class AccountSetUp:
    balance: Balance
    created: bool


@dataclass(frozen=True, slots=True)
class UpdateContact:
    user_id: str
    email: str | None
    name: str | None


@dataclass(frozen=True, slots=True)
class GetBalance:
    user_id: str


@dataclass(frozen=True, slots=True)
class ListLedger:
    user_id: str
    page_size: int
    page_token: str


class SetUpAccountHandler:
    """Create the account and grant the sign-up bonus — once per user, however often called."""

    def __init__(
        self, uow: BillingUnitOfWorkFactory, clock: Clock, ids: IdGenerator, config: BillingConfig
    ) -> None:
        self._uow, self._clock, self._ids, self._config = uow, clock, ids, config

    def __call__(self, cmd: SetUpAccount) -> AccountSetUp:
        email, name = contact(cmd.email, cmd.name)
        now = self._clock.now()
        bonus, validity = self._config.signup_bonus, self._config.signup_bonus_validity
        with self._uow() as uow:
            created = uow.accounts.create(cmd.user_id, now)
            uow.accounts.set_contact(cmd.user_id, email, name)
            if created and bonus > 0:
                lock_account(uow, cmd.user_id)
                grant = NewGrant(
                    user_id=cmd.user_id,
                    source=GrantSource.SIGNUP_BONUS,
                    amount=bonus,
                    expires_at=now + validity if validity else None,
                    key=f"signup:{cmd.user_id}",
                    reference="signup bonus",
                )
                grant_credits(uow, self._ids, grant, now)
            balance = balance_in(uow, cmd.user_id, now)
            uow.commit()
        return AccountSetUp(balance=balance, created=created)


class UpdateContactHandler:
    """Remember new contact details and push them to providers' customer records (F3).
    Returns the providers that were updated."""

    def __init__(
        self, uow: BillingUnitOfWorkFactory, providers: Mapping[str, PaymentProvider]
    ) -> None:
        self._uow, self._providers = uow, providers

    def __call__(self, cmd: UpdateContact) -> list[str]:
        email, name = contact(cmd.email, cmd.name)
        with self._uow() as uow:
            lock_account(uow, cmd.user_id)
            uow.accounts.set_contact(cmd.user_id, email, name)
            customers = dict(uow.customers.for_user(cmd.user_id))
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


class GetBalanceHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory, clock: Clock) -> None:
        self._uow, self._clock = uow, clock

    def __call__(self, query: GetBalance) -> Balance:
        with self._uow() as uow:
            return balance_in(uow, query.user_id, self._clock.now())


class ListLedgerHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory, config: BillingConfig) -> None:
        self._uow, self._config = uow, config

    def __call__(self, query: ListLedger) -> Page[LedgerEntry]:
        size = page_size(query.page_size, self._config)
        before: int | None = None
        if query.page_token:
            (value,) = decode_page_token(query.page_token, LEDGER_PAGE, (int,))
            before = int(value)
        with self._uow() as uow:
            rows = list(uow.ledger.page(query.user_id, size + 1, before))
        more = len(rows) > size
        rows = rows[:size]
        token = encode_page_token(LEDGER_PAGE, rows[-1].id) if more else ""
        return Page(items=rows, next_token=token)
