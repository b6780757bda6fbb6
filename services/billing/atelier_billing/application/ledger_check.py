"""check-ledger: prove every account's balance equals what its ledger implies."""

from __future__ import annotations

from atelier_billing.application.ports import BillingUnitOfWorkFactory
from atelier_billing.domain.model import LedgerCheck


class CheckLedgerHandler:
    def __init__(self, uow: BillingUnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self) -> list[LedgerCheck]:
        with self._uow() as uow:
            return [uow.ledger.check(user_id) for user_id in uow.accounts.user_ids()]
