"""Fault injection: what can go wrong on the wire, decided per request, reproducible with a seed."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from reconciler.emulator.routing import ENDPOINTS

Before = Literal["drop", "error_500", "rate_limit"]
After = Literal["drop", "error_500"]
SignatureFault = Literal["bad", "probe", "unsigned"]


@dataclass(frozen=True)
class Faults:
    """Which faults to inject. Shares are probabilities in [0, 1]; 1 means every matching request.

    A request matches when its endpoint is in `endpoints` (None: every endpoint) and, when
    `next_requests` is set, it is one of the next N matching requests after these faults were set;
    after that the faults are spent. Only requests that pass authentication and reach a known
    endpoint count. Checks run in field order and the first share that fires wins within a stage:
    before processing (`drop_share`, `error_500_share`, `rate_limit_share`), after committing
    (`commit_then_drop_share`, `commit_then_500_share`), then the response signature
    (`bad_signature_share`, `probe_signature_share`, `unsigned_share`). `latency_ms` delays the
    answer after processing (so the work is committed even if the client gives up);
    `response_clock_skew_seconds` shifts `Wechatpay-Timestamp`. With `seed` set, the draws repeat.
    """

    latency_ms: int = 0
    drop_share: float = 0.0
    error_500_share: float = 0.0
    rate_limit_share: float = 0.0
    commit_then_drop_share: float = 0.0
    commit_then_500_share: float = 0.0
    bad_signature_share: float = 0.0
    probe_signature_share: float = 0.0
    unsigned_share: float = 0.0
    response_clock_skew_seconds: int = 0
    endpoints: frozenset[str] | None = field(default=None)
    next_requests: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in _SHARES:
            share = getattr(self, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"Faults.{name} must be between 0 and 1, not {share}")
        if self.latency_ms < 0:
            raise ValueError("Faults.latency_ms must not be negative")
        if self.next_requests is not None and self.next_requests < 0:
            raise ValueError("Faults.next_requests must not be negative")
        if self.endpoints is not None:
            endpoints = frozenset(_as_iterable(self.endpoints))
            unknown = sorted(endpoints - ENDPOINTS)
            if unknown:
                raise ValueError(f"unknown endpoints {unknown}; known: {sorted(ENDPOINTS)}")
            object.__setattr__(self, "endpoints", endpoints)


_SHARES = (
    "drop_share",
    "error_500_share",
    "rate_limit_share",
    "commit_then_drop_share",
    "commit_then_500_share",
    "bad_signature_share",
    "probe_signature_share",
    "unsigned_share",
)


def _as_iterable(value: Iterable[str]) -> Iterable[str]:
    # A bare string would silently become a set of characters.
    if isinstance(value, str):
        return (value,)
    return value


@dataclass(frozen=True)
class FaultDecision:
    """The faults chosen for one request."""

    latency_seconds: float = 0.0
    before: Before | None = None
    after: After | None = None
    signature: SignatureFault | None = None
    clock_skew_seconds: int = 0

    def label(self) -> str | None:
        """A short name for the request log, e.g. `commit_then_drop`; None when nothing fired."""
        parts: list[str] = []
        if self.before is not None:
            parts.append(self.before)
        if self.after is not None:
            parts.append(f"commit_then_{self.after}")
        if self.signature is not None:
            parts.append(f"{self.signature}_signature")
        return "+".join(parts) or None


NO_FAULT = FaultDecision()


class FaultInjector:
    """Draws the faults for each matching request from one `Faults` value and a seeded RNG."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._used = 0

    @property
    def remaining(self) -> int | None:
        """How many matching requests the faults still apply to (None: no limit)."""
        if self.faults.next_requests is None:
            return None
        return max(self.faults.next_requests - self._used, 0)

    def decide(self, endpoint: str) -> FaultDecision:
        f = self.faults
        if f.endpoints is not None and endpoint not in f.endpoints:
            return NO_FAULT
        if f.next_requests is not None:
            if self._used >= f.next_requests:
                return NO_FAULT
            self._used += 1
        before: Before | None = None
        if self._fires(f.drop_share):
            before = "drop"
        elif self._fires(f.error_500_share):
            before = "error_500"
        elif self._fires(f.rate_limit_share):
            before = "rate_limit"
        after: After | None = None
        if self._fires(f.commit_then_drop_share):
            after = "drop"
        elif self._fires(f.commit_then_500_share):
            after = "error_500"
        signature: SignatureFault | None = None
        if self._fires(f.bad_signature_share):
            signature = "bad"
        elif self._fires(f.probe_signature_share):
            signature = "probe"
        elif self._fires(f.unsigned_share):
            signature = "unsigned"
        return FaultDecision(
            latency_seconds=f.latency_ms / 1000.0,
            before=before,
            after=after,
            signature=signature,
            clock_skew_seconds=f.response_clock_skew_seconds,
        )

    def _fires(self, share: float) -> bool:
        if share <= 0.0:
            return False
        if share >= 1.0:
            return True
        return self._rng.random() < share
