"""Unit tests of the billing domain rules (plain Python)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from atelier_billing.domain.catalog import CatalogError, parse_catalog
from atelier_billing.domain.errors import InsufficientCredits
from atelier_billing.domain.model import (
    Allocation,
    Grant,
    GrantSource,
    Membership,
    MembershipStatus,
    OrderStatus,
    allocate,
    next_membership_period,
    sources_of,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def grant(gid: str, remaining: int, expires_in_days: float | None) -> Grant:
    return Grant(
        id=gid,
        user_id="u",
        source=GrantSource.PACK,
        amount=100,
        remaining=remaining,
        expires_at=None if expires_in_days is None else NOW + timedelta(days=expires_in_days),
        created_at=NOW - timedelta(days=1),
    )


def test_allocation_spends_the_soonest_expiring_grant_first() -> None:
    grants = [grant("never", 50, None), grant("late", 5, 30), grant("soon", 3, 1)]
    assert allocate(grants, 7, NOW) == [Allocation("soon", 3), Allocation("late", 4)]


def test_grants_that_never_expire_are_spent_last() -> None:
    grants = [grant("never", 50, None), grant("soon", 3, 1)]
    assert allocate(grants, 10, NOW) == [Allocation("soon", 3), Allocation("never", 7)]


def test_expired_and_empty_grants_are_not_spent() -> None:
    grants = [grant("gone", 9, -1), grant("empty", 0, 5), grant("ok", 2, 5)]
    assert allocate(grants, 2, NOW) == [Allocation("ok", 2)]
    with pytest.raises(InsufficientCredits):
        allocate(grants, 3, NOW)


def test_membership_periods_stack_while_active() -> None:
    active = Membership("u", "plan", MembershipStatus.ACTIVE, NOW, NOW + timedelta(days=10), 300)
    period = next_membership_period(active, 30, NOW)
    assert (period.start, period.end) == (active.period_end, active.period_end + timedelta(days=30))
    lapsed = Membership("u", "plan", MembershipStatus.EXPIRED, NOW, NOW - timedelta(days=1), 300)
    fresh = next_membership_period(lapsed, 30, NOW)
    assert (fresh.start, fresh.end) == (NOW, NOW + timedelta(days=30))


def test_order_status_machine() -> None:
    assert sources_of(OrderStatus.PAID) == {
        OrderStatus.PENDING,
        OrderStatus.FAILED,
        OrderStatus.EXPIRED,
    }
    assert sources_of(OrderStatus.REFUNDED) == {OrderStatus.PAID}
    assert sources_of(OrderStatus.FAILED) == {OrderStatus.PENDING}


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"id": "x", "kind": "pack", "name": "x", "credits": 0, "prices": {"USD": 1}}],
        [{"id": "m", "kind": "membership", "name": "m", "credits": 5, "prices": {"USD": 1}}],
        [{"id": "x", "kind": "bogus", "name": "x", "credits": 1, "prices": {}}],
    ],
)
def test_bad_catalogs_are_refused(items: list[dict[str, object]]) -> None:
    with pytest.raises(CatalogError):
        parse_catalog({"items": items})
