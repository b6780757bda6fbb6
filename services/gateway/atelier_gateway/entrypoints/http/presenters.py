"""JSON shapes of the public API (HTTP_API.md), from core objects and protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from atelier_gateway.application.auth import Session
from atelier_gateway.domain.model import User


def rfc3339(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ts(message: Any, name: str) -> str | None:
    """A google.protobuf.Timestamp field as RFC 3339, or None when unset."""
    if not message.HasField(name):
        return None
    value: datetime = getattr(message, name).ToDatetime(tzinfo=UTC)
    return rfc3339(value)


def enum_name(value: int, enum_type: Any, prefix: str) -> str:
    name = str(enum_type.Name(value))
    return name[len(prefix) :].lower() if name.startswith(prefix) else name.lower()


def user_summary(user: User) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name, "role": user.role.value}


def profile(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "phone": user.phone,
        "name": user.name,
        "avatar_url": user.avatar_url,
        "preferences": user.preferences,
        "role": user.role.value,
        "created_at": rfc3339(user.created_at),
    }


def session(s: Session) -> dict[str, Any]:
    return {
        "user": user_summary(s.user),
        "access_token": s.access_token,
        "refresh_token": s.refresh_token,
        "token_type": "Bearer",
        "expires_in": s.expires_in,
    }


# --- billing ---------------------------------------------------------------------------


def _pb() -> Any:
    from atelier.billing.v1 import billing_pb2

    return billing_pb2


def balance(b: Any) -> dict[str, Any]:
    pb = _pb()
    membership = None
    if b.HasField("membership"):
        m = b.membership
        membership = {
            "active": m.active,
            "plan_id": m.plan_id,
            "status": enum_name(m.status, pb.MembershipStatus, "MEMBERSHIP_STATUS_"),
            "period_end": ts(m, "period_end_time"),
            "quota_total": m.quota_total,
            "quota_left": m.quota_left,
        }
    return {
        "available": b.available,
        "held": b.held,
        "membership": membership,
        "grants": [
            {
                "id": g.id,
                "source": enum_name(g.source, pb.GrantSource, "GRANT_SOURCE_"),
                "amount": g.amount,
                "remaining": g.remaining,
                "expires_at": ts(g, "expire_time"),
                "created_at": ts(g, "create_time"),
            }
            for g in b.grants
        ],
    }


def ledger_entry(e: Any) -> dict[str, Any]:
    pb = _pb()
    return {
        "id": e.id,
        "kind": enum_name(e.kind, pb.LedgerEntryKind, "LEDGER_ENTRY_KIND_"),
        "amount": e.amount,
        "held_change": e.held_change,
        "balance_after": e.balance_after,
        "reference": e.reference,
        "reason": e.reason,
        "created_at": ts(e, "create_time"),
    }


def catalog(reply: Any) -> dict[str, Any]:
    pb = _pb()
    items = []
    for item in reply.items:
        entry: dict[str, Any] = {
            "id": item.id,
            "kind": enum_name(item.kind, pb.CatalogItemKind, "CATALOG_ITEM_KIND_"),
            "name": item.name,
            "credits": item.credits,
            "prices": [{"currency": p.currency, "amount": p.amount} for p in item.prices],
        }
        if item.kind == pb.CATALOG_ITEM_KIND_MEMBERSHIP:
            entry["period_days"] = item.period_days
        items.append(entry)
    return {"market": reply.market, "items": items, "channels": list(reply.channels)}


def order(o: Any) -> dict[str, Any]:
    pb = _pb()
    checkout: dict[str, Any] = {"expires_at": ts(o.checkout, "expire_time")}
    if o.checkout.url:
        checkout["url"] = o.checkout.url
    if o.checkout.code_url:
        checkout["code_url"] = o.checkout.code_url
    return {
        "id": o.id,
        "number": o.number,
        "status": enum_name(o.status, pb.OrderStatus, "ORDER_STATUS_"),
        "item_id": o.item_id,
        "item_kind": enum_name(o.item_kind, pb.CatalogItemKind, "CATALOG_ITEM_KIND_"),
        "credits": o.credits,
        "amount": o.amount,
        "currency": o.currency,
        "channel": o.channel,
        "checkout": checkout,
        "provider_transaction_id": o.provider_transaction_id or None,
        "created_at": ts(o, "create_time"),
        "paid_at": ts(o, "paid_time"),
        "failed_at": ts(o, "failed_time"),
        "expired_at": ts(o, "expired_time"),
        "refunded_at": ts(o, "refunded_time"),
    }
