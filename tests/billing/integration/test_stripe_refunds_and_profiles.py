"""Stripe refunds of subscription charges (issue 9, finding 13) and provider-side customer edits
(finding 14), driven with Stripe's own SDK against the local Stripe server and signed webhooks,
on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from atelier.billing.v1 import billing_pb2 as pb
from atelier_billing.adapters.persistence.tables import accounts
from tests.billing.stripe_env import Env, running_stripe_billing


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> Iterator[Env]:
    with running_stripe_billing(database_url, tmp_path) as running:
        yield running


def _membership_remaining(balance: pb.Balance) -> int:
    return sum(g.remaining for g in balance.grants if g.source == pb.GRANT_SOURCE_MEMBERSHIP)


def _spend(env: Env, request_id: str, amount: int) -> None:
    env.stub.HoldCredits(
        pb.HoldCreditsRequest(request_id=request_id, amount=amount), metadata=env.md()
    )
    env.stub.CaptureHold(pb.CaptureHoldRequest(request_id=request_id), metadata=env.md())


def _ledger(env: Env) -> list[pb.LedgerEntry]:
    return list(
        env.stub.ListLedgerEntries(
            pb.ListLedgerEntriesRequest(page_size=100), metadata=env.md()
        ).entries
    )


# ---- #13: refunds of subscription charges ----------------------------------------------------


def test_issue_13_refunded_membership_charge_matches_its_order_and_ends_the_membership(
    env: Env,
) -> None:
    order = env.order("plan_monthly")
    session_id = env.session_of(order)
    assert env.stripe.send(env.stripe.complete_session(session_id)) == 200
    assert env.balance().membership.active
    _spend(env, "t1", 50)
    before = env.balance()
    unspent_quota = _membership_remaining(before)
    assert unspent_quota > 0

    refund = env.stripe.refund(session_id)  # the charge names only its PaymentIntent
    assert "invoice" not in refund["data"]["object"]
    assert env.stripe.send(refund) == 200  # was 400: Stripe retried it for days
    assert env.stripe.send(refund) == 200  # redelivered: nothing twice

    assert env.get(order.id).status == pb.ORDER_STATUS_REFUNDED
    after = env.balance()
    assert not after.membership.active
    assert after.membership.status == pb.MEMBERSHIP_STATUS_CANCELED
    assert after.membership.period_end_time.seconds <= time.time()  # ended now, not later
    assert _membership_remaining(after) == 0 and after.membership.quota_left == 0
    assert after.available == before.available - unspent_quota
    taken = [e.amount for e in _ledger(env) if e.kind == pb.LEDGER_ENTRY_KIND_ADJUST]
    assert taken == [-unspent_quota]
    # the invoice behind the PaymentIntent was asked of Stripe through its SDK
    asked = [p for m, path, p in env.stripe.requests if path == "/v1/invoice_payments"]
    assert (
        asked
        and asked[0]["payment"]["payment_intent"] == refund["data"]["object"]["payment_intent"]
    )
    assert env.consistent()


def test_issue_13_refunded_renewal_takes_its_quota_back_and_ends_the_membership(
    env: Env,
) -> None:
    order = env.order("plan_monthly")
    session = env.stripe.sessions[env.session_of(order)]
    assert env.stripe.send(env.stripe.complete_session(session["id"])) == 200
    renewal = env.stripe.renewal_invoice(session["subscription"])
    assert env.stripe.send(renewal) == 200
    assert env.balance().available == 610
    refund = env.stripe.refund_invoice(renewal["data"]["object"]["id"])
    assert [env.stripe.send(refund), env.stripe.send(refund)] == [200, 200]
    after = env.balance()
    assert after.membership.status == pb.MEMBERSHIP_STATUS_CANCELED
    assert after.available == 10  # only the sign-up bonus is left
    assert env.get(order.id).status == pb.ORDER_STATUS_PAID  # the first period was not refunded
    # a second refund event for the same charge (another partial refund) changes nothing more
    again = env.stripe.event("charge.refunded", refund["data"]["object"])
    assert env.stripe.send(again) == 200
    assert env.balance().available == 10
    assert env.consistent()


def test_issue_13_refund_while_stripe_cannot_be_asked_is_retried_later(env: Env) -> None:
    order = env.order("plan_monthly")
    session_id = env.session_of(order)
    env.stripe.send(env.stripe.complete_session(session_id))
    refund = env.stripe.refund(session_id)
    env.stripe.down = True
    assert env.stripe.send(refund) == 503  # not recorded: Stripe delivers it again
    assert env.get(order.id).status == pb.ORDER_STATUS_PAID
    env.stripe.down = False
    assert env.stripe.send(refund) == 200
    assert env.get(order.id).status == pb.ORDER_STATUS_REFUNDED


def test_issue_13_an_unknown_refund_is_still_refused(env: Env) -> None:
    charge = {
        "id": "ch_unknown",
        "object": "charge",
        "payment_intent": "pi_nobody_knows",
        "amount_refunded": 999,
        "currency": "usd",
        "metadata": {},
    }
    assert env.stripe.send(env.stripe.event("charge.refunded", charge)) == 400


# ---- #14: the gateway's profile is the source of truth ---------------------------------------


def _contact(env: Env) -> tuple[str | None, str | None]:
    with env.billing.app.engine.connect() as conn:
        row = conn.execute(
            select(accounts.c.email, accounts.c.name).where(accounts.c.user_id == "u1")
        ).one()
    return row.email, row.name


def _pushes(env: Env, customer_id: str) -> int:
    return sum(
        1
        for m, path, _ in env.stripe.requests
        if (m, path) == ("POST", f"/v1/customers/{customer_id}")
    )


def test_issue_14_a_provider_side_edit_is_overwritten_with_billings_copy(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    env.order("pack_100")
    [customer_id] = env.stripe.customers
    edited = env.stripe.customer_updated(customer_id, email="mallory@evil.example", name="M")
    with caplog.at_level(logging.WARNING, logger="atelier.billing"):
        assert env.stripe.send(edited) == 200
    customer = env.stripe.customers[customer_id]
    assert (customer["email"], customer["name"]) == ("ada@example.com", "Ada")  # restored
    assert _contact(env) == ("ada@example.com", "Ada")  # billing's copy unchanged
    [record] = [r for r in caplog.records if "overwritten" in r.getMessage()]
    assert "mallory" not in repr(record.__dict__)  # what was overwritten is named, not logged
    assert _pushes(env, customer_id) == 1
    # our push comes back as customer.updated matching the copy: a no-op, no loop
    [echo] = env.stripe.outbox
    assert env.stripe.send(echo) == 200
    assert env.stripe.send(edited) == 200  # the same event again: nothing
    assert _pushes(env, customer_id) == 1
    assert len(env.stripe.outbox) == 1
    assert _contact(env) == ("ada@example.com", "Ada")


def test_issue_14_a_profile_edit_reaches_stripe_and_its_echo_is_a_no_op(env: Env) -> None:
    env.order("pack_100")
    [customer_id] = env.stripe.customers
    env.stub.UpdateAccountContact(
        pb.UpdateAccountContactRequest(email="ada@lovelace.example", name="Ada Lovelace"),
        metadata=env.md(),
    )
    [echo] = env.stripe.outbox
    assert env.stripe.send(echo) == 200
    assert _pushes(env, customer_id) == 1
    customer = env.stripe.customers[customer_id]
    assert (customer["email"], customer["name"]) == ("ada@lovelace.example", "Ada Lovelace")
    assert _contact(env) == ("ada@lovelace.example", "Ada Lovelace")


# ---- admin refunds through Stripe (RefundOrder) ------------------------------------------------


def _refund(env: Env, order_id: str) -> pb.Order:
    result: pb.Order = env.stub.RefundOrder(
        pb.RefundOrderRequest(order_id=order_id, reason="charged twice"),
        metadata=env.billing.metadata("admin_1", "admin"),
    ).order
    return result


def test_admin_refund_of_a_pack_refunds_its_payment_intent_once(env: Env) -> None:
    order = env.order("pack_100")
    session = env.stripe.sessions[env.session_of(order)]
    assert env.stripe.send(env.stripe.complete_session(session["id"])) == 200
    _spend(env, "t1", 30)
    assert env.balance().available == 80
    assert _refund(env, order.id).status == pb.ORDER_STATUS_REFUNDED
    assert _refund(env, order.id).status == pb.ORDER_STATUS_REFUNDED  # a repeat: once
    [refund] = env.stripe.refunds.values()
    assert refund["payment_intent"] == session["payment_intent"]
    assert refund["amount"] == session["amount_total"] and refund["metadata"]["order_id"]
    # 100 bought, 30 spent from the pack (it expires first): its 70 unspent are taken back
    assert env.balance().available == 10
    # Stripe's charge.refunded webhook for that refund changes nothing more
    [echo] = [e for e in env.stripe.outbox if e["type"] == "charge.refunded"]
    assert [env.stripe.send(echo), env.stripe.send(echo)] == [200, 200]
    assert env.balance().available == 10
    assert env.consistent()


def test_admin_refund_of_a_membership_cancels_its_subscription_and_ends_it(env: Env) -> None:
    order = env.order("plan_monthly")
    session = env.stripe.sessions[env.session_of(order)]
    assert env.stripe.send(env.stripe.complete_session(session["id"])) == 200
    assert _refund(env, order.id).status == pb.ORDER_STATUS_REFUNDED
    [refund] = env.stripe.refunds.values()
    assert refund["payment_intent"] == env.stripe.payment_intent_of(session["invoice"])
    assert env.stripe.subscriptions[session["subscription"]]["status"] == "canceled"
    after = env.balance()
    assert after.membership.status == pb.MEMBERSHIP_STATUS_CANCELED
    assert after.available == 10
    assert env.consistent()
