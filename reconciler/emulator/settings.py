"""Emulator settings: the behaviours that are UNCONFIRMED for the real API, limits and faults."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from reconciler.emulator.faults import Faults
from reconciler.emulator.timefmt import TimeStyle
from reconciler.wechatpay.signing import MAX_CLOCK_SKEW_SECONDS

SigningKeyMode = Literal["by_merchant", "public_key", "platform_certificate", "by_request_serial"]
ReuseMode = Literal["idempotent", "reject"]
ReuseCompare = Literal["json", "bytes"]
OffsetMode = Literal["page", "item"]
BusifavorInitialState = Literal["RUNNING", "UNAUDIT"]


@dataclass(frozen=True)
class RateLimit:
    """At most `count` requests per merchant in any `per_seconds` sliding window."""

    count: int
    per_seconds: float


DEFAULT_RATE_LIMITS: Mapping[str, RateLimit] = MappingProxyType(
    {
        # reference §0: favor create 60/min per merchant; detail and list 500/s; start, pause,
        # restart 1000/min; busifavor create 1000/min. No limit is stated for the others.
        "favor.create": RateLimit(60, 60.0),
        "favor.detail": RateLimit(500, 1.0),
        "favor.list": RateLimit(500, 1.0),
        "favor.start": RateLimit(1000, 60.0),
        "favor.pause": RateLimit(1000, 60.0),
        "favor.restart": RateLimit(1000, 60.0),
        "favor.stop": RateLimit(1000, 60.0),
        "favor.items": RateLimit(600, 60.0),
        "favor.merchants": RateLimit(1000, 60.0),
        "busifavor.create": RateLimit(1000, 60.0),
    }
)

GLOBAL_RATE_LIMITS: Mapping[str, RateLimit] = MappingProxyType(
    {"favor.create": RateLimit(1000, 60.0)}  # reference §0: 1000/min across all merchants
)


@dataclass
class EmulatorSettings:
    """How the emulator behaves; mutable, read on every request, so a test may change it.

    - `signing_key`: which WeChat Pay key signs responses. `by_merchant` (the default): the key
      the request's `Wechatpay-Serial` names (the PUB_KEY_ID, or the platform certificate's
      serial for a merchant with an APIv3 key); without one, the calling merchant's own
      `signing` (public key unless it was registered in certificate mode). `by_request_serial`
      is the migration behaviour: the public key when the request's `Wechatpay-Serial` is the
      PUB_KEY_ID, else the platform certificate. `public_key` and `platform_certificate` always
      sign with that key.
    - `platform_certificates`: `GET /v3/certificates`. None (default): served to every merchant
      registered with an APIv3 key, the certificate made on first need; True: the same, with
      the certificate made at start; False: 404 for every merchant, like an account without
      platform certificates (merchants registered since late 2024).
    - `out_request_no_reuse` (UNCONFIRMED for the real API): `idempotent` answers a repeated
      request number with an equal body with the original answer and a different body with
      400 INVALID_REQUEST; `reject` answers any reuse with 400 RESOURCE_ALREADY_EXISTS.
      `reuse_compare` says what "equal" means: the same JSON value, or the same bytes.
    - `list_offset` (UNCONFIRMED): favor list `offset` as a page number (the doc text) or an
      item offset.
    - `detail_time_format`: how detail responses show the times sent at create.
    - `busifavor_initial_state`: `stock_state` of a new busifavor stock.
    - `reject_unknown_fields`: create bodies with fields the API does not define get PARAM_ERROR
      (the real server may ignore them; the emulator catches typos).
    - `rate_limiting`/`rate_limits`: per-merchant sliding windows, keyed by endpoint name;
      `global_rate_limits`: windows across all merchants together (favor create 1000/min).
    - `activation_delay_seconds`: a favor start this soon after the create answers 400
      INVALID_REQUEST "卡包信息尚未注册完成" (the code is UNCONFIRMED; developers report that
      message, or SYSTEM_ERROR, within about a minute). `reconciler emulator` defaults to 60;
      in-process emulators (tests) to 0.
    - `max_running_stocks`: a start beyond this many running stocks of the merchant answers
      403 RULE_LIMIT (the limit is reported as 500; the code is UNCONFIRMED).
    - `code_upload_delay_seconds`: a 商家券 code upload this soon after the create answers 400
      STATEMENT_CREATING (reported by developers; the length is UNCONFIRMED).
    - `marketing_event_denied`: merchants without the 营销事件推送 permission: their busifavor
      callback calls answer 403 NO_AUTH.
    """

    signing_key: SigningKeyMode = "by_merchant"
    platform_certificates: bool | None = None
    out_request_no_reuse: ReuseMode = "idempotent"
    reuse_compare: ReuseCompare = "json"
    list_offset: OffsetMode = "page"
    detail_time_format: TimeStyle = "as_sent"
    busifavor_initial_state: BusifavorInitialState = "RUNNING"
    reject_unknown_fields: bool = True
    max_clock_skew_seconds: int = MAX_CLOCK_SKEW_SECONDS
    rate_limiting: bool = True
    rate_limits: dict[str, RateLimit] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    global_rate_limits: dict[str, RateLimit] = field(
        default_factory=lambda: dict(GLOBAL_RATE_LIMITS)
    )
    faults: Faults = field(default_factory=Faults)
    activation_delay_seconds: float = 0.0
    max_running_stocks: int = 500
    code_upload_delay_seconds: float = 3.0
    marketing_event_denied: frozenset[str] = frozenset()
