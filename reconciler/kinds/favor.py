"""代金券 (favor): POST /v3/marketing/favor/coupon-stocks and its detail and list. Pure.

Nothing about a favor stock can change after the create; its detail response moves the coupon
rules under `stock_use_rule` and the description to the top level (declared on the model's
fields with `Detail`), and it can be found again through the list endpoint when the answer to
its create was lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from reconciler.kinds.base import StockApi, StockKind
from reconciler.money import money
from reconciler.operation import CreateResult
from reconciler.spec.favor import FavorSpec
from reconciler.spec.findings import Finding, Findings
from reconciler.spec.rules_favor import favor_creation_rules, favor_rules
from reconciler.spec.stock import FavorStock, Stock

LIST_PAGE = 10
"""The favor list returns at most 10 stocks a page."""


def _favor(stock: Stock) -> FavorStock:
    assert isinstance(stock, FavorStock), f"{stock.id} is not a favor stock"
    return stock


class FavorKind(StockKind):
    name = "favor"
    label = "代金券"
    model = FavorStock
    spec_model = FavorSpec
    facts_fields: ClassVar[tuple[str, ...]] = (
        "status",
        "distributed_coupons",
        "create_time",
        "start_time",
        "stop_time",
    )
    begin_time_path = "available_begin_time"
    end_time_path = "available_end_time"
    immutable_reason = "代金券 (favor) stocks cannot be modified after creation"
    can_look_up = True
    identity_paths = ("stock_name", "stock_type", "available_begin_time", "available_end_time")
    creator_path = "stock_creator_mchid"

    def committed_budget(self, stock: Stock) -> int:
        return int(_favor(stock).spec.stock_use_rule.max_amount)

    def create_reason(self, stock: Stock) -> str:
        spec = _favor(stock).spec
        funding = (
            "no pre-funding (免充值)"
            if spec.no_cash
            else "locked from the balance at activation (预充值)"
        )
        return f"no favor stock with this id yet; budget {money(spec.stock_use_rule.max_amount)}, {funding}"

    def rules(self, stock: Stock) -> list[Finding]:
        out = Findings(("spec",))
        favor_rules(_favor(stock).spec, stock.merchant, out)
        return out.items

    def creation_rules(self, stock: Stock, now: datetime) -> list[Finding]:
        out = Findings(("spec",))
        favor_creation_rules(_favor(stock).spec, now, out)
        return out.items

    def create(self, api: StockApi, body: Mapping[str, Any]) -> CreateResult:
        return api.favor_create(body)

    def detail(self, api: StockApi, stock_id: str, merchant: str) -> dict[str, Any]:
        return api.favor_detail(stock_id, merchant)

    def created_candidates(
        self,
        api: StockApi,
        merchant: str,
        sent: Mapping[str, Any],
        since: datetime,
        until: datetime,
    ) -> dict[str, dict[str, Any]]:
        """Every stock the merchant created in the window whose listed fields equal `sent`.

        The list's `offset` is a page number or an item offset (UNCONFIRMED): paging with
        offsets 0, 1, 2, ... and keeping each stock once is right under either reading."""
        found: dict[str, dict[str, Any]] = {}
        offset = 0
        while True:
            page = api.favor_list(
                merchant,
                offset,
                LIST_PAGE,
                since.isoformat(timespec="seconds"),
                until.isoformat(timespec="seconds"),
            )
            data = page.get("data") or []
            for item in data:
                if self.matches(sent, item):
                    found[str(item["stock_id"])] = item
            offset += 1
            if not data or offset > int(page.get("total_count", 0)):
                return found
