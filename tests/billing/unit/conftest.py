from __future__ import annotations

import pytest

from atelier_billing.application.ports import BillingUnitOfWorkFactory
from tests.billing.fakes import FakeStore


@pytest.fixture
def store() -> BillingUnitOfWorkFactory:
    """The use cases' unit of work: the in-memory fake."""
    return FakeStore()
