"""How long state operations take as the number of stocks grows.

Run: .venv/bin/python benchmarks/bench_state.py [N ...]
The applier saves after every step, so `save` time bounds how fast a big apply can go.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from reconciler.ids import body_digest
from reconciler.state.model import State, StockState
from reconciler.state.store import StateStore

T0 = datetime(2026, 5, 1, tzinfo=UTC)


class FixedClock:
    def now(self) -> datetime:
        return T0


def build(n: int) -> State:
    stocks = {}
    for i in range(n):
        stock = StockState.new(f"stock-{i:05d}", "busifavor", "1900000001")
        body = {
            "stock_name": f"满减券 {i}",
            "out_request_no": stock.out_request_no,
            "belong_merchant": "1900000001",
            "comment": "x" * 200,
            "stock_send_rule": {"max_coupons": 1000 + i, "max_coupons_per_user": 1},
            "coupon_use_rule": {"fixed_normal_coupon": {"discount_amount": 500}},
        }
        stocks[stock.id] = StockState.model_validate(
            {**dict(stock), "sent_body": body, "sent_digest": body_digest(body)}
        )
    lineage = "00000000-0000-0000-0000-000000000001"
    return State.model_validate({"lineage": lineage, "serial": 0, "stocks": stocks})


def timed(label: str, fn: Callable[[], object], repeat: int = 5) -> None:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    print(f"  {label:<36} {best * 1000:9.2f} ms")


def bench(n: int, directory: Path) -> None:
    store = StateStore(directory / "state.json", FixedClock())
    current = [store.save(build(n))]
    print(f"{n} stocks, {store.path.stat().st_size / 1024:.0f} KiB on disk")

    def save() -> None:
        current[0] = store.save(current[0])

    def lock_release() -> None:
        with store.lock("bench"):
            pass

    timed("save (serialise, fsync, backup)", save)
    timed("load (parse + validate)", store.load)
    timed(
        "record_observed (one pure update)",
        lambda: current[0].record_observed("stock-00000", {"status": "ONGOING"}, T0),
    )
    timed("lock + release", lock_release)


def main(sizes: list[int]) -> None:
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            bench(n, Path(tmp))


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [100, 1000, 5000])
