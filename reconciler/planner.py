"""The planner, pure: (desired stocks, state, observed details, clock) -> Plan.

No I/O, no clock reads: `now` and the observed details come in as arguments, so the same
inputs always give the same plan, in a stable order (by id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from reconciler.ids import body_digest, out_request_no, update_request_no
from reconciler.limits import DEFAULT_LIMITS, Limit
from reconciler.loader import LoadedStock
from reconciler.mapping import MONEY_FIELDS, drifted, facts, get_path, leaves
from reconciler.money import money
from reconciler.plan import Action, Change, FieldChange, MerchantTotals, Operation, Plan
from reconciler.spec import FavorStock, creation_rules
from reconciler.spec.stock import Stock
from reconciler.state import State, StockState

# busifavor modify (PATCH /stocks/{id}): the documented changeable fields, by top-level key.
MODIFIABLE: dict[str, frozenset[str] | None] = {
    "comment": None,
    "goods_name": None,
    "notify_config": None,
    "subsidy": None,
    "custom_entrance": frozenset({"mini_programs_info", "appid", "hall_id", "code_display_mode"}),
    "display_pattern_info": frozenset(
        {"description", "background_color", "coupon_image_url", "finder_info"}
    ),
    "coupon_use_rule": frozenset({"use_method", "mini_programs_appid", "mini_programs_path"}),
    "stock_send_rule": frozenset({"prevent_api_abuse"}),
}
BUDGET_FIELDS = {
    "stock_send_rule.max_coupons": "max_coupons",
    "stock_send_rule.max_coupons_by_day": "max_coupons_by_day",
}
BEIJING = timezone(timedelta(hours=8))
CREATE_OPERATION = {"favor": "favor_create", "busifavor": "busifavor_create"}


@dataclass(frozen=True)
class PlanInputs:
    desired: Sequence[LoadedStock]
    state: State
    observed: Mapping[str, Mapping[str, Any]]
    """Freshly queried detail responses, by stock id (only for the stocks refreshed)."""
    now: datetime
    refresh: str = "changing"
    refresh_note: str = ""
    desired_digest: str = ""
    tool_version: str = ""
    rate_limits: Mapping[str, Mapping[str, Limit]] | None = None
    """Per merchant overrides of the documented limits, for the time estimate."""


def create_body(stock: Stock, request_no: str) -> dict[str, Any]:
    """The exact create body: the spec as written (absent fields left out) plus the number."""
    body = stock.spec.model_dump(mode="json", exclude_none=True)
    body["out_request_no"] = request_no
    return body


def committed_budget(stock: Stock) -> int | None:
    """Money a create commits: favor max_amount; busifavor NORMAL discount × max_coupons."""
    if isinstance(stock, FavorStock):
        return int(stock.spec.stock_use_rule.max_amount)
    fixed = stock.spec.coupon_use_rule.fixed_normal_coupon
    count = stock.spec.stock_send_rule.max_coupons
    if fixed is None or count is None:
        return None
    return int(fixed.discount_amount) * int(count)


def _field(path: str, before: Any, after: Any, note: str = "") -> FieldChange:
    return FieldChange(f"spec.{path}", before, after, path.rsplit(".", 1)[-1] in MONEY_FIELDS, note)


def _without_number(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "out_request_no"}


def _diff(applied: Mapping[str, Any], desired: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    a, b = _without_number(applied), _without_number(desired)
    if a == b:  # the common case, decided by one C-level comparison
        return []
    old, new = dict(leaves(a)), dict(leaves(b))
    return [
        (p, old.get(p), new.get(p))
        for p in sorted(old.keys() | new.keys())
        if old.get(p) != new.get(p)
    ]


def _classify(kind: str, path: str, before: Any, after: Any) -> str:
    if kind != "busifavor" or after is None:
        return "immutable"
    if path in BUDGET_FIELDS:
        return "budget" if isinstance(after, int) and isinstance(before, int) else "immutable"
    top, _, rest = path.partition(".")
    if top not in MODIFIABLE:
        return "immutable"
    allowed = MODIFIABLE[top]
    if allowed is not None and rest.split(".")[0] not in allowed:
        return "immutable"
    if top == "subsidy" and not (before in (None, False) and after is True):
        return "immutable"
    return "modify"


class _Planner:
    def __init__(self, inputs: PlanInputs) -> None:
        self.i = inputs
        self.changes: list[Change] = []

    def run(self) -> Plan:
        desired_ids = {d.stock.id for d in self.i.desired}
        orphans = [s for s in self.i.state.stocks.values() if s.id not in desired_ids]
        for loaded in self.i.desired:
            self.changes.append(self._one(loaded, orphans))
        for orphan in orphans:
            self.changes.append(self._orphan(orphan))
        self.changes.sort(key=lambda c: c.id)
        totals = self._totals()
        return Plan(
            created_at=self.i.now.astimezone(BEIJING).isoformat(timespec="seconds"),
            tool_version=self.i.tool_version,
            state_lineage=self.i.state.lineage,
            state_serial=self.i.state.serial,
            desired_digest=self.i.desired_digest,
            refresh=self.i.refresh,
            refresh_note=self.i.refresh_note,
            changes=tuple(self.changes),
            totals=tuple(totals),
            estimated_apply_seconds=max((t.estimated_seconds for t in totals), default=0),
        )

    # --- one stock -------------------------------------------------------------------------

    def _one(self, loaded: LoadedStock, orphans: list[StockState]) -> Change:
        stock = loaded.stock
        base: dict[str, Any] = {
            "id": stock.id,
            "kind": stock.kind,
            "merchant": stock.merchant,
            "file": loaded.file,
            "line": loaded.line,
        }
        st = self.i.state.stocks.get(stock.id)
        if st is not None and (st.kind != stock.kind or st.merchant != stock.merchant):
            return Change(
                **base,
                action=Action.IMMUTABLE,
                stock_id=st.stock_id,
                reason=f"the state has {st.id!r} as a {st.kind} stock of merchant {st.merchant}; kind and merchant cannot change",
                fields=(
                    FieldChange("kind", st.kind, stock.kind),
                    FieldChange("merchant", st.merchant, stock.merchant),
                ),
                suggestion="revert kind/merchant, or give the new stock a new id",
            )
        if st is not None and st.pending is not None:
            return self._recover(loaded, st, base)
        if st is None or st.stock_id is None:
            return self._create(loaded, st, base, orphans)
        return self._existing(loaded, st, base)

    def _create(
        self,
        loaded: LoadedStock,
        st: StockState | None,
        base: dict[str, Any],
        orphans: list[StockState],
    ) -> Change:
        stock = loaded.stock
        if st is not None:
            number = st.out_request_no
        else:
            generation = max(
                stock.generation, self.i.state.free_generation(stock.merchant, stock.kind, stock.id)
            )
            number = out_request_no(stock.merchant, stock.kind, stock.id, generation)
        body = create_body(stock, number)
        budget = committed_budget(stock)
        problems = creation_rules(stock, self.i.now)
        if problems:
            return Change(
                **base,
                action=Action.BLOCKED,
                reason="cannot be created: "
                + "; ".join(f"{'.'.join(map(str, f.path))}: {f.message}" for f in problems),
                budget_fen=budget,
                suggestion="move the stock's times forward (the begin time must be now or later, at most 365 days ahead)",
            )
        for orphan in orphans:
            if orphan.kind == stock.kind and orphan.merchant == stock.merchant:
                applied = orphan.applied_body or orphan.sent_body
                if applied is not None and _without_number(applied) == _without_number(body):
                    return Change(
                        **base,
                        action=Action.RENAME,
                        stock_id=orphan.stock_id,
                        reason=f"same body as {orphan.id!r}, which is in the state but has no file any more: probably a renamed id; creating would make a second stock",
                        suggestion=f"reconciler state mv {orphan.id} {stock.id}",
                    )
        if isinstance(stock, FavorStock):
            funding = (
                "no pre-funding (免充值)"
                if stock.spec.no_cash
                else "locked from the balance at activation (预充值)"
            )
            what = f"budget {money(stock.spec.stock_use_rule.max_amount)}, {funding}"
        elif budget is not None:
            what = f"up to {money(budget)} in discounts (discount_amount × max_coupons)"
        else:
            what = "no budget stated for this coupon kind"
        return Change(
            **base,
            action=Action.CREATE,
            reason=f"no {stock.kind} stock with this id yet; {what}",
            operations=(Operation(CREATE_OPERATION[stock.kind], body, number),),
            budget_fen=budget,
        )

    def _recover(self, loaded: LoadedStock, st: StockState, base: dict[str, Any]) -> Change:
        pending = st.pending
        assert pending is not None
        if pending.action == "create":
            sent = st.sent_body or {}
            outcome = pending.outcome
            if st.kind == "busifavor" and outcome == "already_exists":
                return Change(
                    **base,
                    action=Action.UNRESOLVED,
                    reason=f"WeChat Pay says {pending.request_no} was already used, but busifavor has no list endpoint to find the stock it created",
                    suggestion=f"find the stock_id in 商户平台 (营销中心 → 商家券), then: reconciler state import {st.id} <stock_id>",
                )
            note = (
                ""
                if _without_number(sent)
                == _without_number(create_body(loaded.stock, st.out_request_no))
                else "; the file changed since, the recorded body is resent unchanged (the change shows after)"
            )
            return Change(
                **base,
                action=Action.RECOVER,
                reason=f"a create sent at {pending.started_at.isoformat()} did not finish ({pending.attempts} attempt(s)); apply settles it with the same out_request_no and body{note}",
                operations=(Operation(CREATE_OPERATION[st.kind], dict(sent), st.out_request_no),),
                budget_fen=committed_budget(loaded.stock),
            )
        change = self._existing(loaded, st, base)
        if change.action is Action.UPDATE:
            return Change(
                **{
                    **change.__dict__,
                    "action": Action.RECOVER,
                    "reason": f"an interrupted {pending.action} is resent; " + change.reason,
                }
            )
        return change

    def _existing(self, loaded: LoadedStock, st: StockState, base: dict[str, Any]) -> Change:
        stock = loaded.stock
        applied = st.applied_body or st.sent_body
        observed = self.i.observed.get(stock.id)
        known = observed if observed is not None else (st.observed or {})
        fact = facts(stock.kind, known)
        if applied is None:  # imported: the observed details are all we know
            return Change(
                **base,
                action=Action.NOOP,
                stock_id=st.stock_id,
                reason="imported stock; nothing recorded to compare",
                facts=fact,
            )
        desired = create_body(stock, st.out_request_no)
        diffs = _diff(applied, desired)
        groups: dict[str, list[tuple[str, Any, Any]]] = {
            "immutable": [],
            "modify": [],
            "budget": [],
        }
        for path, before, after in diffs:
            groups[_classify(stock.kind, path, before, after)].append((path, before, after))
        if groups["immutable"]:
            names = ", ".join(p for p, _, _ in groups["immutable"])
            why = (
                "代金券 (favor) stocks cannot be modified after creation"
                if stock.kind == "favor"
                else "WeChat Pay does not allow changing these fields after creation"
            )
            return Change(
                **base,
                action=Action.IMMUTABLE,
                stock_id=st.stock_id,
                reason=f"{names}: {why}; a replacement would be a second stock (stocks cannot be deleted, so the budget would double)",
                fields=tuple(_field(p, b, a) for p, b, a in groups["immutable"]),
                facts=fact,
                suggestion="revert the change, or give the new stock a new id (the old stock stays as it is)",
            )
        if groups["modify"] or groups["budget"]:
            return self._update(stock, st, base, desired, known, groups, fact)
        if observed is not None:
            drift = drifted(stock.kind, applied, observed)
            if drift:
                return Change(
                    **base,
                    action=Action.DRIFT,
                    stock_id=st.stock_id,
                    reason="WeChat Pay shows values that differ from what was applied (changed in the merchant platform?); reconciler does not overwrite them",
                    fields=tuple(_field(p, seen, sent) for p, seen, sent in drift),
                    facts=fact,
                )
        return Change(
            **base, action=Action.NOOP, stock_id=st.stock_id, reason="in sync", facts=fact
        )

    def _update(
        self,
        stock: Stock,
        st: StockState,
        base: dict[str, Any],
        desired: dict[str, Any],
        known: Mapping[str, Any],
        groups: dict[str, list[tuple[str, Any, Any]]],
        fact: dict[str, Any],
    ) -> Change:
        assert st.stock_id is not None
        ops: list[Operation] = []
        if groups["modify"]:
            tops = sorted({p.split(".")[0] for p, _, _ in groups["modify"]})
            change: dict[str, Any] = {}
            for top in tops:
                value = desired.get(top)
                allowed = MODIFIABLE[top]
                if isinstance(value, dict) and allowed is not None:
                    value = {k: v for k, v in value.items() if k in allowed}
                change[top] = value
            number = update_request_no(
                stock.merchant, stock.kind, stock.id, "modify", body_digest(change), st.generation
            )
            ops.append(
                Operation(
                    "busifavor_modify", {**change, "out_request_no": number}, number, st.stock_id
                )
            )
        for path, before, after in groups["budget"]:
            name = BUDGET_FIELDS[path]
            found, current = get_path(known, path)
            current = current if found and isinstance(current, int) else before
            change = {f"target_{name}": after, f"current_{name}": current}
            number = update_request_no(
                stock.merchant, stock.kind, stock.id, "budget", body_digest(change), st.generation
            )
            ops.append(
                Operation(
                    "busifavor_budget",
                    {**change, "modify_budget_request_no": number},
                    number,
                    st.stock_id,
                )
            )
        end_found, end = get_path(
            desired, "coupon_use_rule.coupon_available_time.available_end_time"
        )
        from reconciler.spec.common import parse_rfc3339

        if end_found and parse_rfc3339(end) <= self.i.now:
            return Change(
                **base,
                action=Action.BLOCKED,
                stock_id=st.stock_id,
                reason=f"the stock's validity ended at {end}; WeChat Pay accepts changes only before it ends",
                facts=fact,
            )
        fields = tuple(_field(p, b, a) for p, b, a in groups["modify"] + groups["budget"])
        return Change(
            **base,
            action=Action.UPDATE,
            stock_id=st.stock_id,
            reason=", ".join(
                f"{'modify' if o.name.endswith('modify') else 'budget'} ({o.request_no})"
                for o in ops
            ),
            fields=fields,
            operations=tuple(ops),
            facts=fact,
        )

    def _orphan(self, st: StockState) -> Change:
        known = self.i.observed.get(st.id) or st.observed or {}
        if st.pending is not None:
            reason = f"no file any more, and a {st.pending.action} is still pending; restore the file and run apply to settle it"
        else:
            reason = "in the state but no file any more; stocks cannot be deleted, so nothing is done (pause it in the merchant platform if needed, or `reconciler state rm` to stop tracking it)"
        return Change(
            id=st.id,
            kind=st.kind,
            merchant=st.merchant,
            action=Action.ORPHAN,
            stock_id=st.stock_id,
            reason=reason,
            facts=facts(st.kind, known),
        )

    # --- totals ----------------------------------------------------------------------------

    def _totals(self) -> list[MerchantTotals]:
        out = []
        for merchant in sorted({c.merchant for c in self.changes}):
            mine = [c for c in self.changes if c.merchant == merchant]
            creates = [
                c
                for c in mine
                if c.action is Action.CREATE
                or (
                    c.action is Action.RECOVER
                    and any(o.name.endswith("create") for o in c.operations)
                )
            ]
            updates = [
                c for c in mine if c.action in (Action.UPDATE, Action.RECOVER) and c not in creates
            ]
            counts: dict[str, int] = {}
            for c in creates + updates:
                for o in c.operations:
                    counts[o.name] = counts.get(o.name, 0) + 1
            overrides = (self.i.rate_limits or {}).get(merchant, {})
            seconds = 0.0
            for name, n in counts.items():
                limit = overrides.get(name) or DEFAULT_LIMITS.get(name) or Limit(10, 1.0)
                seconds += max(0, n - limit.capacity) / limit.rate
            out.append(
                MerchantTotals(
                    merchant=merchant,
                    creates=len(creates),
                    create_budget_fen=sum(c.budget_fen or 0 for c in creates),
                    updates=len(updates),
                    estimated_seconds=math.ceil(seconds),
                )
            )
        return out


def make_plan(inputs: PlanInputs) -> Plan:
    """Decide, for every desired and every recorded stock, what apply would do and why."""
    return _Planner(inputs).run()
