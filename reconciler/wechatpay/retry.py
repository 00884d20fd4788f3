"""What to retry and how long to wait: exponential backoff with jitter, pure decisions.

WeChat Pay asks callers to repeat 5xx ("使用原请求参数重试"), 429 ("降低频率后重试") and 202
("请使用原参数重复请求一遍") with the original parameters; every other 4xx is final. Network
failures are retried too; the client re-sends the very same body bytes each time, so a create
keeps its out_request_no and WeChat Pay's idempotency applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts the first try; delays grow by `multiplier` up to `max_delay`."""

    max_attempts: int = 5
    base_delay: float = 0.5
    multiplier: float = 2.0
    max_delay: float = 10.0
    #: A server's Retry-After is honoured up to this many seconds.
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base_delay < 0 or self.multiplier < 1:
            raise ValueError(f"invalid retry policy {self!r}")

    def delay(self, attempt: int, draw: float, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based); `draw` is in [0, 1).

        "Equal jitter": half of the exponential step is fixed, half random, so that threads
        failing together spread out but never retry immediately.
        """
        step = min(self.max_delay, self.base_delay * self.multiplier ** (attempt - 1))
        wait = step / 2 + draw * step / 2
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def is_retryable_status(status: int) -> bool:
    return status in (202, 429) or 500 <= status <= 599


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """A numeric Retry-After header, if any (WeChat Pay does not document one)."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


@dataclass(frozen=True)
class Failure:
    """How a network exception bears on retrying and on what the server may have done."""

    retryable: bool
    sent: bool  # the request may have reached WeChat Pay
    reason: str


def classify(exc: httpx.RequestError) -> Failure:
    """Connect errors never reached the server; read/write failures may have."""
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.ConnectTimeout):
        return Failure(True, False, f"connect timeout ({detail})")
    if isinstance(exc, httpx.PoolTimeout):
        return Failure(True, False, "no free connection in the pool in time")
    if isinstance(exc, httpx.ConnectError):
        return Failure(True, False, f"cannot connect ({detail})")
    if isinstance(exc, httpx.ReadTimeout):
        return Failure(True, True, f"no answer in time (read timeout: {detail})")
    if isinstance(exc, httpx.WriteTimeout):
        return Failure(True, True, f"write timeout ({detail})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return Failure(True, True, f"the server closed the connection mid-answer ({detail})")
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return Failure(True, True, f"connection failed mid-request ({detail})")
    return Failure(False, isinstance(exc, httpx.DecodingError), f"{type(exc).__name__}: {detail}")
