"""The Stripe adapter, driven through billing with Stripe's own SDK against a local server that
speaks Stripe's protocol; events come back signed through a real webhook endpoint."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from atelier.billing.v1 import billing_pb2 as pb
from tests.billing.stripe_env import Env, running_stripe_billing


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    with running_stripe_billing(database_url, tmp_path) as running:
        yield running


def test_pack_checkout_uses_catalog_prices_and_one_customer(env: Env) -> None:
    first = env.order("pack_100")
    second = env.order("pack_500")
    assert first.checkout.url.startswith(env.stripe.url + "/pay/cs_test_")
    sessions = [env.stripe.sessions[env.session_of(o)] for o in (first, second)]
    assert [s["mode"] for s in sessions] == ["payment", "payment"]
    assert [s["line_items"][0]["price_data"]["unit_amount"] for s in sessions] == ["999", "3999"]
    assert sessions[0]["metadata"] == {"order_id": first.id, "user_id": "u1"}
    [customer] = env.stripe.customers.values()  # created once, remembered
    assert customer["email"] == "ada@example.com"
    assert {s["customer"] for s in sessions} == {customer["id"]}


def test_the_same_order_request_makes_one_checkout_session(env: Env) -> None:
    assert env.order("pack_100", key="k1").id == env.order("pack_100", key="k1").id
    assert len(env.stripe.sessions) == 1


def test_paid_pack_is_granted_once_however_often_the_event_comes(env: Env) -> None:
    order = env.order("pack_100")
    event = env.stripe.complete_session(env.session_of(order))
    assert [env.stripe.send(event) for _ in range(3)] == [200, 200, 200]
    assert env.get(order.id).status == pb.ORDER_STATUS_PAID
    assert env.balance().available == 110
    assert env.consistent()


def test_membership_checkout_renewal_and_cancellation(env: Env) -> None:
    order = env.order("plan_monthly")
    session = env.stripe.sessions[env.session_of(order)]
    assert session["mode"] == "subscription"
    assert session["line_items"][0]["price_data"]["recurring"] == {
        "interval": "day",
        "interval_count": "30",
    }
    completed = env.stripe.complete_session(session["id"])
    sub_id = session["subscription"]
    first_invoice = env.stripe.renewal_invoice(sub_id, billing_reason="subscription_create")
    renewal = env.stripe.renewal_invoice(sub_id)
    # out of order: the renewal arrives before the checkout completion → refused, retried later
    assert env.stripe.send(renewal) == 400
    assert env.stripe.send(completed) == 200
    assert env.stripe.send(first_invoice) == 200  # the first period came with the checkout
    assert env.balance().available == 310
    assert env.stripe.send(renewal) == 200
    assert env.stripe.send(renewal) == 200  # redelivered: no second grant
    balance = env.balance()
    assert balance.available == 610 and balance.membership.active
    expected_end = renewal["data"]["object"]["lines"]["data"][0]["period"]["end"]
    assert balance.membership.period_end_time.seconds == expected_end
    deleted = env.stripe.subscription_event(sub_id, deleted=True)
    stale_update = env.stripe.subscription_event(sub_id, cancel_at_period_end=False)
    assert env.stripe.send(deleted) == 200
    assert env.stripe.send(stale_update) == 200  # later delivery of an older state: no effect
    assert env.balance().membership.status == pb.MEMBERSHIP_STATUS_CANCELED
    assert env.consistent()


def test_refund_takes_back_the_unspent_credits(env: Env) -> None:
    order = env.order("pack_100")
    session_id = env.session_of(order)
    env.stripe.send(env.stripe.complete_session(session_id))
    env.stub.HoldCredits(pb.HoldCreditsRequest(request_id="t1", amount=30), metadata=env.md())
    env.stub.CaptureHold(pb.CaptureHoldRequest(request_id="t1"), metadata=env.md())
    refund = env.stripe.refund(session_id)
    assert env.stripe.send(refund) == 200 and env.stripe.send(refund) == 200
    assert env.get(order.id).status == pb.ORDER_STATUS_REFUNDED
    assert env.balance().available == 10  # 70 unspent pack credits taken back; the bonus stays
    assert env.consistent()


def test_expired_checkout_expires_the_order(env: Env) -> None:
    order = env.order("pack_100")
    assert env.stripe.send(env.stripe.expire_session(env.session_of(order))) == 200
    assert env.get(order.id).status == pb.ORDER_STATUS_EXPIRED


def test_forged_and_stale_events_are_refused_and_change_nothing(env: Env) -> None:
    order = env.order("pack_100")
    event = env.stripe.complete_session(env.session_of(order))
    assert env.stripe.send(event, secret="whsec_forged") == 400
    assert env.stripe.send(event, timestamp=int(time.time()) - 600) == 400
    assert env.get(order.id).status == pb.ORDER_STATUS_PENDING
    assert env.balance().available == 10


def test_a_lost_webhook_is_recovered_by_refresh(env: Env) -> None:
    order = env.order("pack_500")
    env.stripe.complete_session(env.session_of(order))  # paid, but the event never arrives
    refreshed = env.stub.RefreshOrder(
        pb.RefreshOrderRequest(order_id=order.id), metadata=env.md()
    ).order
    assert refreshed.status == pb.ORDER_STATUS_PAID
    assert env.balance().available == 510
    # the webhook arriving late changes nothing more
    late = env.stripe.event(
        "checkout.session.completed", env.stripe.sessions[env.session_of(order)]
    )
    assert env.stripe.send(late) == 200 and env.balance().available == 510


def test_profile_edits_are_pushed_to_the_stripe_customer(env: Env) -> None:
    env.order("pack_100")
    [customer_id] = env.stripe.customers
    response = env.stub.UpdateAccountContact(
        pb.UpdateAccountContactRequest(name="Ada Lovelace"), metadata=env.md()
    )
    assert list(response.providers) == ["stripe"]
    assert env.stripe.customers[customer_id]["name"] == "Ada Lovelace"
    assert env.stripe.customers[customer_id]["email"] == "ada@example.com"


def test_async_payments_and_every_event_delivered_twice_have_one_effect(env: Env) -> None:
    """checkout.session.completed with an unpaid (async) payment waits for the outcome; each
    event type delivered twice changes things once."""
    paid_later = env.order("pack_100")
    failed_later = env.order("pack_500")
    expired = env.order("pack_100", key="to-expire")
    for order in (paid_later, failed_later):
        session = env.stripe.sessions[env.session_of(order)]
        session.update(status="complete", payment_status="unpaid", payment_intent=f"pi_{order.id}")
        assert env.stripe.send(env.stripe.event("checkout.session.completed", session)) == 200
    assert env.get(paid_later.id).status == pb.ORDER_STATUS_PENDING  # not paid yet
    ok = env.stripe.sessions[env.session_of(paid_later)]
    ok["payment_status"] = "paid"
    bad = env.stripe.sessions[env.session_of(failed_later)]
    events = [
        env.stripe.event("checkout.session.async_payment_succeeded", ok),
        env.stripe.event("checkout.session.async_payment_failed", bad),
        env.stripe.expire_session(env.session_of(expired)),
    ]
    for event in events:
        assert [env.stripe.send(event), env.stripe.send(event)] == [200, 200]
    assert env.get(paid_later.id).status == pb.ORDER_STATUS_PAID
    assert env.get(failed_later.id).status == pb.ORDER_STATUS_FAILED
    assert env.get(expired.id).status == pb.ORDER_STATUS_EXPIRED
    assert env.balance().available == 110

    plan = env.order("plan_monthly")
    session = env.stripe.sessions[env.session_of(plan)]
    env.stripe.send(env.stripe.complete_session(session["id"]))
    update = env.stripe.subscription_event(session["subscription"], cancel_at_period_end=True)
    assert [env.stripe.send(update), env.stripe.send(update)] == [200, 200]
    assert env.balance().membership.active  # cancelled at period end: still running
    deleted = env.stripe.subscription_event(session["subscription"], deleted=True)
    assert [env.stripe.send(deleted), env.stripe.send(deleted)] == [200, 200]
    assert env.balance().membership.status == pb.MEMBERSHIP_STATUS_CANCELED
    [customer_id] = env.stripe.customers
    changed = env.stripe.customer_updated(customer_id, name="Ada L.")
    assert [env.stripe.send(changed), env.stripe.send(changed)] == [200, 200]
    entries = env.stub.ListLedgerEntries(
        pb.ListLedgerEntriesRequest(page_size=100), metadata=env.md()
    ).entries
    assert [e.amount for e in entries] == [300, 100, 10]  # one grant per paid order
    assert env.consistent()
