"""Reading the catalog (plans and packs) from configuration data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from atelier_billing.domain.model import Catalog, CatalogItem, ItemKind


class CatalogError(ValueError):
    """The configured catalog is malformed."""


def parse_catalog(data: Mapping[str, Any]) -> Catalog:
    items: list[CatalogItem] = []
    seen: set[str] = set()
    for raw in data.get("items", []):
        try:
            item = CatalogItem(
                id=str(raw["id"]),
                kind=ItemKind(raw["kind"]),
                name=str(raw["name"]),
                credits=int(raw["credits"]),
                prices={str(c).upper(): int(a) for c, a in dict(raw["prices"]).items()},
                period_days=int(raw.get("period_days", 0)),
                validity_days=(
                    int(raw["validity_days"]) if raw.get("validity_days") is not None else None
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"bad catalog item {raw!r}: {exc}") from exc
        if item.id in seen:
            raise CatalogError(f"duplicate catalog item id {item.id!r}")
        if item.credits <= 0 or any(a < 0 for a in item.prices.values()):
            raise CatalogError(f"catalog item {item.id!r} needs positive credits, prices >= 0")
        if item.kind is ItemKind.MEMBERSHIP and item.period_days <= 0:
            raise CatalogError(f"membership {item.id!r} needs period_days > 0")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise CatalogError("the catalog is empty")
    return Catalog(items=tuple(items))
