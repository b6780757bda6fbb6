"""``BillingConfig``: the billing rules that come from configuration, handed to the use cases
(nothing hard-coded in them). Plain Python; built from ``BillingSettings`` in ``bootstrap.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from atelier_billing.domain.model import Catalog


@dataclass(frozen=True, slots=True)
class BillingConfig:
    market: str
    catalog: Catalog
    signup_bonus: int
    signup_bonus_validity: timedelta | None
    grace_period: timedelta
    order_ttl: timedelta
    max_page_size: int = 100
    default_page_size: int = 20
