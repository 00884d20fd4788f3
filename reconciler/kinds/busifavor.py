"""商家券 (busifavor): POST /v3/marketing/busifavor/stocks, its detail, modify and budget. Pure.

The detail response repeats the create body under the same paths, so every field sent is
observable. Which fields the modify and budget calls can change is declared on the model's
fields (`MODIFY`, `Budget`). There is no list endpoint: a create whose answer was lost and
whose number is refused on reuse cannot be looked up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, ClassVar

from reconciler.diagnostic_messages import msg
from reconciler.i18n import Lang, date_range, pick
from reconciler.kinds.base import StockApi, StockKind, count_text, offer_text
from reconciler.mapping import get_path, leaves
from reconciler.money import money, yuan_short
from reconciler.operation import CreateResult, Operation, OpType
from reconciler.plan import BudgetDelta
from reconciler.spec.busifavor import BusifavorSpec
from reconciler.spec.findings import Finding, Findings
from reconciler.spec.labels_busifavor import BUSIFAVOR_LABELS
from reconciler.spec.rules_busifavor import busifavor_creation_rules, busifavor_rules
from reconciler.spec.stock import BusifavorStock, Stock


def _busifavor(stock: Stock) -> BusifavorStock:
    assert isinstance(stock, BusifavorStock), f"{stock.id} is not a busifavor stock"
    return stock


class BusifavorKind(StockKind):
    name = "busifavor"
    label = "商家券"
    model = BusifavorStock
    spec_model = BusifavorSpec
    facts_fields: ClassVar[tuple[str, ...]] = (
        "stock_state",
        "send_count_information",
        "coupon_code_count",
    )
    begin_time_path = "coupon_use_rule.coupon_available_time.available_begin_time"
    end_time_path = "coupon_use_rule.coupon_available_time.available_end_time"
    immutable_reason = "WeChat Pay does not allow changing these fields after creation"
    identity_paths = (
        "stock_name",
        "stock_type",
        "coupon_use_rule.coupon_available_time.available_begin_time",
        "coupon_use_rule.coupon_available_time.available_end_time",
    )
    creator_path = "belong_merchant"
    labels = BUSIFAVOR_LABELS
    callback_permission = "the 营销事件推送 (marketing-event push) permission, and an APIv3 key set in 商户平台 (账户中心 → API安全)"

    def committed_budget(self, stock: Stock) -> int | None:
        """NORMAL coupons: discount × max_coupons, the most the stock can give away."""
        spec = _busifavor(stock).spec
        fixed = spec.coupon_use_rule.fixed_normal_coupon
        count = spec.stock_send_rule.max_coupons
        if fixed is None or count is None:
            return None
        return int(fixed.discount_amount) * int(count)

    def budget_deltas(
        self, applied: Mapping[str, Any], desired: Mapping[str, Any]
    ) -> tuple[BudgetDelta, ...]:
        """A NORMAL stock's max_coupons change, at discount_amount a coupon: the most the stock
        can give away moves by the difference (a ceiling, never locked). The daily cap moves no
        total, and a percentage or exchange coupon states no value per coupon."""
        path = "stock_send_rule.max_coupons"
        _, before = get_path(applied, path)
        _, after = get_path(desired, path)
        _, unit = get_path(desired, "coupon_use_rule.fixed_normal_coupon.discount_amount")
        counts = [
            v for v in (before, after, unit) if isinstance(v, int) and not isinstance(v, bool)
        ]
        if len(counts) < 3 or before == after:
            return ()
        return (BudgetDelta(f"spec.{path}", before, after, unit),)

    def summary_line(self, body: Mapping[str, Any], lang: Lang) -> str:
        use = body.get("coupon_use_rule") or {}
        send = body.get("stock_send_rule") or {}
        times = use.get("coupon_available_time") or {}
        fixed = use.get("fixed_normal_coupon") or {}
        off, coupons = fixed.get("discount_amount"), send.get("max_coupons")
        if isinstance(off, int) and isinstance(coupons, int):
            ceiling = yuan_short(off * coupons)
            money_text = pick(
                lang, f"ceiling {ceiling}, locks nothing", f"上限 {ceiling}，不锁定资金"
            )
        else:
            money_text = pick(lang, "locks nothing", "不锁定资金")
        return " · ".join(
            [
                str(body.get("stock_name", "")),
                self.label,
                offer_text(lang, body, "discount_amount"),
                count_text(lang, coupons, send.get("max_coupons_per_user")),
                date_range(times.get("available_begin_time"), times.get("available_end_time")),
                money_text,
            ]
        )

    def create_reason(self, stock: Stock) -> str:
        budget = self.committed_budget(stock)
        what = (
            f"up to {money(budget)} in discounts (discount_amount × max_coupons)"
            if budget is not None
            else "no budget stated for this coupon kind"
        )
        return f"no busifavor stock with this id yet; {what}"

    def rules(self, stock: Stock) -> list[Finding]:
        out = Findings(("spec",))
        busifavor_rules(_busifavor(stock).spec, stock.merchant, out)
        if _busifavor(stock).codes is not None and not self._uploads(stock):
            top = Findings(())
            top.error(
                ("codes",),
                msg("codes.mode"),
                "codes_mode",
                "set coupon_code_mode: MERCHANT_UPLOAD, or remove `codes`",
            )
            out.items += top.items
        return out.items

    def _uploads(self, stock: Stock) -> bool:
        return _busifavor(stock).spec.coupon_code_mode == "MERCHANT_UPLOAD"

    def code_capacity(self, stock: Stock) -> int | None:
        if not self._uploads(stock):
            return None
        return _busifavor(stock).spec.stock_send_rule.max_coupons

    def creation_rules(self, stock: Stock, now: datetime) -> list[Finding]:
        out = Findings(("spec",))
        busifavor_creation_rules(_busifavor(stock).spec, now, out)
        return out.items

    def observable_paths(self, body: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
        return ((p, p) for p, _ in leaves(body) if p != "out_request_no")

    import_omitted_defaults: ClassVar[Mapping[str, Any]] = {
        "stock_send_rule.transferable": False,
        "stock_send_rule.shareable": False,
        "subsidy": False,
    }

    def detail_path(self, path: str) -> str | None:
        """The detail repeats the create body under the same paths."""
        return path

    def create(self, api: StockApi, body: Mapping[str, Any]) -> CreateResult:
        return api.busifavor_create(body)

    def detail(self, api: StockApi, stock_id: str, merchant: str) -> dict[str, Any]:
        return api.busifavor_detail(stock_id)

    def send_update(self, api: StockApi, op: Operation) -> None:
        assert op.stock_id is not None
        if op.type is OpType.MODIFY:
            api.busifavor_modify(op.stock_id, op.body)
        elif op.type is OpType.BUDGET:
            api.busifavor_budget(op.stock_id, op.body)
        else:
            super().send_update(api, op)
