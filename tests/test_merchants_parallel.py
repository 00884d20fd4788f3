"""Merchants run truly in parallel: a merchant waiting for its rate limit never holds another
merchant's work (no head-of-line blocking), nor another call of its own."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.applier import Applier, Outcome
from reconciler.desired import DesiredStock
from reconciler.limits import Limit
from reconciler.operation import CreateResult
from reconciler.planner import PlanInputs, make_plan
from reconciler.runtime import Clock
from reconciler.wechatpay.ratelimit import RateLimiter
from tests.fake_api import FakeStockApi
from tests.test_applier import NOW
from tests.test_planner import loaded

A, B = "1900000001", "1900000002"


@dataclass
class PacedApi(FakeStockApi):
    """The fake, paced by a real `RateLimiter` as the signed client is; records when each
    create starts, across merchants."""

    limiter: RateLimiter = field(default_factory=RateLimiter)
    started: list[tuple[str, str]] = field(default_factory=list)
    guard: threading.Lock = field(default_factory=threading.Lock)

    def _paced(self, kind: str, body: Mapping[str, Any]) -> CreateResult:
        self.limiter.acquire(self.merchant, f"{kind}_create")
        with self.guard:
            self.started.append((self.merchant, kind))
        return self._create(kind, body)

    def favor_create(self, body: Mapping[str, Any]) -> CreateResult:
        return self._paced("favor", body)

    def busifavor_create(self, body: Mapping[str, Any]) -> CreateResult:
        return self._paced("busifavor", body)


def _favor(merchant: str, n: int) -> DesiredStock:
    def mutate(d: dict[str, Any]) -> None:
        d["merchant"] = merchant
        d["status"] = "created"
        d["spec"]["belong_merchant"] = merchant
        d["spec"]["stock_name"] = f"满100减10 {merchant[-1]}{n}"

    return loaded("favor", mutate, id=f"m{merchant[-1]}-favor-{n:03d}")


def _busi(merchant: str, n: int) -> DesiredStock:
    def mutate(d: dict[str, Any]) -> None:
        d["merchant"] = merchant
        d["spec"]["belong_merchant"] = merchant

    return loaded("busifavor", mutate, id=f"m{merchant[-1]}-x-busi-{n:03d}")


def _run(tmp_path: Path, desired: list[DesiredStock]) -> tuple[list[tuple[str, str]], float]:
    from reconciler.state.store import StateStore

    store = StateStore(tmp_path / "state.json", Clock(source=lambda: NOW.timestamp()))
    state = store.load(create_if_missing=True)
    plan = make_plan(PlanInputs(desired=desired, state=state, observed={}, now=NOW))
    # 10 favor creates a second per merchant, one at a time: merchant A's 20 creates are
    # a 2-second backlog.
    limiter = RateLimiter({"favor_create": Limit(10, 1.0, burst=1)})
    started: list[tuple[str, str]] = []
    guard = threading.Lock()
    apis = {
        m: PacedApi(
            m,
            limiter=limiter,
            started=started,
            guard=guard,
            _ids=itertools.count(10_000_001 + i * 1_000_000),
        )
        for i, m in enumerate((A, B))
    }
    begin = time.monotonic()
    report = Applier(store, state, apis, lambda: NOW, concurrency=2).apply(plan)
    assert report.ok and all(r.outcome is Outcome.SUCCEEDED for r in report.results)
    return started, time.monotonic() - begin


def test_a_merchant_never_waits_behind_another_merchants_rate_limited_backlog(
    tmp_path: Path,
) -> None:
    # Merchant A's stocks come first in the plan, and there are many more of them than workers.
    desired = [_favor(A, i) for i in range(20)] + [_favor(B, i) for i in range(3)]
    started, _ = _run(tmp_path, desired)
    order = [m for m, _ in started]
    assert order.count(A) == 20 and order.count(B) == 3
    # B's creates start while A's backlog is still being paced (A needs about 2 s; B's three
    # take 0.2 s), not after it.
    assert order.index(B) < 3
    assert max(i for i, m in enumerate(order) if m == B) < 10


def test_a_call_waiting_for_its_limit_never_holds_the_same_merchants_other_calls(
    tmp_path: Path,
) -> None:
    # The busifavor creates come last in the plan (ids sort after the favor ones).
    desired = [_favor(A, i) for i in range(20)] + [_busi(A, i) for i in range(5)]
    started, _ = _run(tmp_path, desired)
    kinds = [k for _, k in started]
    assert max(i for i, k in enumerate(kinds) if k == "busifavor") < 10


def test_every_429_is_counted_and_shown_by_apply(tmp_path: Path) -> None:
    from reconciler.emulator import Faults
    from tests.e2e_support import LocalEmulator, make_workspace, write_generated_stocks

    ws = make_workspace(tmp_path / "project", max_attempts=3)
    write_generated_stocks(ws.stocks_dir, 1, kinds=("busifavor",))
    with LocalEmulator(ws) as local:
        local.set_faults(
            Faults(rate_limit_share=1.0, next_requests=1, endpoints=frozenset({"busifavor.create"}))
        )
        run = ws.cli("apply", "--yes")
    assert run.exit_code == 0, str(run)
    assert "WeChat Pay answered 429 (too many requests) 1 time(s)" in run.stderr
    assert f"{A} busifavor_create × 1" in run.stderr
    assert "429" not in ws.cli("plan").output


def test_the_emulator_limits_favor_creates_across_all_merchants_too() -> None:
    from reconciler.emulator import Emulator, EmulatorSettings
    from reconciler.emulator.samples import favor_create_body
    from reconciler.emulator.settings import RateLimit
    from reconciler.errors import ApiError
    from tests.test_partners import signed_client

    settings = EmulatorSettings()
    settings.global_rate_limits["favor.create"] = RateLimit(3, 60.0)
    emu = Emulator(settings)  # the real clock
    now = time.time()
    with signed_client(emu, A) as a, signed_client(emu, B) as b:
        a.favor_create(favor_create_body(A, now, "g-1"))
        b.favor_create(favor_create_body(B, now, "g-2"))
        a.favor_create(favor_create_body(A, now, "g-3"))
        with pytest.raises(ApiError, match="429 FREQUENCY_LIMIT_EXCEED"):
            b.favor_create(favor_create_body(B, now, "g-4"))  # B's own second: over all merchants
    assert len(emu.stocks) == 3
