"""Executes a Plan against WeChat Pay, persisting the state after every step.

For each create: record the intent (number, body digest, time) and save; send; record the
stock_id and save; read the stock back. A lost answer is settled with the same number and the
byte-identical body, or (favor) found through the list endpoint; never with a new number.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, Protocol

from reconciler.errors import ApiError, ReconcilerError
from reconciler.ids import body_digest
from reconciler.mapping import get_path, normalise
from reconciler.plan import Change, Operation, Plan
from reconciler.state import Kind, State, StateStore, StockState
from reconciler.wechatpay.client import CreateResult
from reconciler.wechatpay.errors import ApiResponseError, ResponseVerificationError, TransportError

ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS"})


class StockApi(Protocol):
    """What the applier needs from a merchant's client (the real one or a test fake)."""

    def favor_create(self, body: Mapping[str, Any]) -> CreateResult: ...
    def favor_detail(self, stock_id: str, stock_creator_mchid: str) -> dict[str, Any]: ...
    def favor_list(
        self,
        stock_creator_mchid: str,
        offset: int,
        limit: int,
        create_start_time: str | datetime | None = None,
        create_end_time: str | datetime | None = None,
        status: str | None = None,
    ) -> dict[str, Any]: ...
    def busifavor_create(self, body: Mapping[str, Any]) -> CreateResult: ...
    def busifavor_detail(self, stock_id: str) -> dict[str, Any]: ...
    def busifavor_modify(self, stock_id: str, body: Mapping[str, Any]) -> None: ...
    def busifavor_budget(self, stock_id: str, body: Mapping[str, Any]) -> dict[str, Any]: ...


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNRESOLVED = "unresolved"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Result:
    id: str
    merchant: str
    outcome: Outcome
    message: str
    stock_id: str | None = None
    suggestion: str = ""


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)
    interrupted: bool = False

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome is outcome)

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(
            r.outcome in (Outcome.SUCCEEDED, Outcome.SKIPPED) for r in self.results
        )


class _Unresolved(ReconcilerError):
    def __init__(self, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.suggestion = suggestion


class _Contested(Exception):
    """A found favor stock may be another id's: adopting it is not safe."""


class Applier:
    """Applies the acting changes of a plan. Merchants proceed in parallel; a failed stock does
    not stop the others; `stop` (set on Ctrl-C) lets requests in flight finish and starts no more.
    """

    def __init__(
        self,
        store: StateStore,
        state: State,
        clients: Mapping[str, StockApi],
        now: Callable[[], datetime],
        *,
        on_result: Callable[[Result], None] = lambda r: None,
        stop: threading.Event | None = None,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.state = state
        self.clients = clients
        self.now = now
        self.on_result = on_result
        self.stop = stop or threading.Event()
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self._unsaved = False

    # --- state, one writer at a time --------------------------------------------------------

    def _update(self, change: Callable[[State], State]) -> State:
        with self._lock:
            self.state = self.store.save(change(self.state))
            self._unsaved = False
            return self.state

    def _note(self, change: Callable[[State], State]) -> None:
        """A change that loses nothing if a crash drops it (observed details): kept in memory
        and written with the next save, or at the end of the run."""
        with self._lock:
            self.state = change(self.state)
            self._unsaved = True

    def _flush(self) -> None:
        with self._lock:
            if self._unsaved:
                self.state = self.store.save(self.state)
                self._unsaved = False

    # --- the run ---------------------------------------------------------------------------

    def apply(self, plan: Plan) -> Report:
        report = Report()
        acting = [c for c in plan.changes if c.operations]
        merchants = sorted({c.merchant for c in acting})
        workers = max(1, min(len(acting), self.concurrency * max(1, len(merchants))))
        with ThreadPoolExecutor(workers, thread_name_prefix="apply") as pool:
            for result in pool.map(self._run_change, acting):
                report.results.append(result)
        self._flush()
        report.interrupted = self.stop.is_set()
        return report

    def _run_change(self, change: Change) -> Result:
        if self.stop.is_set():
            result = Result(
                change.id, change.merchant, Outcome.SKIPPED, "interrupted before it started"
            )
        else:
            try:
                result = self._change(change)
            except _Unresolved as exc:
                result = Result(
                    change.id,
                    change.merchant,
                    Outcome.UNRESOLVED,
                    str(exc),
                    change.stock_id,
                    exc.suggestion,
                )
            except ReconcilerError as exc:
                result = Result(
                    change.id, change.merchant, Outcome.FAILED, str(exc), change.stock_id
                )
        self.on_result(result)
        return result

    def _change(self, change: Change) -> Result:
        api = self.clients[change.merchant]
        stock_id = change.stock_id
        done: list[str] = []
        for op in change.operations:
            if op.name.endswith("_create"):
                stock_id = self._create(api, change, op)
                done.append(f"created {stock_id}")
            else:
                self._update_op(api, change, op)
                done.append(f"{op.name.removeprefix('busifavor_')} sent ({op.request_no})")
        return Result(change.id, change.merchant, Outcome.SUCCEEDED, "; ".join(done), stock_id)

    # --- create ----------------------------------------------------------------------------

    def _create(self, api: StockApi, change: Change, op: Operation) -> str:
        sid = change.id
        entry: StockState | None = None
        if sid not in self.state.stocks:
            kind: Kind = "favor" if change.kind == "favor" else "busifavor"
            entry = StockState.new(
                sid, kind, change.merchant, _generation_of(self.state, change, op)
            )
        st = entry or self.state.stock(sid)
        if st.stock_id is not None:
            return st.stock_id
        if st.pending is None or st.sent_body is None:
            # One save holds the new entry, the exact body and the intent, before the send.
            new = entry
            self._update(
                lambda s: (s.with_stock(new) if new is not None else s).record_sent(
                    sid, op.body, self.now()
                )
            )
        body = self.state.stock(sid).sent_body or op.body  # byte-identical to what was sent before
        try:
            created = (
                api.favor_create(body) if change.kind == "favor" else api.busifavor_create(body)
            )
        except ApiResponseError as exc:
            if exc.code in ALREADY_EXISTS_CODES or _number_reused(exc):
                return self._settle_existing(api, change, exc)
            if exc.outcome_unknown or exc.retryable:
                return self._settle_unknown(api, change, exc)
            self._update(lambda s: s.forget_sent(sid))
            raise
        except (TransportError, ResponseVerificationError) as exc:
            return self._settle_unknown(api, change, exc)
        self._update(
            lambda s: s.record_created(
                sid, created.stock_id, _parse_time(created.create_time, self.now())
            )
        )
        self._read_back(api, change, created.stock_id)
        return created.stock_id

    def _read_back(self, api: StockApi, change: Change, stock_id: str) -> None:
        """Confirm the stock exists and keep its details; a failure here loses nothing."""
        try:
            detail = (
                api.favor_detail(stock_id, change.merchant)
                if change.kind == "favor"
                else api.busifavor_detail(stock_id)
            )
        except ApiError:
            return
        self._note(lambda s: s.record_observed(change.id, detail, self.now()))

    def _settle_unknown(self, api: StockApi, change: Change, exc: ApiError) -> str:
        self._update(lambda s: s.mark_outcome(change.id, "unknown"))
        if change.kind == "favor":
            found = self._find_favor(api, change)
            if found is not None:
                return found
        raise _Unresolved(
            f"the create's outcome is unknown ({exc}); the state keeps it pending and the next apply resends the identical body under the same out_request_no",
            "reconciler apply",
        )

    def _settle_existing(self, api: StockApi, change: Change, exc: ApiResponseError) -> str:
        if change.kind == "favor":
            found = self._find_favor(api, change)
            if found is not None:
                return found
        self._update(lambda s: s.mark_outcome(change.id, "already_exists"))
        raise _Unresolved(
            f"WeChat Pay says the out_request_no was already used ({exc}) and the stock it created cannot be looked up",
            f"find the stock_id in 商户平台, then: reconciler state import {change.id} <stock_id>",
        )

    def _find_favor(self, api: StockApi, change: Change) -> str | None:
        """Look the stock up by creation window, creator and exact fields (favor only)."""
        st = self.state.stock(change.id)
        assert st.pending is not None and st.sent_body is not None
        start = st.pending.started_at - timedelta(minutes=5)
        end = self.now() + timedelta(minutes=5)
        known = {s.stock_id for s in self.state.stocks.values() if s.stock_id}
        matches: dict[str, dict[str, Any]] = {}
        try:
            offset, seen = 0, 0
            while True:
                page = api.favor_list(change.merchant, offset, 10, _rfc3339(start), _rfc3339(end))
                data = page.get("data") or []
                for item in data:
                    if item.get("stock_id") not in known and _favor_matches(st.sent_body, item):
                        matches[str(item["stock_id"])] = item
                seen += len(data)
                offset += 1
                if not data or offset > int(page.get("total_count", 0)):
                    break
        except ApiError:
            return None
        if len(matches) != 1:
            if len(matches) > 1:
                raise _Unresolved(
                    f"{len(matches)} favor stocks match the create of {change.id!r}: {', '.join(sorted(matches))}",
                    f"reconciler state import {change.id} <stock_id>",
                )
            return None
        stock_id, item = next(iter(matches.items()))
        created = _parse_time(str(item.get("create_time", "")), self.now())

        def adopt(state: State) -> State:
            # Decided under the state lock, so two look-ups never take the same stock.
            if _claimed(state, change, stock_id, item):
                raise _Contested
            return state.record_created(change.id, stock_id, created)

        try:
            self._update(adopt)
        except _Contested:
            return None
        self._update(lambda s: s.record_observed(change.id, item, self.now()))
        return stock_id

    # --- updates ---------------------------------------------------------------------------

    def _update_op(self, api: StockApi, change: Change, op: Operation) -> None:
        sid = change.id
        assert op.stock_id is not None
        action: Literal["modify", "budget"] = (
            "modify" if op.name == "busifavor_modify" else "budget"
        )
        digest = body_digest(op.body)
        earlier = self.state.stock(sid).pending
        if (
            earlier is not None
            and earlier.action != "create"
            and earlier.request_no != op.request_no
        ):
            # An update whose outcome is unknown, planned from older files. This plan was made
            # after it and sends what still differs (budget: from the current value), so it
            # replaces that intent; refusing would fail every apply until the file is reverted.
            self._update(lambda s: s.clear_pending(sid))
        self._update(lambda s: s.set_pending(sid, action, op.request_no, digest, self.now()))
        try:
            if action == "modify":
                api.busifavor_modify(op.stock_id, op.body)
            else:
                api.busifavor_budget(op.stock_id, op.body)
        except ApiResponseError as exc:
            # The number is derived from this very change, so "already used" means an earlier
            # send of it (whose answer was lost) was applied: settle it as done.
            if exc.code not in ALREADY_EXISTS_CODES:
                if exc.outcome_unknown or exc.retryable:
                    self._update(lambda s: s.mark_outcome(sid, "unknown"))
                    raise _Unresolved(
                        f"the {action}'s outcome is unknown ({exc}); the next apply resends it with the same request number",
                        "reconciler apply",
                    ) from None
                self._update(lambda s: s.clear_pending(sid))
                raise
        except (TransportError, ResponseVerificationError) as exc:
            self._update(lambda s: s.mark_outcome(sid, "unknown"))
            raise _Unresolved(
                f"the {action}'s outcome is unknown ({exc}); the next apply resends it with the same request number",
                "reconciler apply",
            ) from None
        st = self.state.stock(sid)
        # A deep copy: _set_path writes into nested objects, which belong to the state.
        applied = copy.deepcopy(dict(st.applied_body or st.sent_body or {}))
        for f in change.fields:
            path = f.path.removeprefix("spec.")
            if (action == "modify" and path.split(".")[0] in op.body) or (
                action == "budget" and f"target_{path.rsplit('.', 1)[-1]}" in op.body
            ):
                _set_path(applied, path, f.after)
        self._update(lambda s: s.record_applied(sid, applied))
        self._read_back(api, change, op.stock_id)


def _generation_of(state: State, change: Change, op: Operation) -> int:
    from reconciler.ids import out_request_no

    for generation in range(0, 1000):
        if out_request_no(change.merchant, change.kind, change.id, generation) == op.request_no:
            return generation
    raise ReconcilerError(
        f"the plan's out_request_no for {change.id!r} is not one reconciler derives; make a new plan"
    )


def _number_reused(exc: ApiResponseError) -> bool:
    return (
        exc.status == 400 and exc.code == "INVALID_REQUEST" and "单号已存在" in (exc.message or "")
    )


def _claimed(state: State, change: Change, stock_id: str, item: Mapping[str, Any]) -> bool:
    """Whether a favor stock found for `change` is, or may be, another id's: recorded for one,
    or matching another create still in doubt (the list shows no out_request_no, so two
    creates that differ only in fields the list does not show cannot be told apart)."""
    for other in state.stocks.values():
        if other.id == change.id:
            continue
        if other.stock_id == stock_id:
            return True
        if (
            other.stock_id is None
            and other.kind == "favor"
            and other.merchant == change.merchant
            and other.pending is not None
            and other.sent_body is not None
            and _favor_matches(other.sent_body, item)
        ):
            return True
    return False


def _favor_matches(sent: Mapping[str, Any], item: Mapping[str, Any]) -> bool:
    from reconciler.mapping import FAVOR_OBSERVABLE

    for create_path, detail_path in FAVOR_OBSERVABLE.items():
        has_sent, a = get_path(sent, create_path)
        has_seen, b = get_path(item, detail_path)
        if has_sent and has_seen and normalise(create_path, a) != normalise(create_path, b):
            return False
    return True


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    if value is None:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


def _rfc3339(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _parse_time(value: str, fallback: datetime) -> datetime:
    from reconciler.spec.common import parse_rfc3339

    try:
        return parse_rfc3339(value)
    except ValueError:
        return fallback
