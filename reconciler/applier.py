"""Executes a Plan against WeChat Pay, persisting the state after every step.

For each create: record the intent (number, body digest, time) and save; send; record the
stock_id and save; read the stock back. A lost answer is settled with the same number and the
byte-identical body, or (favor) found through the list endpoint; never with a new number.

Lifecycle calls (activate, pause, restart, stop) go the same way: intent saved, sent, result
recorded with the status read back. An activation that WeChat Pay is not ready for yet (the
stock is still being registered, about a minute after its create) is handed back to the run
loop with the time to try again, so its worker moves on to other stocks meanwhile; it is
retried until `Activation.max_attempts`.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, cast

from reconciler import callbacks_apply, codes_apply
from reconciler.callbacks_apply import CallbackApi
from reconciler.codes_apply import DEFAULT_DELAYS, CodeApi, InDoubt, NotSent, Recorder
from reconciler.errors import ApiError, ReconcilerError
from reconciler.ids import body_digest
from reconciler.kinds import StockApi, StockKind, kind_of
from reconciler.media import ImageFileError, read_upload
from reconciler.operation import TRANSITIONS, Operation, OpType
from reconciler.plan import Change, Plan
from reconciler.spec.common import parse_rfc3339
from reconciler.spec.images import substitute, tokens_in
from reconciler.state.backend import StateBackend
from reconciler.state.model import State, StockState
from reconciler.wechatpay.errors import (
    ApiResponseError,
    RequestCancelled,
    ResponseVerificationError,
    TransportError,
)

ALREADY_EXISTS_CODES = frozenset({"RESOURCE_ALREADY_EXISTS"})


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


@dataclass(frozen=True)
class Activation:
    """How apply waits for WeChat Pay to finish registering a new favor stock before it can be
    activated (reconciler.yaml `activation:`)."""

    delay_seconds: float = 60.0
    """After a not-ready answer, the first retry waits until the create time plus this."""
    retry_seconds: float = 15.0
    """Later retries wait this long."""
    max_attempts: int = 6
    """Starts sent per apply before the stock is reported as created but not activated."""


@dataclass
class _Deferred:
    """An activation to try again at `due` (time.monotonic()), with the rest of its change."""

    change: Change
    index: int
    stock_id: str
    done: list[str]
    attempts: int
    due: float
    why: str


class _Unresolved(ReconcilerError):
    def __init__(self, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.suggestion = suggestion


class _Skipped(ReconcilerError):
    """Stopped (Ctrl-C, SIGTERM) before this request reached WeChat Pay: nothing happened."""


class _Contested(Exception):
    """A found favor stock may be another id's: adopting it is not safe."""


class Applier:
    """Applies the acting changes of a plan. Merchants proceed in parallel, each in lanes of
    its own (see `apply`); a failed stock does not stop the others; `stop` (set on Ctrl-C) lets
    requests in flight finish and starts no more.
    """

    def __init__(
        self,
        store: StateBackend,
        state: State,
        clients: Mapping[str, StockApi],
        now: Callable[[], datetime],
        *,
        on_result: Callable[[Result], None] = lambda r: None,
        stop: threading.Event | None = None,
        concurrency: int = 8,
        activation: Activation | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        root: Path | None = None,
        code_retry_delays: Sequence[float] = DEFAULT_DELAYS,
    ) -> None:
        self.root = root
        """Where the image files of upload operations are (the repository root)."""
        self._uploading: dict[tuple[str, str], threading.Lock] = {}
        self.code_retry_delays = code_retry_delays
        self.activation = activation or Activation()
        self._monotonic = monotonic
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
        deferred = getattr(self.store, "save_deferred", None)
        if deferred is None:
            with self._lock:
                self.state = self.store.save(change(self.state))
                self._unsaved = False
                return self.state
        # Group commit: the save is written under the lock, its durability awaited outside
        # it, so saves of other workers share one fsync. Nothing is sent before it returns.
        state: State
        durable: Callable[[], None]
        with self._lock:
            state, durable = deferred(change(self.state))
            self.state = state
            self._unsaved = False
        durable()
        return state

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
        """Every acting change, in lanes: one worker group per merchant and kind of first call
        (a merchant's favor creates, its busifavor creates, its updates...), each of at most
        `concurrency` workers. A lane waiting for its rate limit holds only its own workers, so
        no merchant's work (nor another call of the same merchant) waits behind it."""
        report = Report()
        acting = [c for c in plan.changes if c.operations]
        results: dict[str, Result] = {}
        waiting: list[tuple[float, int, _Deferred]] = []
        order = itertools.count()
        lanes: dict[tuple[str, str, str], ThreadPoolExecutor] = {}

        def submit(
            change: Change, index: int, run: Callable[[], Result | _Deferred]
        ) -> Future[Result | _Deferred]:
            key = lane_of(change, index)
            pool = lanes.get(key)
            if pool is None:
                # Threads start on demand, up to `concurrency` per lane.
                pool = lanes[key] = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix=f"apply-{key[0]}"
                )
            return pool.submit(run)

        try:
            running: set[Future[Result | _Deferred]] = {
                submit(c, 0, functools.partial(self._run_change, c)) for c in acting
            }
            while running or waiting:
                timeout = None
                if waiting:
                    # Polled, so that Ctrl-C is seen while only activations are waiting.
                    timeout = min(0.2, max(0.0, waiting[0][0] - self._monotonic()))
                if running:
                    finished, running = wait(running, timeout, FIRST_COMPLETED)
                else:
                    finished = set()
                    self.stop.wait(timeout)
                for future in finished:
                    out = future.result()
                    if isinstance(out, _Deferred):
                        heapq.heappush(waiting, (out.due, next(order), out))
                    else:
                        results[out.id] = out
                while waiting and (waiting[0][0] <= self._monotonic() or self.stop.is_set()):
                    deferred = heapq.heappop(waiting)[2]
                    running.add(
                        submit(
                            deferred.change,
                            deferred.index,
                            functools.partial(self._resume, deferred),
                        )
                    )
        finally:
            for pool in lanes.values():
                pool.shutdown(wait=True)
        report.results = [results[c.id] for c in acting]
        self._flush()
        report.interrupted = self.stop.is_set()
        return report

    def _run_change(self, change: Change) -> Result | _Deferred:
        if self.stop.is_set():
            return self._finish(
                Result(change.id, change.merchant, Outcome.SKIPPED, "interrupted before it started")
            )
        return self._run_from(change, 0, change.stock_id, [], 0)

    def _resume(self, deferred: _Deferred) -> Result | _Deferred:
        change = deferred.change
        if self.stop.is_set():
            done = "; ".join(deferred.done)
            return self._finish(
                Result(
                    change.id,
                    change.merchant,
                    Outcome.SKIPPED,
                    f"{done}; interrupted while waiting to activate ({deferred.why}); the next apply activates it",
                    deferred.stock_id,
                )
            )
        return self._run_from(
            change, deferred.index, deferred.stock_id, deferred.done, deferred.attempts
        )

    def _finish(self, result: Result) -> Result:
        self.on_result(result)
        return result

    def _run_from(
        self, change: Change, index: int, stock_id: str | None, done: list[str], attempts: int
    ) -> Result | _Deferred:
        def said(exc: Exception) -> str:
            return "; ".join([*done, str(exc)])

        try:
            out = self._change(change, index, stock_id, done, attempts)
        except _Skipped as exc:
            result = Result(change.id, change.merchant, Outcome.SKIPPED, said(exc), stock_id)
        except _Unresolved as exc:
            result = Result(
                change.id, change.merchant, Outcome.UNRESOLVED, said(exc), stock_id, exc.suggestion
            )
        except ReconcilerError as exc:
            result = Result(change.id, change.merchant, Outcome.FAILED, said(exc), stock_id)
        else:
            if isinstance(out, _Deferred):
                return out
            result = out
        if result.stock_id is None and change.id in self.state.stocks:
            result = replace(result, stock_id=self.state.stock(change.id).stock_id)
        return self._finish(result)

    def _change(
        self, change: Change, index: int, stock_id: str | None, done: list[str], attempts: int
    ) -> Result | _Deferred:
        api = self.clients[change.merchant]
        kind = kind_of(change.kind)
        detail: Mapping[str, Any] | None = None
        if index == 0 and stock_id is not None and change.operations[0].type is not OpType.CREATE:
            detail = self._check_identity(api, kind, change, stock_id)
        for i in range(index, len(change.operations)):
            op = change.operations[i]
            if self.stop.is_set():
                raise _Skipped(f"interrupted before {op.type.value}")
            if op.type is OpType.UPLOAD_IMAGE:
                done.append(self._upload(api, change, op))
                continue
            op = self._with_urls(change.merchant, op)
            if op.type is OpType.CREATE:
                stock_id = self._create(api, kind, change, op)
                done.append(f"created stock_id {stock_id} (批次号)")
                continue
            if op.type is OpType.CALLBACK:  # a merchant's setting: no stock
                done.append(self._setting_or_codes(api, kind, change, op, i))
                continue
            assert stock_id is not None
            op = replace(op, stock_id=stock_id)
            if op.type is OpType.UPLOAD_CODES:
                done.append(self._setting_or_codes(api, kind, change, op, i))
                detail = None
                continue
            if op.type in TRANSITIONS:
                wait_for = self._transition(api, kind, change, op, detail, attempts)
                if wait_for is not None:
                    return _Deferred(
                        change, i, stock_id, done, attempts + 1, wait_for[0], wait_for[1]
                    )
                attempts = 0
                done.append(_DONE.get(op.type, op.type.value))
            else:
                self._update_op(api, kind, change, op)
                done.append(f"{op.type.value} sent ({op.request_no})")
            detail = None
        return Result(change.id, change.merchant, Outcome.SUCCEEDED, "; ".join(done), stock_id)

    def _setting_or_codes(
        self, api: StockApi, kind: StockKind, change: Change, op: Operation, index: int
    ) -> str:
        """A code batch (reconciler.codes_apply) or a callback (reconciler.callbacks_apply);
        after a change's last batch, the pool's count is checked against the state."""
        rec = Recorder(
            lambda: self.state, self._update, self.now, self.stop.wait, self.code_retry_delays
        )
        try:
            if op.type is OpType.CALLBACK:
                return callbacks_apply.send(rec, cast(CallbackApi, api), change, op)
            said = codes_apply.upload(rec, cast(CodeApi, api), change, op)
            if all(o.type is not OpType.UPLOAD_CODES for o in change.operations[index + 1 :]):
                assert op.stock_id is not None
                seen = self._read(api, kind, change, op.stock_id)
                if seen is not None:
                    self._note(lambda s: s.record_observed(change.id, seen, self.now()))
                    count = codes_apply.count_check(seen, rec, change)
                    said += f"; {count}" if count else ""
            return said
        except InDoubt as exc:
            raise _Unresolved(str(exc), "reconciler apply") from None
        except NotSent as exc:
            raise _Skipped(str(exc)) from None

    def _check_identity(
        self, api: StockApi, kind: StockKind, change: Change, stock_id: str
    ) -> Mapping[str, Any] | None:
        """Before anything is sent to an existing stock: the stock WeChat Pay shows under the
        recorded stock_id must be the one recorded (a wrong stock_id must never change
        someone else's stock). Returns the detail read."""
        st = self.state.stock(change.id)
        applied = st.applied_body or st.sent_body
        if applied is None:
            return None
        try:
            detail = kind.detail(api, stock_id, change.merchant)
        except RequestCancelled:
            raise _Skipped("interrupted before it started") from None
        except ApiError as exc:
            raise ReconcilerError(
                f"could not read stock {stock_id} back to check it is the one recorded, so nothing was sent to it ({exc})"
            ) from None
        foreign = kind.identity_mismatch(change.merchant, applied, detail)
        if foreign:
            raise ReconcilerError(
                f"stock {stock_id} at WeChat Pay is not the one recorded for {change.id!r} ({', '.join(d.path for d in foreign)} differ); nothing was sent to it"
            )
        return detail

    # --- images ----------------------------------------------------------------------------

    def _upload(self, api: StockApi, change: Change, op: Operation) -> str:
        """Upload one image content for the merchant, once: other stocks of this run wait for
        it and reuse its URL, later runs find it in the state. The intent is saved first; an
        upload whose answer was lost is simply done again (a second URL for the same content
        is harmless, and only the recorded one is ever used)."""
        merchant, sha = change.merchant, op.request_no
        with self._lock:
            gate = self._uploading.setdefault((merchant, sha), threading.Lock())
        with gate:
            if sha in self.state.media_urls(merchant):
                return f"{op.body['filename']} already uploaded"
            if self.root is None:
                raise ReconcilerError("no repository root to read the image files from")
            try:
                content = read_upload(self.root, str(op.body["file"]), sha)
            except ImageFileError as exc:
                raise ReconcilerError(str(exc)) from None
            filename = str(op.body["filename"])
            self._update(lambda s: s.record_upload_intent(merchant, sha, filename, self.now()))
            try:
                url = api.media_upload(filename, content)
            except RequestCancelled:
                raise _Skipped(f"interrupted while uploading {filename}") from None
            self._update(lambda s: s.record_media_url(merchant, sha, url, self.now()))
            return f"uploaded {filename}"

    def _with_urls(self, merchant: str, op: Operation) -> Operation:
        """`op` with each image token replaced by the recorded media URL of its content."""
        if not tokens_in(op.body) and not tokens_in(op.after):
            return op
        urls = self.state.media_urls(merchant)
        try:
            return replace(op, body=substitute(op.body, urls), after=substitute(op.after, urls))
        except KeyError as exc:
            raise ReconcilerError(
                f"the image with sha256 {exc.args[0]} was not uploaded, so nothing that uses it was sent; run apply again"
            ) from None

    # --- create ----------------------------------------------------------------------------

    def _create(self, api: StockApi, kind: StockKind, change: Change, op: Operation) -> str:
        sid = change.id
        entry: StockState | None = None
        if sid not in self.state.stocks:
            entry = StockState.new(sid, kind.name, change.merchant, op.generation)  # type: ignore[arg-type]
            if entry.out_request_no != op.request_no:
                raise ReconcilerError(
                    f"the plan's out_request_no for {sid!r} is not the one reconciler derives for generation {op.generation}; make a new plan"
                )
        st = entry or self.state.stock(sid)
        if st.stock_id is not None:
            return st.stock_id
        fresh = st.pending is None
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
            created = kind.create(api, body)
        except RequestCancelled as exc:
            if not exc.sent and fresh:
                # Nothing reached WeChat Pay in this run, and nothing before it: forget the
                # intent, so the next plan is a plain create again.
                self._update(lambda s: s.forget_sent(sid))
                raise _Skipped("interrupted before the create was sent") from None
            self._update(lambda s: s.mark_outcome(sid, "unknown"))
            raise _Unresolved(
                f"interrupted while the create's outcome is unknown ({exc}); the next apply resends the identical body under the same out_request_no",
                "reconciler apply",
            ) from None
        except ApiResponseError as exc:
            if exc.code in ALREADY_EXISTS_CODES or _number_reused(exc):
                return self._settle_existing(api, kind, change, exc)
            if exc.outcome_unknown or exc.retryable:
                return self._settle_unknown(api, kind, change, exc)
            self._update(lambda s: s.forget_sent(sid))
            raise
        except TransportError as exc:
            if not exc.outcome_unknown and fresh:
                # Never reached WeChat Pay (the connection was refused), in this run or
                # before it: nothing was created, so the intent goes and the error is plain.
                self._update(lambda s: s.forget_sent(sid))
                raise
            return self._settle_unknown(api, kind, change, exc)
        except ResponseVerificationError as exc:
            return self._settle_unknown(api, kind, change, exc)
        self._update(
            lambda s: s.record_created(
                sid, created.stock_id, _parse_time(created.create_time, self.now())
            )
        )
        self._read_back(api, kind, change, created.stock_id)
        return created.stock_id

    def _read_back(self, api: StockApi, kind: StockKind, change: Change, stock_id: str) -> None:
        """Confirm the stock exists and keep its details; a failure here loses nothing."""
        try:
            detail = kind.detail(api, stock_id, change.merchant)
        except ApiError:
            return
        self._note(lambda s: s.record_observed(change.id, detail, self.now()))

    def _settle_unknown(self, api: StockApi, kind: StockKind, change: Change, exc: ApiError) -> str:
        self._update(lambda s: s.mark_outcome(change.id, "unknown"))
        if kind.can_look_up:
            found = self._find_created(api, kind, change)
            if found is not None:
                return found
        raise _Unresolved(
            f"the create's outcome is unknown ({exc}); the state keeps it pending and the next apply resends the identical body under the same out_request_no",
            "reconciler apply",
        )

    def _settle_existing(
        self, api: StockApi, kind: StockKind, change: Change, exc: ApiResponseError
    ) -> str:
        if kind.can_look_up:
            found = self._find_created(api, kind, change)
            if found is not None:
                return found
        self._update(lambda s: s.mark_outcome(change.id, "already_exists"))
        raise _Unresolved(
            f"WeChat Pay says the out_request_no was already used ({exc}) and the stock it created cannot be looked up",
            f"find the stock_id in 商户平台, then: reconciler state import {change.id} <stock_id>",
        )

    def _find_created(self, api: StockApi, kind: StockKind, change: Change) -> str | None:
        """Look the stock up by creation window, creator and exact fields."""
        st = self.state.stock(change.id)
        assert st.pending is not None and st.sent_body is not None
        start = st.pending.started_at - timedelta(minutes=5)
        end = self.now() + timedelta(minutes=5)
        known = {s.stock_id for s in self.state.stocks.values() if s.stock_id}
        try:
            found = kind.created_candidates(api, change.merchant, st.sent_body, start, end)
        except ApiError:
            return None
        matches = {k: v for k, v in (found or {}).items() if k not in known}
        if len(matches) != 1:
            if len(matches) > 1:
                raise _Unresolved(
                    f"{len(matches)} {kind.name} stocks match the create of {change.id!r}: {', '.join(sorted(matches))}",
                    f"reconciler state import {change.id} <stock_id>",
                )
            return None
        stock_id, item = next(iter(matches.items()))
        created = _parse_time(str(item.get("create_time", "")), self.now())

        def adopt(state: State) -> State:
            # Decided under the state lock, so two look-ups never take the same stock.
            if _claimed(state, kind, change, stock_id, item):
                raise _Contested
            return state.record_created(change.id, stock_id, created)

        try:
            self._update(adopt)
        except _Contested:
            return None
        self._update(lambda s: s.record_observed(change.id, item, self.now()))
        return stock_id

    # --- lifecycle -------------------------------------------------------------------------

    def _transition(
        self,
        api: StockApi,
        kind: StockKind,
        change: Change,
        op: Operation,
        detail: Mapping[str, Any] | None,
        attempts: int,
    ) -> tuple[float, str] | None:
        """Send one lifecycle call, crash-safe: intent saved, sent, status read back and
        recorded. Returns (when, why) to try an activation again later, None when done."""
        sid = change.id
        assert op.stock_id is not None
        target = kind.status_after(op.type)
        if detail is not None and target is not None and kind.status_of(detail) == target:
            # Done already (an earlier send whose answer was lost): settle without sending.
            self._settle_transition(api, kind, change, op.stock_id, target, detail)
            return None
        earlier = self.state.stock(sid).pending
        if earlier is not None and earlier.request_no != op.request_no:
            self._update(lambda s: s.clear_pending(sid))
        fresh = self.state.stock(sid).pending is None
        digest = body_digest(op.body)
        self._update(lambda s: s.set_pending(sid, op.type, op.request_no, digest, self.now()))
        try:
            kind.send_update(api, op)
        except RequestCancelled as exc:
            if not exc.sent and fresh:
                self._update(lambda s: s.clear_pending(sid))
                raise _Skipped(f"interrupted before the {op.type.value} was sent") from None
            self._update(lambda s: s.mark_outcome(sid, "unknown"))
            raise _Unresolved(
                f"interrupted while the {op.type.value}'s outcome is unknown ({exc}); the next apply reads the stock back and settles it",
                "reconciler apply",
            ) from None
        except (ApiResponseError, TransportError, ResponseVerificationError) as exc:
            refused = isinstance(exc, ApiResponseError) and not (
                exc.outcome_unknown or exc.retryable
            )
            if op.type is OpType.START and (kind.not_ready(exc) or not refused):
                if attempts + 1 >= self.activation.max_attempts:
                    self._last_start_failed(api, kind, change, op, exc, attempts)
                    return None
                # Re-entrant (幂等重入): a start in doubt, or not accepted yet, is resent.
                return self._retry_activation(change, op, exc, attempts)
            if not refused:
                self._update(lambda s: s.mark_outcome(sid, "unknown"))
                raise _Unresolved(
                    f"the {op.type.value}'s outcome is unknown ({exc}); the next apply reads the stock back and settles it",
                    "reconciler apply",
                ) from None
            # Refused: perhaps because an earlier send (answer lost) already did it.
            seen = self._read(api, kind, change, op.stock_id)
            if seen is not None and target is not None and kind.status_of(seen) == target:
                self._settle_transition(api, kind, change, op.stock_id, target, seen)
                return None
            self._update(lambda s: s.clear_pending(sid))
            if op.type is OpType.START:
                raise ReconcilerError(
                    f"not activated: {exc}; the stock stays created (unactivated) and the next apply activates it"
                ) from None
            raise ReconcilerError(f"{op.type.value} refused: {exc}") from None
        self._settle_transition(api, kind, change, op.stock_id, target, None)
        return None

    def _last_start_failed(
        self,
        api: StockApi,
        kind: StockKind,
        change: Change,
        op: Operation,
        exc: Exception,
        attempts: int,
    ) -> None:
        """The last start allowed failed too. An earlier one may have landed with its answer
        lost (then WeChat Pay went away), so the stock is read back: running is settled as
        activated; unreadable keeps the intent in doubt for the next apply to read back."""
        sid = change.id
        assert op.stock_id is not None
        target = kind.status_after(op.type)
        seen = self._read(api, kind, change, op.stock_id)
        if seen is not None and kind.status_of(seen) == target:
            self._settle_transition(api, kind, change, op.stock_id, target, seen)
            return
        if seen is None:
            self._update(lambda s: s.mark_outcome(sid, "unknown"))
            raise _Unresolved(
                f"not activated after {attempts + 1} start(s) ({exc}), and the stock could not be read back to see whether one of them activated it; the state keeps the start pending and the next apply reads the stock back and settles it",
                "reconciler apply",
            )
        self._update(lambda s: s.clear_pending(sid))
        raise ReconcilerError(
            f"not activated after {attempts + 1} start(s) ({exc}); the stock stays created (unactivated) and the next apply activates it"
        )

    def _retry_activation(
        self, change: Change, op: Operation, exc: Exception, attempts: int
    ) -> tuple[float, str]:
        sid = change.id
        st = self.state.stock(sid)
        wait_seconds = self.activation.retry_seconds
        if attempts == 0 and st.created_at is not None:
            # create_time has whole seconds: the create may be up to one second later.
            ready = st.created_at + timedelta(seconds=self.activation.delay_seconds + 1)
            wait_seconds = max(wait_seconds, (ready - self.now()).total_seconds())
        return self._monotonic() + max(0.0, wait_seconds), str(exc)

    def _read(
        self, api: StockApi, kind: StockKind, change: Change, stock_id: str
    ) -> Mapping[str, Any] | None:
        try:
            return kind.detail(api, stock_id, change.merchant)
        except ApiError:
            return None

    def _settle_transition(
        self,
        api: StockApi,
        kind: StockKind,
        change: Change,
        stock_id: str,
        target: str | None,
        detail: Mapping[str, Any] | None,
    ) -> None:
        """The call took effect: clear the intent and record the status, read back (or, when
        the read fails, the status the call leaves), in one save."""
        sid = change.id
        seen = detail if detail is not None else self._read(api, kind, change, stock_id)
        if seen is None:
            seen = {**(self.state.stock(sid).observed or {}), "status": target}
        recorded = dict(seen)
        # One save: a crash cannot leave the state showing the status before the call.
        self._update(lambda s: s.clear_pending(sid).record_observed(sid, recorded, self.now()))
        with self._lock:
            # Saved once more at the end, so that the backup holds no settled intent either.
            self._unsaved = True

    # --- updates ---------------------------------------------------------------------------

    def _update_op(self, api: StockApi, kind: StockKind, change: Change, op: Operation) -> None:
        sid = change.id
        assert op.stock_id is not None
        digest = body_digest(op.body)
        earlier = self.state.stock(sid).pending
        if (
            earlier is not None
            and earlier.action is not OpType.CREATE
            and earlier.request_no != op.request_no
        ):
            # An update whose outcome is unknown, planned from older files. This plan was made
            # after it and sends what still differs (budget: from the current value), so it
            # replaces that intent; refusing would fail every apply until the file is reverted.
            self._update(lambda s: s.clear_pending(sid))
        fresh = self.state.stock(sid).pending is None
        self._update(lambda s: s.set_pending(sid, op.type, op.request_no, digest, self.now()))
        unknown = f"the {op.type.value}'s outcome is unknown ({{}}); the next apply resends it with the same request number"
        try:
            kind.send_update(api, op)
        except RequestCancelled as exc:
            if not exc.sent and fresh:
                self._update(lambda s: s.clear_pending(sid))
                raise _Skipped(f"interrupted before the {op.type.value} was sent") from None
            self._update(lambda s: s.mark_outcome(sid, "unknown"))
            raise _Unresolved(unknown.format(exc), "reconciler apply") from None
        except ApiResponseError as exc:
            # The number is derived from this very change, so "already used" means an earlier
            # send of it (whose answer was lost) was applied: settle it as done.
            if exc.code not in ALREADY_EXISTS_CODES:
                if exc.outcome_unknown or exc.retryable:
                    self._update(lambda s: s.mark_outcome(sid, "unknown"))
                    raise _Unresolved(unknown.format(exc), "reconciler apply") from None
                # A call without a number (modify-goods-id) refused on a resend: if what it
                # asked for is what WeChat Pay lists, an earlier send landed.
                if self._checked(api, kind, change, op) != "":
                    self._update(lambda s: s.clear_pending(sid))
                    raise
        except (TransportError, ResponseVerificationError) as exc:
            if not exc.outcome_unknown and fresh:
                self._update(lambda s: s.clear_pending(sid))  # never reached WeChat Pay
                raise
            self._update(lambda s: s.mark_outcome(sid, "unknown"))
            raise _Unresolved(unknown.format(exc), "reconciler apply") from None
        else:
            differs = self._checked(api, kind, change, op)
            if differs:
                self._update(lambda s: s.clear_pending(sid))
                raise ReconcilerError(
                    f"{op.type.value} was accepted, but reading it back: {differs}; nothing is recorded as applied"
                )
        self._update(lambda s: s.record_applied(sid, op.after))
        self._read_back(api, kind, change, op.stock_id)

    def _checked(self, api: StockApi, kind: StockKind, change: Change, op: Operation) -> str | None:
        """What the kind's own read-back of `op` finds different ("" none; None: no read)."""
        try:
            return kind.check_update(api, op, change.merchant)
        except ApiError as exc:
            return f"could not read it back ({exc})"


_DONE = {
    OpType.START: "activated (start)",
    OpType.PAUSE: "paused",
    OpType.RESTART: "restarted",
    OpType.STOP: "stopped (irreversible)",
}


def lane_of(change: Change, index: int) -> tuple[str, str, str]:
    """The lane of a change about to run its operation `index`: its merchant, its kind and
    that operation's type (which decides the rate limit it waits for first)."""
    return (change.merchant, change.kind, change.operations[index].type.value)


def _number_reused(exc: ApiResponseError) -> bool:
    return (
        exc.status == 400 and exc.code == "INVALID_REQUEST" and "单号已存在" in (exc.message or "")
    )


def _claimed(
    state: State, kind: StockKind, change: Change, stock_id: str, item: Mapping[str, Any]
) -> bool:
    """Whether a stock found for `change` is, or may be, another id's: recorded for one, or
    matching another create of the same kind and merchant still in doubt (the list shows no
    out_request_no, so two creates that differ only in fields it does not show cannot be told
    apart)."""
    for other in state.stocks.values():
        if other.id == change.id:
            continue
        if other.stock_id == stock_id:
            return True
        if (
            other.stock_id is None
            and other.kind == kind.name
            and other.merchant == change.merchant
            and other.pending is not None
            and other.sent_body is not None
            and kind.matches(other.sent_body, item)
        ):
            return True
    return False


def _parse_time(value: str, fallback: datetime) -> datetime:
    try:
        return parse_rfc3339(value)
    except ValueError:
        return fallback
