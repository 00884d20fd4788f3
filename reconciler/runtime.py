"""The one place that reads the environment and the clock, and hands them on."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from reconciler.errors import ConfigError
from reconciler.spec.common import parse_rfc3339

NOW_VARIABLE = "RECONCILER_NOW"


class Clock:
    """Wall-clock seconds, optionally shifted so that "now" is a chosen instant.

    The shift exists for the demo and tests (example stocks have fixed dates; a shifted clock
    keeps them in the future forever). It is refused against real WeChat Pay, whose servers
    check request timestamps against their own clock.
    """

    def __init__(
        self, offset_seconds: float = 0.0, source: Callable[[], float] = time.time
    ) -> None:
        self.offset = offset_seconds
        self._source = source

    @classmethod
    def starting_at(cls, instant: datetime) -> Clock:
        return cls(instant.timestamp() - time.time())

    def time(self) -> float:
        return self._source() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), tz=UTC)


@dataclass
class Runtime:
    cwd: Path
    environ: Mapping[str, str]
    clock: Clock = field(default_factory=Clock)
    transport: httpx.BaseTransport | None = None
    """Replaces the network (tests); None means real HTTP."""

    @classmethod
    def from_environment(cls) -> Runtime:
        environ = dict(os.environ)
        clock = Clock()
        if environ.get(NOW_VARIABLE):
            try:
                instant = parse_rfc3339(environ[NOW_VARIABLE])
            except ValueError as exc:
                raise ConfigError(f"{NOW_VARIABLE}: {exc}") from None
            if not 2000 <= instant.year <= 2200:
                raise ConfigError(
                    f"{NOW_VARIABLE}: {environ[NOW_VARIABLE]!r} is outside 2000 to 2200; give a date near the stocks' dates"
                )
            clock = Clock.starting_at(instant)
        return cls(Path.cwd(), environ, clock)

    @property
    def shifted(self) -> bool:
        return abs(self.clock.offset) > 1.0


def is_loopback(base_url: str) -> bool:
    host = httpx.URL(base_url).host
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")
