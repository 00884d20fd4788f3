"""Service-provider (服务商) rules: what a stock may name besides its creating merchant.

The provider creates stocks as itself, on the same paths and bodies as a direct merchant
(reference §7.5): a 商家券 `belong_merchant` is the sub-merchant the stock is for, and a 免充值
代金券 `available_merchants` must be the provider's authorised sub-merchants; sub-merchants
cannot create 代金券 themselves. The sub-merchants come from `reconciler.yaml`
(`merchants[].sub_merchants`), so these rules run where the project file is known.

Where the sources stop, the choice is the safe one (docs/partners.md): outside the creator,
its sub-merchants and its declared `brand_merchants`, a 免充值 `available_merchants` entry is
an error for a merchant that declares either list; a direct merchant that declares neither
is not checked (the same-brand rule is not documented in a form that can be checked here).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from reconciler.diagnostic_messages import msg
from reconciler.spec.findings import Finding, Findings
from reconciler.spec.stock import BusifavorStock, FavorStock, Stock


@dataclass(frozen=True)
class Relation:
    """One configured merchant's partners."""

    sub_merchants: Mapping[str, str] = field(default_factory=dict)
    """Sub-merchant id -> display name."""
    brand_merchants: Collection[str] = ()


@dataclass(frozen=True)
class Partners:
    """The partner rules of one project: each configured merchant's relation, and each
    sub-merchant's provider. Small and picklable, so the loader's worker processes check
    every file as it is read (`reconciler validate` keeps no models to check afterwards)."""

    relations: Mapping[str, Relation] = field(default_factory=dict)
    providers_of: Mapping[str, str] = field(default_factory=dict)

    def findings(self, stock: Stock) -> list[Finding]:
        return partner_findings(stock, self.relations, self.providers_of)


def partner_findings(
    stock: Stock, relations: Mapping[str, Relation], providers_of: Mapping[str, str]
) -> list[Finding]:
    """Findings for `stock` against the configured relations (`providers_of`: sub-merchant
    id -> the provider that declares it). A merchant missing from `relations` is not checked
    here (its credentials are reported elsewhere)."""
    out = Findings(("spec",))
    creator = stock.merchant
    relation = relations.get(creator)
    if relation is None:
        return []
    subs = relation.sub_merchants
    if isinstance(stock, BusifavorStock):
        owner = stock.spec.belong_merchant
        if owner != creator and owner not in subs:
            shown = ", ".join(list(subs)[:5]) + (", …" if len(subs) > 5 else "")
            listed = f" ({shown})" if subs else ""
            out.error(
                ("belong_merchant",),
                msg("partner.belong_merchant", owner=owner, creator=creator, listed=listed),
                "partner_belong_merchant",
                fix=f"add {owner} to merchants[{creator}].sub_merchants, or create the stock as its own merchant",
            )
    elif isinstance(stock, FavorStock):
        rule = stock.spec.coupon_use_rule
        declared = bool(subs) or bool(relation.brand_merchants)
        if stock.spec.no_cash and declared and rule.available_merchants is not None:
            allowed = {creator, *subs, *relation.brand_merchants}
            for i, m in enumerate(rule.available_merchants):
                if m not in allowed:
                    out.error(
                        ("coupon_use_rule", "available_merchants", i),
                        msg("partner.available_merchants", merchant=m, creator=creator),
                        "partner_available_merchants",
                    )
    top = Findings()
    if isinstance(stock, FavorStock) and creator in providers_of:
        top.error(
            ("merchant",),
            msg("partner.sub_merchant_creator", creator=creator, provider=providers_of[creator]),
            "partner_sub_merchant_creator",
        )
    return [*top.items, *out.items]


def landing_merchants(stock: Stock) -> tuple[str, ...]:
    """Where the money of a stock lands: a 商家券's belong_merchant; a 代金券's
    available_merchants (the creator when it lists none)."""
    if isinstance(stock, BusifavorStock):
        return (stock.spec.belong_merchant,)
    listed = stock.spec.coupon_use_rule.available_merchants
    return tuple(dict.fromkeys(listed)) if listed else (stock.merchant,)
