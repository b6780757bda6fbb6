from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from atelier_billing.application.config import BillingConfig
from atelier_billing.application.ports import BillingUnitOfWorkFactory
from atelier_billing.application.use_cases import BillingUseCases, build_use_cases
from atelier_billing.domain.catalog import parse_catalog
from atelier_billing.settings import DEFAULT_CATALOG
from tests.billing.fakes import FakePaymentProvider
from tests.support.fakes import FakeClock, FakeIds


def make_config(**overrides: object) -> BillingConfig:
    values: dict[str, object] = {
        "market": "local",
        "catalog": parse_catalog(json.loads(Path(DEFAULT_CATALOG).read_text())),
        "signup_bonus": 10,
        "signup_bonus_validity": None,
        "grace_period": timedelta(days=7),
        "order_ttl": timedelta(minutes=30),
    }
    values.update(overrides)
    return BillingConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def provider() -> FakePaymentProvider:
    return FakePaymentProvider()


@pytest.fixture
def service(
    store: BillingUnitOfWorkFactory, clock: FakeClock, provider: FakePaymentProvider
) -> BillingUseCases:
    return build_use_cases(
        uow=store, clock=clock, ids=FakeIds(), config=make_config(), providers={"fake": provider}
    )
