"""1,000 favor detail queries against the emulator (a separate process on loopback, as a real
server would be) with 50 ms added latency: one at a time versus the client's bounded
concurrency, at the documented limit (favor detail 500/s per merchant).

    .venv/bin/python benchmarks/bench_client.py [queries]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from support import NOW, emulator

from reconciler.emulator.samples import favor_create_body
from reconciler.runtime import Clock
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials

CONCURRENCY = 32


def run(queries: int = 1000, latency_ms: int = 50) -> dict[str, float]:
    clock = Clock.starting_at(NOW)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "emulator.json"
        emu, merchant = emulator(Path(tmp), clock, data_path=data)
        creds = MerchantCredentials(
            mchid=merchant.mchid,
            serial_no=merchant.serial_no,
            private_key=merchant.private_key,
            wechatpay_public_key=emu.wechatpay_public_key,
            wechatpay_public_key_id=emu.wechatpay_public_key_id,
        )
        with WeChatPayClient(creds, transport=emu.transport(), clock=clock.time) as local:
            stock_id = local.favor_create(
                favor_create_body(merchant.mchid, clock.time(), "bench-client-0001")
            ).stock_id
        env = {**os.environ, "RECONCILER_NOW": NOW.isoformat()}
        cmd = [
            sys.executable,
            "-m",
            "reconciler",
            "emulator",
            "--port",
            "0",
            "--data",
            str(data),
            "--latency-ms",
            str(latency_ms),
        ]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) as server:
            assert server.stdout is not None
            line = server.stdout.readline()
            base_url = line.split("listening on ", 1)[1].split()[0]
            try:
                with WeChatPayClient(
                    creds, base_url=base_url, clock=clock.time, max_concurrency=CONCURRENCY
                ) as client:
                    client.favor_detail(stock_id, merchant.mchid)  # connect once
                    start = time.perf_counter()
                    for _ in range(queries):
                        client.favor_detail(stock_id, merchant.mchid)
                    sequential = time.perf_counter() - start
                    start = time.perf_counter()
                    with ThreadPoolExecutor(CONCURRENCY) as pool:
                        answers = list(
                            pool.map(
                                lambda _: client.favor_detail(stock_id, merchant.mchid),
                                range(queries),
                            )
                        )
                    concurrent = time.perf_counter() - start
            finally:
                server.terminate()
    assert len(answers) == queries
    # Every answer was verified; a 429 would have been retried and shows up as lost time, and
    # with the client's limiter at the documented 500/s none are expected.
    return {"sequential": sequential, "concurrent": concurrent, "speedup": sequential / concurrent}


def main() -> None:
    queries = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    m = run(queries)
    print(
        f"{queries:,} favor detail queries, 50 ms latency: one at a time {m['sequential']:.1f} s, "
        f"concurrency {CONCURRENCY} {m['concurrent']:.2f} s ({m['speedup']:.0f}× faster)"
    )


if __name__ == "__main__":
    main()
