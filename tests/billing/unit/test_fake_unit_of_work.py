"""The fake unit of work keeps the rule the use cases follow: never one inside another."""

from __future__ import annotations

import pytest

from tests.billing.fakes import FakeStore


def test_the_fake_unit_of_work_refuses_to_open_inside_another(store: FakeStore) -> None:
    # the guard every use-case test relies on: no use case opens a unit of work inside another
    with store(), pytest.raises(AssertionError, match="inside another"), store():
        pass
