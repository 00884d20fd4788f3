"""Rate limits as data (pure): the documented limits per merchant and endpoint.

The planner estimates apply times from these and the client paces its requests by them, so they
live apart from both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Limit:
    """`count` requests per `per_seconds`; `burst` defaults to one second's worth (at least 1)."""

    count: int
    per_seconds: float
    burst: int | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or self.per_seconds <= 0 or (self.burst is not None and self.burst < 1):
            raise ValueError(f"invalid rate limit {self!r}")

    @property
    def rate(self) -> float:
        return self.count / self.per_seconds

    @property
    def capacity(self) -> float:
        # A per-minute budget is spread over the minute rather than spent in one burst.
        return float(self.burst if self.burst is not None else max(1, int(self.rate)))


#: Documented limits (reference §0), per merchant and endpoint. The busifavor detail, modify
#: and budget interfaces and /v3/certificates state none: 100/s (and 10/s for certificates,
#: fetched rarely) are our own conservative choices, not WeChat Pay's figures. Favor start:
#: 1000/min (start-stock page, 2024.09.19); pause and restart: 1000/min (Go SDK); stop states
#: none, so it takes pause's figure; modify-goods-id (doc 4017164667, 2026-01-13) states none
#: here, so 60/min is our own conservative choice; items: 600/min (Go SDK). Merchants: 1000/min
#: (Go SDK); an import calls it once per 代金券, for minutes on end, so it is spent evenly (no
#: burst) at 950/min: requests bunch up on the way, and a server counting any 60 s window
#: must never see more than 1000 (measured: 1000/min with no margin drew one 429 in 2,000).
DEFAULT_LIMITS: Mapping[str, Limit] = MappingProxyType(
    {
        "favor_create": Limit(60, 60.0),
        "favor_detail": Limit(500, 1.0),
        "favor_list": Limit(500, 1.0),
        "favor_start": Limit(1000, 60.0),
        "favor_pause": Limit(1000, 60.0),
        "favor_restart": Limit(1000, 60.0),
        "favor_stop": Limit(1000, 60.0),
        "favor_modify_goods_id": Limit(60, 60.0),
        "favor_items": Limit(600, 60.0),
        "favor_merchants": Limit(950, 60.0, burst=1),
        "busifavor_create": Limit(1000, 60.0),
        "busifavor_detail": Limit(100, 1.0),
        "busifavor_modify": Limit(100, 1.0),
        "busifavor_budget": Limit(100, 1.0),
        "certificates": Limit(10, 1.0),
    }
)
#: Limits across all merchants together (reference §0): favor create is 60/min per merchant
#: and 1000/min for all merchants. The client paces these across every merchant it serves.
GLOBAL_LIMITS: Mapping[str, Limit] = MappingProxyType({"favor_create": Limit(1000, 60.0)})
#: For an endpoint name that is in neither the defaults nor the overrides.
FALLBACK_LIMIT = Limit(10, 1.0)

__all__ = ["DEFAULT_LIMITS", "FALLBACK_LIMIT", "GLOBAL_LIMITS", "Limit"]
