"""The rules the aggregates and value objects own: refund proration, the order status machine,
renewal periods, ending a membership, provider changes to a subscription, repeated settles."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from atelier_billing.domain.errors import HoldAlreadyCaptured, HoldAlreadyReleased
from atelier_billing.domain.model import (
    ORDER_TRANSITIONS,
    Hold,
    HoldStatus,
    ItemKind,
    Membership,
    MembershipStatus,
    Order,
    OrderStatus,
    PeriodPlan,
    may_move,
    membership_paid,
)

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def order(credits: int = 100, amount: int = 999, status: OrderStatus = OrderStatus.PAID) -> Order:
    return Order(
        id="o",
        number="AT-1",
        user_id="u",
        item_id="pack",
        item_kind=ItemKind.PACK,
        credits=credits,
        period_days=0,
        amount=amount,
        currency="USD",
        channel="fake",
        status=status,
        created_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
    )


def membership(
    status: MembershipStatus = MembershipStatus.ACTIVE, ends_in_days: float = 10
) -> Membership:
    return Membership(
        "u", "plan", status, NOW - timedelta(days=20), NOW + timedelta(days=ends_in_days), 300
    )


@pytest.mark.parametrize(
    ("refunded", "taken"),
    [
        (None, 100),  # amount unknown: all of it
        (999, 100),  # a full refund
        (5000, 100),  # never more than was bought
        (333, 34),  # a third of the money: a third of the credits, rounded up (33.33…)
        (1, 1),  # any refund takes back at least one credit
        (0, 0),
    ],
)
def test_a_refund_takes_back_the_refunded_share_of_the_credits_rounded_up(
    refunded: int | None, taken: int
) -> None:
    assert order().credits_to_take_back(refunded) == taken


def test_a_free_order_refund_takes_nothing_and_never_divides_by_zero() -> None:
    assert order(amount=0).credits_to_take_back(0) == 0


def test_the_order_status_machine_allows_exactly_its_transitions() -> None:
    allowed = {(s, t) for s in OrderStatus for t in OrderStatus if may_move(s, t)}
    assert allowed == {
        (OrderStatus.PENDING, OrderStatus.PAID),
        (OrderStatus.PENDING, OrderStatus.FAILED),
        (OrderStatus.PENDING, OrderStatus.EXPIRED),
        # a payment confirmed after we gave up waiting is still money received
        (OrderStatus.FAILED, OrderStatus.PAID),
        (OrderStatus.EXPIRED, OrderStatus.PAID),
        (OrderStatus.PAID, OrderStatus.REFUNDED),
    }
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)  # every status has its rule
    assert order(status=OrderStatus.PAID).may_become(OrderStatus.REFUNDED)
    assert not order(status=OrderStatus.REFUNDED).may_become(OrderStatus.PAID)
    assert not order(status=OrderStatus.PENDING).may_become(OrderStatus.REFUNDED)


def test_a_renewal_starts_where_the_running_period_ends() -> None:
    active = membership()
    period = active.renewal_period(NOW, 30)
    assert period == PeriodPlan(active.period_end, active.period_end + timedelta(days=30))


def test_a_renewal_of_a_lapsed_membership_starts_now() -> None:
    lapsed = membership(MembershipStatus.EXPIRED, ends_in_days=-3)
    assert lapsed.renewal_period(NOW, 30) == PeriodPlan(NOW, NOW + timedelta(days=30))


def test_a_renewal_ends_where_the_provider_says_unless_that_is_not_after_its_start() -> None:
    active = membership()
    later = active.period_end + timedelta(days=31, hours=2)
    assert active.renewal_period(NOW, 30, later).end == later
    earlier = active.period_end - timedelta(days=1)
    assert active.renewal_period(NOW, 30, earlier).end == active.period_end + timedelta(days=30)


def test_a_renewed_membership_is_active_for_the_new_period_with_the_plan_quota() -> None:
    period = PeriodPlan(NOW, NOW + timedelta(days=30))
    renewed = membership(MembershipStatus.EXPIRED, -1).renewed(period, 500)
    assert (renewed.status, renewed.period_start, renewed.period_end, renewed.quota_total) == (
        MembershipStatus.ACTIVE,
        period.start,
        period.end,
        500,
    )


def test_an_ended_membership_is_canceled_now_and_an_earlier_end_stays() -> None:
    ended = membership().ended(NOW)
    assert (ended.status, ended.period_end) == (MembershipStatus.CANCELED, NOW)
    lapsed = membership(MembershipStatus.EXPIRED, ends_in_days=-2)
    assert lapsed.ended(NOW).period_end == lapsed.period_end
    canceled = membership(MembershipStatus.CANCELED)
    assert canceled.ended(NOW) is canceled


def test_provider_changes_to_a_subscription_and_cancel_is_final() -> None:
    active = membership()
    assert active.changed_by_provider(
        canceled=False, cancel_at_period_end=True
    ).cancel_at_period_end
    assert (
        active.changed_by_provider(canceled=True, cancel_at_period_end=False).status
        is MembershipStatus.CANCELED
    )
    canceled = membership(MembershipStatus.CANCELED)
    assert canceled.changed_by_provider(canceled=False, cancel_at_period_end=True) is canceled


def hold(status: HoldStatus) -> Hold:
    return Hold("h", "u", "r", 5, status, "task", NOW)


def test_a_repeated_settle_answers_with_the_hold_and_the_other_settle_is_refused() -> None:
    captured, released = hold(HoldStatus.CAPTURED), hold(HoldStatus.RELEASED)
    assert captured.repeat_of_settle(HoldStatus.CAPTURED) is captured
    assert released.repeat_of_settle(HoldStatus.RELEASED) is released
    with pytest.raises(HoldAlreadyCaptured):
        captured.repeat_of_settle(HoldStatus.RELEASED)
    with pytest.raises(HoldAlreadyReleased):
        released.repeat_of_settle(HoldStatus.CAPTURED)
    settled = hold(HoldStatus.HELD).settled(HoldStatus.CAPTURED, NOW)
    assert (settled.status, settled.settled_at) == (HoldStatus.CAPTURED, NOW)


def test_a_paid_membership_order_stacks_its_period_and_keeps_the_known_subscription() -> None:
    plan = replace(order(credits=300), item_kind=ItemKind.MEMBERSHIP, item_id="pro", period_days=30)
    running = replace(membership(), subscription_id="sub_1")
    stacked = membership_paid(running, plan, None, NOW)
    assert (stacked.status, stacked.plan_id, stacked.quota_total) == (
        MembershipStatus.ACTIVE,
        "pro",
        300,
    )
    assert (stacked.period_start, stacked.period_end) == (
        running.period_end,
        running.period_end + timedelta(days=30),
    )
    assert stacked.subscription_id == "sub_1"
    fresh = membership_paid(None, plan, "sub_2", NOW)
    assert (fresh.period_start, fresh.period_end, fresh.subscription_id) == (
        NOW,
        NOW + timedelta(days=30),
        "sub_2",
    )
