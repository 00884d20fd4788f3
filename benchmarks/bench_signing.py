"""What the WeChat Pay client itself costs per request: signing, verifying, and both via httpx.

Run: .venv/bin/python benchmarks/bench_signing.py [--runs N]

Prints medians (and 90th percentiles) in microseconds over N timed runs after a warm-up.
The network is replaced by an httpx.MockTransport that returns a response signed once up
front, so only the client's work is measured: RSA-2048 signing of the request, RSA
verification of the response, header handling, pacing bookkeeping and JSON parsing.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa

from reconciler.limits import Limit
from reconciler.wechatpay import signing
from reconciler.wechatpay.auth import WeChatPayAuth, json_body
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.credentials import MerchantCredentials
from reconciler.wechatpay.ratelimit import RateLimiter
from reconciler.wechatpay.verify import ResponseVerifier

NOW = 1_767_225_600.0
PUB_KEY_ID = "PUB_KEY_ID_0114000000000000000000000000001"
BODY = json_body(
    {
        "stock_name": "满100减10",
        "belong_merchant": "1900000001",
        "available_begin_time": "2026-01-02T00:00:00+08:00",
        "available_end_time": "2026-01-31T23:59:59+08:00",
        "stock_use_rule": {"max_coupons": 100, "max_amount": 100000, "max_coupons_per_user": 1},
        "out_request_no": "1900000001-20260101-0001",
    }
)
ANSWER = json_body({"stock_id": "10000001", "stock_state": "RUNNING", "stock_name": "满100减10"})


def measure(label: str, fn: Callable[[], object], runs: int) -> None:
    for _ in range(max(20, runs // 10)):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    p90 = samples[int(len(samples) * 0.9) - 1]
    print(f"{label:<62} median {statistics.median(samples):9.1f} µs   p90 {p90:9.1f} µs")


def signed_answer(wechatpay_key: rsa.RSAPrivateKey) -> httpx.Response:
    nonce = "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    message = signing.response_message(str(int(NOW)), nonce, ANSWER)
    headers = {
        "Content-Type": "application/json",
        "Request-ID": "BENCH",
        "Wechatpay-Timestamp": str(int(NOW)),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": signing.sign(wechatpay_key, message),
        "Wechatpay-Serial": PUB_KEY_ID,
    }
    return httpx.Response(200, headers=headers, content=ANSWER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    runs = parser.parse_args().runs

    merchant_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wechatpay_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    creds = MerchantCredentials(
        mchid="1900000001",
        serial_no="3775B6A45ACD588826D15E583A95F5DD01A1C5A9",
        private_key=merchant_key,
        wechatpay_public_key=wechatpay_key.public_key(),
        wechatpay_public_key_id=PUB_KEY_ID,
    )
    clock = lambda: NOW  # noqa: E731
    auth = WeChatPayAuth(creds, clock=clock)
    verifier = ResponseVerifier(creds, clock=clock)
    canned = signed_answer(wechatpay_key)
    url = "https://api.mch.weixin.qq.com/v3/marketing/busifavor/stocks"

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers=canned.headers, content=canned.content)

    http = httpx.Client(transport=httpx.MockTransport(answer), auth=auth)
    bare = httpx.Client(transport=httpx.MockTransport(answer))
    unpaced = RateLimiter({"busifavor_create": Limit(10**9, 1.0, burst=10**9)})
    client = WeChatPayClient(
        creds, transport=httpx.MockTransport(answer), clock=clock, rate_limiter=unpaced
    )
    response = bare.post(url, content=BODY)

    print(f"runs per figure: {runs}; body {len(BODY)} bytes, answer {len(ANSWER)} bytes")
    message = signing.request_message("POST", "/v3/x", int(NOW), "n" * 32, BODY)
    measure(
        "RSA-2048 PKCS#1 v1.5 sign primitive (signing.sign)",
        lambda: signing.sign(merchant_key, message),
        runs,
    )
    request = httpx.Request("POST", url, content=BODY)
    measure("sign (WeChatPayAuth.sign: message, RSA, headers)", lambda: auth.sign(request), runs)
    measure(
        "verify (ResponseVerifier.verify on a 200 answer)", lambda: verifier.verify(response), runs
    )
    measure(
        "httpx round trip, MockTransport, no auth (baseline)",
        lambda: bare.post(url, content=BODY),
        runs,
    )
    measure(
        "sign + send + verify through the Auth (MockTransport)",
        lambda: verifier.verify(http.post(url, content=BODY)),
        runs,
    )
    measure(
        "WeChatPayClient.busifavor_create (all of the above + pacing)",
        lambda: client.busifavor_create({"stock_name": "满100减10", "out_request_no": "x"}),
        runs,
    )
    limiter = RateLimiter()
    measure("RateLimiter.reserve", lambda: limiter.reserve("1900000001", "favor_detail"), runs)
    client.close()
    http.close()
    bare.close()


if __name__ == "__main__":
    main()
