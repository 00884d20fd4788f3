"""How fast is the emulator? Requests per second through `handle` and over a loopback socket.

Run: .venv/bin/python benchmarks/bench_emulator.py [N]
Each request is signed by the client (RSA sign) and verified and answered by the emulator (RSA
verify + sign), so most of the time is RSA; the figures bound how fast a test suite or a demo can
drive the emulator.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import httpx

from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings
from reconciler.emulator.samples import favor_create_body

MCHID = "1900000001"


def timed(label: str, n: int, work: Callable[[int], None]) -> None:
    started = time.perf_counter()
    for i in range(n):
        work(i)
    elapsed = time.perf_counter() - started
    print(f"{label:<34} {n:>6} requests  {n / elapsed:>8.0f}/s  {elapsed / n * 1000:>6.2f} ms each")


def main(n: int) -> None:
    merchant = DemoMerchant.generate(MCHID)
    emulator = Emulator(EmulatorSettings(rate_limiting=False))
    merchant.register(emulator)
    now = time.time()

    def create(i: int) -> None:
        body = favor_create_body(MCHID, now, f"bench-{i}")
        request = merchant.request(
            "POST", "/v3/marketing/favor/coupon-stocks", timestamp=int(time.time()), json_body=body
        )
        assert emulator.handle(request).status_code == 200

    def detail(i: int) -> None:
        target = f"/v3/marketing/favor/stocks/{10000001 + i % n}?stock_creator_mchid={MCHID}"
        request = merchant.request("GET", target, timestamp=int(time.time()))
        assert emulator.handle(request).status_code == 200

    timed("handle: favor create", n, create)
    timed("handle: favor detail", n, detail)
    with emulator.serve() as server, httpx.Client(base_url=server.base_url) as client:

        def over_http(i: int) -> None:
            target = f"/v3/marketing/favor/stocks/{10000001 + i % n}?stock_creator_mchid={MCHID}"
            request = merchant.request(
                "GET", target, timestamp=int(time.time()), base_url=server.base_url
            )
            assert client.send(request).status_code == 200

        timed("loopback server: favor detail", n, over_http)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300)
