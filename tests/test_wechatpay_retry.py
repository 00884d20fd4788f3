"""Backoff arithmetic and the classification of network failures."""

from __future__ import annotations

import httpx
import pytest

from reconciler.wechatpay.retry import (
    RetryPolicy,
    classify,
    is_retryable_status,
    retry_after_seconds,
)


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, multiplier=2.0, max_delay=4.0)
    assert [policy.delay(n, 0.0) for n in range(1, 6)] == [0.25, 0.5, 1.0, 2.0, 2.0]
    assert [policy.delay(n, 0.999999) for n in range(1, 6)] == pytest.approx(
        [0.5, 1.0, 2.0, 4.0, 4.0], rel=1e-5
    )


def test_retry_after_raises_the_wait_up_to_a_cap() -> None:
    policy = RetryPolicy(base_delay=0.5, max_retry_after=30.0)
    assert policy.delay(1, 0.0, retry_after=3.0) == 3.0
    assert policy.delay(1, 0.0, retry_after=3600.0) == 30.0
    assert policy.delay(1, 0.0, retry_after=0.0) == 0.25


def test_retry_after_header_parsing() -> None:
    assert retry_after_seconds(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert retry_after_seconds(httpx.Headers({"Retry-After": "Wed, 21 Oct 2015"})) is None
    assert retry_after_seconds(httpx.Headers({})) is None


@pytest.mark.parametrize(
    ("status", "retry"),
    [
        (200, False),
        (202, True),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_retryable_statuses(status: int, retry: bool) -> None:
    assert is_retryable_status(status) is retry


REQUEST = httpx.Request("POST", "https://h/v3/x")


@pytest.mark.parametrize(
    ("exc", "retryable", "sent"),
    [
        (httpx.ConnectError("refused", request=REQUEST), True, False),
        (httpx.ConnectTimeout("slow", request=REQUEST), True, False),
        (httpx.PoolTimeout("busy", request=REQUEST), True, False),
        (httpx.ReadTimeout("slow", request=REQUEST), True, True),
        (httpx.WriteTimeout("slow", request=REQUEST), True, True),
        (httpx.RemoteProtocolError("disconnected", request=REQUEST), True, True),
        (httpx.ReadError("reset", request=REQUEST), True, True),
        (httpx.UnsupportedProtocol("ftp", request=REQUEST), False, False),
        (httpx.LocalProtocolError("bad", request=REQUEST), False, False),
    ],
)
def test_network_failures_are_classified(
    exc: httpx.RequestError, retryable: bool, sent: bool
) -> None:
    failure = classify(exc)
    assert (failure.retryable, failure.sent) == (retryable, sent)
    assert failure.reason
