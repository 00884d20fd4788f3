"""代金券 (favor): POST /v3/marketing/favor/coupon-stocks, its detail and list, its lifecycle
calls (start, pause, restart, stop) and modify-goods-id. Pure.

Of the create body only `available_items` can change after the create (modify-goods-id); its
detail response moves the coupon rules under `stock_use_rule` and the description to the top
level (declared on the model's fields with `Detail`), and it can be found again through the
list endpoint when the answer to its create was lost. WeChat Pay creates a favor stock
unactivated: the file's `status` says where its lifecycle should be, and `plan_lifecycle` plans
the calls from the observed status.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from reconciler.i18n import Lang, date_range, pick
from reconciler.ids import body_digest, update_request_no
from reconciler.kinds.base import (
    NO_LIFECYCLE,
    FieldDiff,
    Lifecycle,
    PlannedUpdate,
    StockApi,
    StockKind,
    Verdict,
    _with_values,
    count_text,
    offer_text,
)
from reconciler.money import money, yuan_short
from reconciler.operation import CreateResult, Operation, OpType
from reconciler.spec.favor import FavorSpec
from reconciler.spec.findings import Finding, Findings
from reconciler.spec.labels_favor import FAVOR_LABELS
from reconciler.spec.rules_favor import favor_creation_rules, favor_rules
from reconciler.spec.stock import FavorStock, Stock

LIST_PAGE = 10
"""The favor list returns at most 10 stocks a page."""
ITEMS_PAGE = 100
"""The items list returns at most 100 goods ids a page (Go SDK)."""
MERCHANTS_PAGE = 50
"""The merchants list returns at most 50 merchant ids a page (Go SDK)."""

UNACTIVATED, AUDIT, RUNNING, STOPED, PAUSED = "unactivated", "audit", "running", "stoped", "paused"
"""The detail's `status` values, WeChat Pay's spelling (`stoped`)."""
ACTIVATED = frozenset({RUNNING, PAUSED})
_FILE_STATUS = {
    UNACTIVATED: "created",
    AUDIT: "running",
    RUNNING: "running",
    PAUSED: "paused",
    STOPED: "stopped",
}
"""The file's `status` that asks for no lifecycle call at each observed status."""

# (file status, observed status) -> the calls, in order. A pair not listed needs no call, or
# is a fact that moves on its own (audit). `created` never touches the lifecycle.
_CALLS: dict[tuple[str, str], tuple[OpType, ...]] = {
    ("running", UNACTIVATED): (OpType.START,),
    ("running", PAUSED): (OpType.RESTART,),
    ("paused", UNACTIVATED): (OpType.START, OpType.PAUSE),
    ("paused", RUNNING): (OpType.PAUSE,),
    ("stopped", UNACTIVATED): (OpType.STOP,),
}
_REFUSED: dict[tuple[str, str], str] = {
    ("running", STOPED): "the stock was stopped; a stopped stock never runs again",
    ("paused", STOPED): "the stock was stopped; a stopped stock cannot be paused",
    (
        "stopped",
        RUNNING,
    ): "the stock was activated; only a never-activated stock can be stopped (pause it instead)",
    (
        "stopped",
        PAUSED,
    ): "the stock was activated; only a never-activated stock can be stopped (it stays paused)",
}
_AFTER = {
    OpType.START: RUNNING,
    OpType.PAUSE: PAUSED,
    OpType.RESTART: RUNNING,
    OpType.STOP: STOPED,
}
NOT_REGISTERED = "尚未注册"
"""In "卡包信息尚未注册完成", the answer to a start soon after the create (§7.1)."""


def _goods_id(item: Any) -> Any:
    """An items entry: a bare goods id, or an object carrying it (UNCONFIRMED shape)."""
    if isinstance(item, Mapping):
        return item.get("goods_id", item.get("id", ""))
    return item


def _merchant_id(item: Any) -> Any:
    """A merchants entry: a bare mchid, or an object carrying it (UNCONFIRMED shape)."""
    if isinstance(item, Mapping):
        return item.get("mchid", item.get("merchant_id", ""))
    return item


def _pages(read: Callable[[int, int], dict[str, Any]], size: int) -> list[Any]:
    """Every entry of a list read by item offset: {total_count, data}."""
    out: list[Any] = []
    while True:
        page = read(len(out), size)
        data = page.get("data") or []
        out += data
        if not data or len(out) >= int(page.get("total_count", 0)):
            return out


def _favor(stock: Stock) -> FavorStock:
    assert isinstance(stock, FavorStock), f"{stock.id} is not a favor stock"
    return stock


class FavorKind(StockKind):
    name = "favor"
    callback_permission = "the 代金券 (cash coupon) product, and the callback set by the merchant that creates the stocks"
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
    immutable_reason = "代金券 (favor) stocks cannot be modified after creation (only available_items, keeping at least one)"
    can_look_up = True
    identity_paths = ("stock_name", "stock_type", "available_begin_time", "available_end_time")
    creator_path = "stock_creator_mchid"
    labels = FAVOR_LABELS

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

    def summary_line(self, body: Mapping[str, Any], lang: Lang) -> str:
        send = body.get("stock_use_rule") or {}
        amount = send.get("max_amount")
        shown = yuan_short(amount) if isinstance(amount, int) else "?"
        if body.get("no_cash") is False:
            money_text = pick(lang, f"locks {shown} at activation", f"激活时锁定 {shown}")
        else:
            money_text = pick(
                lang, f"no pre-funding (免充值), at most {shown}", f"免充值，最多 {shown}"
            )
        return " · ".join(
            [
                str(body.get("stock_name", "")),
                self.label,
                offer_text(lang, body, "coupon_amount"),
                count_text(lang, send.get("max_coupons"), send.get("max_coupons_per_user")),
                date_range(body.get("available_begin_time"), body.get("available_end_time")),
                money_text,
            ]
        )

    # --- money -------------------------------------------------------------------------------

    def locked_at_activation(self, body: Mapping[str, Any]) -> int:
        if body.get("no_cash") is not False:
            return 0
        rule = body.get("stock_use_rule")
        amount = rule.get("max_amount") if isinstance(rule, Mapping) else None
        return int(amount) if isinstance(amount, int) else 0

    def ceiling(self, stock: Stock) -> int:
        spec = _favor(stock).spec
        return int(spec.stock_use_rule.max_amount) if spec.no_cash else 0

    # --- the lifecycle -----------------------------------------------------------------------

    initial_status = UNACTIVATED

    def plan_lifecycle(
        self,
        stock: Stock,
        stock_id: str | None,
        generation: int,
        applied: Mapping[str, Any],
        observed: str | None,
        ended: bool,
    ) -> Lifecycle:
        want = _favor(stock).status
        if observed is None or ended or want == "created":
            return NO_LIFECYCLE
        key = (want, observed)
        if key in _REFUSED:
            return Lifecycle(before=observed, after=want, error=_REFUSED[key])
        calls = _CALLS.get(key, ())
        if not calls:
            return NO_LIFECYCLE
        ops = tuple(
            self.lifecycle_call(stock.merchant, stock.id, generation, t, stock_id, applied)
            for t in calls
        )
        return Lifecycle(ops, observed, want, irreversible=OpType.STOP in calls)

    def lifecycle_call(
        self,
        merchant: str,
        id: str,
        generation: int,
        type: OpType,
        stock_id: str | None,
        applied: Mapping[str, Any],
    ) -> Operation:
        """One lifecycle call; its number is derived (never sent) so the intent names it."""
        assert type in _AFTER, type
        body = {"stock_creator_mchid": merchant}
        number = update_request_no(
            merchant, self.name, id, type.value, body_digest(body), generation
        )
        return Operation(type, number, body, generation, dict(applied), stock_id)

    def status_after(self, type: OpType) -> str | None:
        return _AFTER.get(type)

    def status_of(self, detail: Mapping[str, Any]) -> str | None:
        status = detail.get("status")
        return status if isinstance(status, str) else None

    def not_ready(self, exc: Exception) -> bool:
        """ "卡包信息尚未注册完成" under any code, or a server error (SYSTEM_ERROR), which
        developers report for starts within about a minute of the create (§7.1)."""
        # Read as an API answer's fields (status, message): the kinds know no client classes.
        status = getattr(exc, "status", None)
        if not isinstance(status, int):
            return False
        return NOT_REGISTERED in str(getattr(exc, "message", "") or "") or status >= 500

    # --- adopting a stock made elsewhere ------------------------------------------------------

    import_stand_ins: ClassVar[Mapping[str, Any]] = {
        "stock_use_rule.natural_person_limit": False,
        "stock_use_rule.prevent_api_abuse": False,
    }
    import_derived: ClassVar[Mapping[str, str]] = {"belong_merchant": "stock_creator_mchid"}
    """The create requires belong_merchant to be the creating merchant."""

    def import_value(self, path: str, value: Any) -> Any:
        """trade_type may come back as a bare string (reference §1.2, UNCONFIRMED)."""
        if path.endswith("trade_type") and isinstance(value, str):
            return [value]
        return value

    def import_top(self, detail: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
        """The file's `status` for the observed one; `audit` (under review) is kept running."""
        observed = self.status_of(detail)
        status = _FILE_STATUS.get(observed or "")
        if status is None:
            return {}, {}
        note = f"WeChat Pay shows {observed}"
        return {"status": status}, {"status": note}

    def import_reads(
        self, api: StockApi, stock_id: str, merchant: str, detail: Mapping[str, Any]
    ) -> dict[str, Any]:
        """available_merchants from the merchants list; available_items from the items list
        when the detail says the stock is a single-item one (`singleitem`), else none."""
        out: dict[str, Any] = {
            "coupon_use_rule.available_merchants": [
                str(_merchant_id(m))
                for m in _pages(
                    lambda o, n: api.favor_merchants(stock_id, merchant, o, n), MERCHANTS_PAGE
                )
            ]
        }
        if detail.get("singleitem") is False:
            out["coupon_use_rule.available_items"] = []
        elif detail.get("singleitem") is True:
            out["coupon_use_rule.available_items"] = [
                str(_goods_id(g))
                for g in _pages(lambda o, n: api.favor_items(stock_id, merchant, o, n), ITEMS_PAGE)
            ]
        return out

    def listed(
        self,
        api: StockApi,
        merchant: str,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The merchant's stocks the list returns for the window and status, page by page as
        they are read (a stock may come twice).

        The list's `offset` is a page number or an item offset (UNCONFIRMED): paging with
        offsets 0, 1, 2, ... and keeping each stock once is right under either reading."""
        return self._list_pages(api, merchant, since, until, status)

    def _list_pages(
        self,
        api: StockApi,
        merchant: str,
        since: datetime | None,
        until: datetime | None,
        status: str | None,
    ) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            page = api.favor_list(
                merchant,
                offset,
                LIST_PAGE,
                None if since is None else since.isoformat(timespec="seconds"),
                None if until is None else until.isoformat(timespec="seconds"),
                status,
            )
            data = page.get("data") or []
            yield from data
            offset += 1
            if not data or offset > int(page.get("total_count", 0)):
                return

    # --- available_items ---------------------------------------------------------------------

    def plan_update(
        self,
        merchant: str,
        id: str,
        stock_id: str,
        generation: int,
        applied: Mapping[str, Any],
        desired: Mapping[str, Any],
        known: Mapping[str, Any],
        changes: Sequence[FieldDiff],
    ) -> PlannedUpdate:
        """One modify-goods-id call for the available_items change: the ids to add and the ids
        to delete, each as a comma-separated string (the documented format)."""
        ops: list[Operation] = []
        fields: list[FieldDiff] = []
        current = dict(applied)
        for change in changes:
            if self.verdict(change) is not Verdict.MODIFY:
                continue
            before, after = list(change.before or []), list(change.after or [])
            body: dict[str, Any] = {"stock_creator_mchid": merchant}
            added = [g for g in after if g not in before]
            deleted = [g for g in before if g not in after]
            if added:
                body["add_goods_id_list"] = ",".join(added)
            if deleted:
                body["delete_goods_id_list"] = ",".join(deleted)
            number = update_request_no(
                merchant, self.name, id, OpType.MODIFY_GOODS_ID.value, body_digest(body), generation
            )
            current = _with_values(current, [change])
            ops.append(
                Operation(OpType.MODIFY_GOODS_ID, number, body, generation, current, stock_id)
            )
            fields.append(change)
        return PlannedUpdate(tuple(ops), tuple(fields))

    # --- the calls ---------------------------------------------------------------------------

    def create(self, api: StockApi, body: Mapping[str, Any]) -> CreateResult:
        return api.favor_create(body)

    def send_update(self, api: StockApi, op: Operation) -> None:
        assert op.stock_id is not None
        creator = str(op.body["stock_creator_mchid"])
        if op.type is OpType.MODIFY_GOODS_ID:
            api.favor_modify_goods_id(op.stock_id, op.body)
        elif op.type is OpType.START:
            api.favor_start(op.stock_id, creator)
        elif op.type is OpType.PAUSE:
            api.favor_pause(op.stock_id, creator)
        elif op.type is OpType.RESTART:
            api.favor_restart(op.stock_id, creator)
        elif op.type is OpType.STOP:
            api.favor_stop(op.stock_id, creator)
        else:
            super().send_update(api, op)

    def check_update(self, api: StockApi, op: Operation, merchant: str) -> str | None:
        """The detail does not show available_items: after modify-goods-id, read the stock's
        goods back through the items list and compare them with the file's."""
        if op.type is not OpType.MODIFY_GOODS_ID or op.stock_id is None:
            return None
        wanted = set((op.after.get("coupon_use_rule") or {}).get("available_items") or [])
        stock_id = op.stock_id
        seen = {
            str(_goods_id(item))
            for item in _pages(lambda o, n: api.favor_items(stock_id, merchant, o, n), ITEMS_PAGE)
        }
        if seen == wanted:
            return ""
        return f"WeChat Pay lists the goods {sorted(seen)}, the file wants {sorted(wanted)}"

    def callback_body(self, mchid: str, url: str) -> dict[str, Any]:
        # switch=false is not supported (reference §7.2): the URL is always switched on.
        return {**super().callback_body(mchid, url), "switch": True}

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
        for item in self.listed(api, merchant, since, until):
            if self.matches(sent, item):
                found.setdefault(str(item["stock_id"]), item)
        return found
