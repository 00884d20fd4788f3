"""The planner, pure: (desired stocks, state, observed details, clock) -> Plan.

No I/O, no clock reads: `now` and the observed details come in as arguments, so the same
inputs always give the same plan, in a stable order (by id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from reconciler import images_plan
from reconciler.callbacks import Observed, plan_callbacks
from reconciler.codes import with_uploads
from reconciler.desired import DesiredStock
from reconciler.ids import out_request_no
from reconciler.kinds import FieldDiff, Lifecycle, StockKind, Verdict, kind_of
from reconciler.limits import DEFAULT_LIMITS, FALLBACK_LIMIT, Limit
from reconciler.mapping import MONEY_FIELDS, without_number
from reconciler.money import money
from reconciler.plan import (
    ACTING,
    Action,
    Change,
    FieldChange,
    MerchantTotals,
    Operation,
    OpType,
    Plan,
)
from reconciler.spec.common import parse_rfc3339
from reconciler.spec.images import ImageFacts
from reconciler.spec.stock import Stock
from reconciler.state.model import State, StockState

BEIJING = timezone(timedelta(hours=8))


@dataclass(frozen=True)
class PlanInputs:
    desired: Sequence[DesiredStock]
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
    images: Mapping[str, ImageFacts] | None = None
    """The facts of the image files the stocks name, by root-relative path."""
    callbacks: Mapping[str, str] = field(default_factory=dict)
    """Notify URLs from reconciler.yaml by `<mchid>/<kind>` (reconciler.callbacks)."""
    observed_callbacks: Mapping[str, Observed] | None = None
    """What the refresh read for them (None: not read)."""


def _field(change: FieldDiff, note: str = "") -> FieldChange:
    """A diff as the plan shows it: paths from the stock file's root, money flagged; a field
    set for the first time has no known value before."""
    name = change.path.rsplit(".", 1)[-1]
    before = None if note == FIRST_TIME else change.before
    return FieldChange(f"spec.{change.path}", before, change.after, name in MONEY_FIELDS, note)


FIRST_TIME = "set for the first time: not returned by WeChat Pay when the stock was imported"


def _first_time(st: StockState, diffs: Sequence[FieldDiff]) -> dict[str, str]:
    """The changed fields that were unknown at import, each with the note the plan shows."""
    if not st.unknown_at_import:
        return {}
    return {
        d.path: FIRST_TIME
        for d in diffs
        if any(d.path == u or d.path.startswith(u + ".") for u in st.unknown_at_import)
    }


TRANSITION_WORDS = {
    OpType.START: "activate (start)",
    OpType.PAUSE: "pause",
    OpType.RESTART: "restart",
    OpType.STOP: "stop",
}


def _life_reason(kind: StockKind, life: Lifecycle, applied: Mapping[str, Any]) -> str:
    """`activate (start): unactivated -> running; locks ... (预充值)`, or "" without calls."""
    if not life.operations:
        return ""
    calls = ", then ".join(TRANSITION_WORDS.get(o.type, o.type.value) for o in life.operations)
    text = f"{calls}: status {life.before} -> {life.after}"
    locked = _locked(kind, life.operations, applied)
    if locked:
        text += f"; activation locks {money(locked)} from the merchant's balance (预充值)"
    if life.irreversible:
        text += "; IRREVERSIBLE: a stopped stock can never be activated"
    return text


def _locked(kind: StockKind, ops: Sequence[Operation], applied: Mapping[str, Any]) -> int:
    return sum(kind.locked_at_activation(applied) for o in ops if o.type is OpType.START)


def _status_field(life: Lifecycle) -> FieldChange:
    note = "irreversible" if life.irreversible else ""
    return FieldChange("status", life.before, life.after, note=note)


class _Planner:
    def __init__(self, inputs: PlanInputs) -> None:
        self.i = inputs
        self.changes: list[Change] = []

    def run(self) -> Plan:
        desired_ids = {d.stock.id for d in self.i.desired}
        orphans = [s for s in self.i.state.stocks.values() if s.id not in desired_ids]
        for loaded in self.i.desired:
            st = self.i.state.stocks.get(loaded.stock.id)
            self.changes.append(with_uploads(self._one(loaded, orphans), loaded.codes, st))
        for orphan in orphans:
            self.changes.append(self._orphan(orphan))
        self.changes += plan_callbacks(self.i.callbacks, self.i.state, self.i.observed_callbacks)
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

    def _one(self, loaded: DesiredStock, orphans: list[StockState]) -> Change:
        urls = self.i.state.media_urls(loaded.stock.merchant)
        resolved = images_plan.resolve(loaded, self.i.images or {}, urls)
        if resolved.missing:
            return Change(
                id=loaded.stock.id,
                kind=loaded.stock.kind,
                merchant=loaded.stock.merchant,
                file=loaded.file,
                line=loaded.line,
                action=Action.BLOCKED,
                reason=f"the image file {resolved.missing!r} cannot be read any more",
                suggestion="run `reconciler validate` and fix what it reports",
            )
        change = self._stock(resolved.loaded, orphans)
        if resolved.uploads and change.action in ACTING and change.operations:
            ops = images_plan.with_uploads(change.operations, resolved.uploads)
            change = replace(change, operations=ops)
        return change

    def _stock(self, loaded: DesiredStock, orphans: list[StockState]) -> Change:
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
            changed = "kind" if st.kind != stock.kind else "merchant"
            return Change(
                **(base | {"line": loaded.line_of(changed)}),
                action=Action.IMMUTABLE,
                stock_id=st.stock_id,
                reason=f"the state has {st.id!r} as a {st.kind} stock of merchant {st.merchant}; kind and merchant cannot change",
                fields=(
                    FieldChange("kind", st.kind, stock.kind),
                    FieldChange("merchant", st.merchant, stock.merchant),
                ),
                suggestion="revert kind/merchant, or give the new stock a new id",
            )
        kind = kind_of(stock.kind)
        if st is not None and st.pending is not None:
            return self._recover(kind, loaded, st, base)
        if st is None or st.stock_id is None:
            return self._create(kind, loaded, st, base, orphans)
        return self._existing(kind, loaded, st, base)

    def _create(
        self,
        kind: StockKind,
        loaded: DesiredStock,
        st: StockState | None,
        base: dict[str, Any],
        orphans: list[StockState],
    ) -> Change:
        stock = loaded.stock
        second = ""
        budget = kind.committed_budget(stock)
        if st is not None:
            number, generation = st.out_request_no, st.generation
        else:
            retired = self.i.state.retired_for(
                stock.merchant, stock.kind, stock.id, below=stock.generation + 1
            )
            if retired and retired[-1][0] == stock.generation:
                return self._untracked(stock.generation, retired[-1][1], base, budget)
            generation = max(
                stock.generation, self.i.state.free_generation(stock.merchant, stock.kind, stock.id)
            )
            number = out_request_no(stock.merchant, stock.kind, stock.id, generation)
            if retired:
                earlier = ", ".join(
                    f"generation {g} (stock_id {sid or 'not recorded'})" for g, sid in retired
                )
                second = f"; a further stock for this id on purpose (generation {generation}): the stock of {earlier} stays, with its own budget"
        body = kind.create_body(stock, number)
        problems = kind.creation_rules(stock, self.i.now)
        if problems:
            at = loaded.line_of(".".join(map(str, problems[0].path)))
            return Change(
                **(base | {"line": at}),
                action=Action.BLOCKED,
                reason="cannot be created: "
                + "; ".join(f"{'.'.join(map(str, f.path))}: {f.message}" for f in problems),
                budget_fen=budget,
                suggestion="; ".join(dict.fromkeys(f.fix for f in problems if f.fix))
                or "the begin time must be now or later, and at most 365 days ahead",
            )
        for orphan in orphans:
            if orphan.kind == stock.kind and orphan.merchant == stock.merchant:
                applied = orphan.applied_body or orphan.sent_body
                if applied is not None and without_number(applied) == without_number(body):
                    return Change(
                        **base,
                        action=Action.RENAME,
                        stock_id=orphan.stock_id,
                        reason=f"same body as {orphan.id!r}, which is in the state but has no file any more: probably a renamed id; creating would make a second stock",
                        suggestion=f"reconciler state mv {orphan.id} {stock.id}",
                    )
        life = self._new_lifecycle(kind, stock, generation, body)
        if life.irreversible:
            return Change(
                **base,
                action=Action.BLOCKED,
                reason="status: stopped for a stock that does not exist yet: it would be created only to be ended",
                budget_fen=budget,
                suggestion="remove the file, or choose status: created, running or paused",
            )
        more = _life_reason(kind, life, body)
        return Change(
            **base,
            action=Action.CREATE,
            reason=kind.create_reason(stock) + second + (f"; then {more}" if more else ""),
            operations=(Operation(OpType.CREATE, number, body, generation, body), *life.operations),
            budget_fen=budget,
            locked_fen=_locked(kind, life.operations, body) or None,
            ceiling_fen=kind.ceiling(stock) or None,
        )

    def _new_lifecycle(
        self, kind: StockKind, stock: Stock, generation: int, body: Mapping[str, Any]
    ) -> Lifecycle:
        """The lifecycle calls that follow a create in the same apply (from the status WeChat
        Pay gives a new stock)."""
        return kind.plan_lifecycle(stock, None, generation, body, kind.initial_status, False)

    def _untracked(
        self, generation: int, stock_id: str | None, base: dict[str, Any], budget: int | None
    ) -> Change:
        remote = f"stock_id {stock_id}" if stock_id else "its stock_id was not recorded"
        how = (
            f"reconciler state import {base['id']} {stock_id}"
            if stock_id
            else f"reconciler state import {base['id']} <stock_id>"
        )
        return Change(
            **base,
            action=Action.UNTRACKED,
            stock_id=stock_id,
            reason=f"WeChat Pay already has the stock this file created under generation {generation} ({remote}); `reconciler state rm` stopped tracking it, and creating again would make a second stock and commit its budget twice",
            budget_fen=budget,
            suggestion=f"{how} to track that stock again; or, for a second stock on purpose, set `generation: {generation + 1}` in the file (reviewed like any change)",
        )

    def _recover(
        self, kind: StockKind, loaded: DesiredStock, st: StockState, base: dict[str, Any]
    ) -> Change:
        pending = st.pending
        assert pending is not None
        if pending.action == OpType.CREATE:
            sent = dict(st.sent_body or {})
            if pending.outcome == "already_exists" and not kind.can_look_up:
                return Change(
                    **base,
                    action=Action.UNRESOLVED,
                    reason=f"WeChat Pay says {pending.request_no} was already used, but {kind.name} has no list endpoint to find the stock it created",
                    suggestion=f"find the stock_id in 商户平台 (营销中心 → {kind.label}), then: reconciler state import {st.id} <stock_id>",
                )
            note = (
                ""
                if without_number(sent)
                == without_number(kind.create_body(loaded.stock, st.out_request_no))
                else "; the file changed since, the recorded body is resent unchanged (the change shows after)"
            )
            life = self._new_lifecycle(kind, loaded.stock, st.generation, sent)
            if life.irreversible:
                life = Lifecycle()
            more = _life_reason(kind, life, sent)
            return Change(
                **base,
                action=Action.RECOVER,
                reason=f"a create sent at {pending.started_at.isoformat()} did not finish ({pending.attempts} attempt(s)); apply settles it with the same out_request_no and body{note}"
                + (f"; then {more}" if more else ""),
                operations=(
                    Operation(OpType.CREATE, st.out_request_no, sent, st.generation, sent),
                    *life.operations,
                ),
                budget_fen=kind.committed_budget(loaded.stock),
                locked_fen=_locked(kind, life.operations, sent) or None,
                ceiling_fen=kind.ceiling(loaded.stock) or None,
            )
        change = self._existing(kind, loaded, st, base)
        if change.action is Action.UPDATE:
            return Change(
                **{
                    **change.__dict__,
                    "action": Action.RECOVER,
                    "reason": f"an interrupted {pending.action} is resent; " + change.reason,
                }
            )
        if change.action is Action.NOOP and st.stock_id is not None:
            # A lifecycle call in doubt that WeChat Pay shows as done (or no longer wanted):
            # apply reads the stock back and settles the intent, sending only if still needed.
            op = kind.lifecycle_call(
                st.merchant,
                st.id,
                st.generation,
                pending.action,
                st.stock_id,
                st.applied_body or st.sent_body or {},
            )
            if op is not None and op.request_no == pending.request_no:
                return Change(
                    **{
                        **change.__dict__,
                        "action": Action.RECOVER,
                        "reason": f"an interrupted {pending.action.value} ({pending.request_no}) is settled: apply reads the stock back and resends it only if WeChat Pay does not show it done",
                        "operations": (op,),
                    }
                )
        return change

    def _existing(
        self, kind: StockKind, loaded: DesiredStock, st: StockState, base: dict[str, Any]
    ) -> Change:
        stock = loaded.stock
        applied = st.applied_body or st.sent_body
        observed = self.i.observed.get(stock.id)
        known = observed if observed is not None else (st.observed or {})
        fact = kind.facts(known)
        life = kind.plan_lifecycle(
            stock,
            st.stock_id,
            st.generation,
            applied or {},
            kind.status_of(known),
            kind.ended(applied or kind.create_body(stock, st.out_request_no), self.i.now),
        )
        if applied is None and life.operations and not life.error:
            return self._update(kind, stock.id, st, base, {}, {}, known, [], fact, life)
        if applied is None:  # imported: the observed details are all we know
            return Change(
                **base,
                action=Action.NOOP,
                stock_id=st.stock_id,
                reason="imported stock; nothing recorded to compare",
                facts=fact,
            )
        desired = kind.create_body(stock, st.out_request_no)
        diffs = kind.diff(applied, desired)
        if observed is not None and (diffs or life.operations):
            # Before anything is sent: the stock under the recorded stock_id must be this one.
            foreign = kind.identity_mismatch(st.merchant, applied, observed)
            if foreign:
                return Change(
                    **base,
                    action=Action.MISMATCH,
                    stock_id=st.stock_id,
                    reason=f"WeChat Pay's stock {st.stock_id} is not the one recorded for this id ({', '.join(d.path for d in foreign)} differ); nothing is sent to it. The state's stock_id may be wrong (edited, or restored from another project)",
                    fields=tuple(_field(d) for d in foreign),
                    facts=fact,
                    suggestion=f"check the stock_id in 商户平台; then `reconciler state rm {stock.id}` and `reconciler state import {stock.id} <stock_id>`",
                )
        first = _first_time(st, diffs)
        immutable = [d for d in diffs if kind.verdict(d) is Verdict.IMMUTABLE]
        if immutable:
            names = ", ".join(d.path for d in immutable)
            reason = f"{names}: {kind.immutable_reason}; a replacement would be a second stock (stocks cannot be deleted, so the budget would double)"
            suggestion = (
                "revert the change, or give the new stock a new id (the old stock stays as it is)"
            )
            if all(d.path in first for d in immutable):
                reason = f"{names}: set for the first time; WeChat Pay did not return {'this field' if len(immutable) == 1 else 'these fields'} when the stock was imported, so the stock's own value is unknown, and it cannot be sent: {kind.immutable_reason}"
                suggestion = f"put back what the file said at import; or, if the file now says what the stock holds, record it: `reconciler state rm {stock.id}`, then `reconciler state import {stock.id} {st.stock_id}`"
            return Change(
                **(base | {"line": loaded.line_of(f"spec.{immutable[0].path}")}),
                action=Action.IMMUTABLE,
                stock_id=st.stock_id,
                reason=reason,
                fields=tuple(_field(d, first.get(d.path, "")) for d in immutable),
                facts=fact,
                suggestion=suggestion,
            )
        if life.error:
            return Change(
                **base,
                action=Action.IMMUTABLE,
                stock_id=st.stock_id,
                reason=f"status: {life.error}",
                fields=(_status_field(life),),
                facts=fact,
                suggestion=f"set status back to what WeChat Pay shows ({life.before}), or give a new stock a new id",
            )
        if diffs or life.operations:
            return self._update(
                kind, stock.id, st, base, applied, desired, known, diffs, fact, life
            )
        if observed is not None:
            drift = kind.drifted(applied, observed)
            if drift:
                return Change(
                    **base,
                    action=Action.DRIFT,
                    stock_id=st.stock_id,
                    reason="WeChat Pay shows values that differ from what was applied (changed in the merchant platform?); reconciler does not overwrite them",
                    fields=tuple(_field(d) for d in drift),
                    facts=fact,
                )
        return Change(
            **base, action=Action.NOOP, stock_id=st.stock_id, reason="in sync", facts=fact
        )

    def _update(
        self,
        kind: StockKind,
        id: str,
        st: StockState,
        base: dict[str, Any],
        applied: Mapping[str, Any],
        desired: Mapping[str, Any],
        known: Mapping[str, Any],
        diffs: list[FieldDiff],
        fact: dict[str, Any],
        life: Lifecycle,
    ) -> Change:
        assert st.stock_id is not None
        end = kind.end_time(desired)
        if diffs and end is not None and parse_rfc3339(end) <= self.i.now:
            return Change(
                **base,
                action=Action.BLOCKED,
                stock_id=st.stock_id,
                reason=f"the stock's validity ended at {end}; WeChat Pay accepts changes only before it ends",
                facts=fact,
            )
        planned = kind.plan_update(
            st.merchant, id, st.stock_id, st.generation, applied, desired, known, diffs
        )
        reasons = [f"{o.type.value} ({o.request_no})" for o in planned.operations]
        if life.operations:
            reasons.append(_life_reason(kind, life, applied))
        first = _first_time(st, planned.fields)
        fields = [_field(d, first.get(d.path, "")) for d in planned.fields]
        if life.operations:
            fields.append(_status_field(life))
        return Change(
            **base,
            action=Action.UPDATE,
            stock_id=st.stock_id,
            reason=", ".join(reasons),
            fields=tuple(fields),
            operations=planned.operations + life.operations,
            facts=fact,
            locked_fen=_locked(kind, life.operations, applied) or None,
            budget_deltas=kind.budget_deltas(applied, desired) if planned.operations else (),
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
            facts=kind_of(st.kind).facts(known),
        )

    # --- totals ----------------------------------------------------------------------------

    def _totals(self) -> list[MerchantTotals]:
        out = []
        for merchant in sorted({c.merchant for c in self.changes}):
            mine = [c for c in self.changes if c.merchant == merchant]
            creates = [c for c in mine if c.action is Action.CREATE]
            recovers = [c for c in mine if c.action is Action.RECOVER]
            updates = [c for c in mine if c.action is Action.UPDATE]
            # Money a recovered create may still commit counts with the creates' budget.
            committing = creates + [
                c for c in recovers if any(o.type is OpType.CREATE for o in c.operations)
            ]
            counts: dict[str, int] = {}
            for c in creates + recovers + updates:
                for o in c.operations:
                    call = f"{c.kind}_{o.type.value}"
                    counts[call] = counts.get(call, 0) + 1
            overrides = (self.i.rate_limits or {}).get(merchant, {})
            seconds = 0.0
            for name, n in counts.items():
                limit = overrides.get(name) or DEFAULT_LIMITS.get(name) or FALLBACK_LIMIT
                seconds += max(0, n - limit.capacity) / limit.rate
            out.append(
                MerchantTotals(
                    merchant=merchant,
                    creates=len(creates),
                    create_budget_fen=sum(c.budget_fen or 0 for c in committing),
                    updates=len(updates),
                    estimated_seconds=math.ceil(seconds),
                    recovers=len(recovers),
                    activation_locked_fen=sum(
                        c.locked_fen or 0 for c in creates + recovers + updates
                    ),
                    ceiling_fen=sum(c.ceiling_fen or 0 for c in committing),
                    budget_delta_fen=sum(d.fen for c in updates for d in c.budget_deltas),
                )
            )
        return out


def make_plan(inputs: PlanInputs) -> Plan:
    """Decide, for every desired and every recorded stock, what apply would do and why."""
    return _Planner(inputs).run()
