"""The apply use case: lock, freshness, confirmation, the applier, and interruption.

The command supplies what only it can: whether to go ahead (`confirm`), and where progress
goes (`on_plan`, `on_waiting`, `on_result`). Ctrl-C and SIGTERM set `stop`: no new request
starts, the requests on the wire finish and are recorded, and the state is saved.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from reconciler.applier import Activation, Applier, Report, Result
from reconciler.engine.planning import check_fresh, load_plan_file, plan
from reconciler.engine.preflight import preflight
from reconciler.engine.scope import (
    Scope,
    lock_merchants,
    scoped_desired,
    scoped_state,
    state_digest,
)
from reconciler.engine.workspace import Workspace, clients_for, desired_digest
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.limits import Limit
from reconciler.plan import Plan
from reconciler.state.lock import LockInfo
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.ratelimit import RateLimiter


class PlanHasErrors(ReconcilerError):
    """The plan holds ✗ errors; apply refuses all of it."""

    def __init__(self) -> None:
        super().__init__(
            "the plan has errors (marked ✗ above or in the plan); fix them, then plan again"
        )


class NotConfirmed(ReconcilerError):
    """The person at the terminal said no."""

    def __init__(self) -> None:
        super().__init__("nothing applied")


@dataclass
class Stop:
    """Set by Ctrl-C or SIGTERM: no new request starts. `signal` says which arrived first."""

    event: threading.Event = field(default_factory=threading.Event)
    signal: int | None = None

    def set(self, signum: int) -> None:
        if self.signal is None:
            self.signal = signum
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()


@contextlib.contextmanager
def stop_on_signals(stop: Stop, on_first: Callable[[], None]) -> Iterator[Stop]:
    """SIGINT and SIGTERM set `stop` (and call `on_first` once); a second SIGINT aborts at
    once. Outside the main thread (tests) nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        first = not stop.is_set()
        stop.set(signum)
        if first:
            on_first()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@dataclass(frozen=True)
class Waiting:
    """Calls of one merchant waiting for one rate limit right now."""

    merchant: str
    call: str
    count: int
    limit: Limit

    @property
    def limit_text(self) -> str:
        per = self.limit.per_seconds
        unit = "min" if per == 60 else "s" if per == 1 else f"{per:g} s"
        return f"{self.limit.count}/{unit}"


def waiting_calls(clients: Mapping[str, WeChatPayClient]) -> list[Waiting]:
    """What every client is waiting for, merchant by merchant (limiters may be shared)."""
    seen: dict[int, RateLimiter] = {id(c.rate_limiter): c.rate_limiter for c in clients.values()}
    out = []
    for limiter in seen.values():
        for (mchid, call), count in sorted(limiter.waiting().items()):
            out.append(Waiting(mchid, call, count, limiter.limit_for(call, mchid)))
    return out


@dataclass(frozen=True)
class Applied:
    """What an apply did: the plan it followed and, when it sent anything, the report."""

    plan: Plan
    report: Report | None
    from_file: bool
    throttled: Mapping[tuple[str, str], int] = field(default_factory=dict)
    """429 answers (too many requests) WeChat Pay gave during the run, by (merchant, call);
    each was retried after a back-off."""


def apply(
    ws: Workspace,
    *,
    plan_file: Path | None = None,
    refresh_mode: str = "changing",
    confirm: Callable[[Plan], bool] = lambda p: True,
    lock_wait: float = 0.0,
    on_waiting: Callable[[LockInfo], None] = lambda info: None,
    on_plan: Callable[[Plan], None] = lambda p: None,
    on_result: Callable[[Result, int], None] = lambda r, total: None,
    on_start: Callable[[int, Callable[[], list[Waiting]]], None] = lambda total, waiting: None,
    stop: Stop | None = None,
    scope: Scope | None = None,
) -> Applied:
    """Apply a saved plan (refused unless it is still fresh) or a new one (shown through
    `on_plan`, then `confirm`ed), under the state lock. A scoped run (`scope`, or a saved
    scoped plan) holds only its merchants' locks, so runs on other merchants go on at once."""
    stop = stop or Stop()
    preflight(ws)  # every merchant's credentials, every problem at once, before the lock
    saved = load_plan_file(plan_file) if plan_file is not None else None
    if saved is not None and scope is not None:
        raise ConfigError(
            "a saved plan is applied as it was made: give --merchant and stock paths to `reconciler plan`, not to `apply PLAN`"
        )
    locked: list[str] | None = None
    if saved is not None and saved.scope is not None:
        scope = Scope.of(saved.scope)
        locked = list(saved.scope.locked_merchants)
    elif scope is not None:
        locked = lock_merchants(scope, scoped_desired(ws.desired, scope), None)
    held = ws.store.read_lock() if lock_wait > 0 else None
    if held is not None:
        on_waiting(held)
    with ws.store.lock("apply", wait_seconds=lock_wait, merchants=locked):
        state = ws.load_state()
        if saved is not None:
            chosen = saved
            desired = scoped_desired(ws.desired, scope)
            check_fresh(
                chosen,
                state,
                desired_digest(desired),
                ws.runtime.clock.now(),
                ws.project.project.plan_max_age_minutes,
                None
                if scope is None
                else state_digest(scoped_state(state, ws.desired, desired, scope)),
            )
        else:
            ws.early_state = state
            planned = plan(ws, refresh_mode, scope=scope)
            chosen, state = planned.plan, planned.state
            on_plan(chosen)
        if chosen.has_errors:
            raise PlanHasErrors()
        if not chosen.has_changes:
            return Applied(chosen, None, plan_file is not None)
        if not confirm(chosen):
            raise NotConfirmed()
        acting = [c for c in chosen.changes if c.operations]
        clients = clients_for(ws, [c.merchant for c in acting], cancel=stop.event)
        on_start(len(acting), lambda: waiting_calls(clients))
        try:
            applier = Applier(
                ws.store,
                state,
                clients,
                ws.runtime.clock.now,
                on_result=lambda r: on_result(r, len(acting)),
                stop=stop.event,
                concurrency=ws.project.project.concurrency,
                activation=Activation(
                    ws.project.project.activation.delay_seconds,
                    ws.project.project.activation.retry_seconds,
                    ws.project.project.activation.max_attempts,
                ),
                root=ws.project.root,
            )
            report = applier.apply(chosen)
        finally:
            for c in clients.values():
                c.close()
    return Applied(chosen, report, plan_file is not None, throttled_calls(clients))


def throttled_calls(clients: Mapping[str, WeChatPayClient]) -> dict[tuple[str, str], int]:
    """Every 429 answer the clients' rate limiters counted, by (merchant, call)."""
    seen = {id(c.rate_limiter): c.rate_limiter for c in clients.values()}
    out: dict[tuple[str, str], int] = {}
    for limiter in seen.values():
        for key, n in limiter.throttled().items():
            if key[0] in clients:
                out[key] = out.get(key, 0) + n
    return out
