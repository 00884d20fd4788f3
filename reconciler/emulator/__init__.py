"""A local WeChat Pay emulator for coupon stocks (代金券 favor, 商家券 busifavor).

One request -> response app (`Emulator.handle`), usable behind `httpx.MockTransport`
(`Emulator.transport()`), on a loopback port (`Emulator.serve()`, `run_server()`), or as the
default backend that lets the tool run without a merchant account::

    emu = Emulator(data_path=Path("emulator.json"))
    emu.register_merchant(mchid, serial_no, merchant_public_key, apiv3_key)
    with emu.serve(port=0) as server:
        ...  # point a client at server.base_url; verify with emu.wechatpay_public_key

Choices made where the real API is UNCONFIRMED (each switchable in `EmulatorSettings`):

- out_request_no reuse, scoped per (merchant, endpoint): `idempotent` by default (same number
  and equal JSON -> the original answer, checked before any other rule so a late retry still
  finds its stock; different body -> 400 INVALID_REQUEST "单号已存在但信息不一致..."), or
  `reject` (400 RESOURCE_ALREADY_EXISTS "批次已存在"). busifavor modify (`out_request_no`) and
  budget (`modify_budget_request_no`) numbers follow the same rule, keyed with the stock id.
- favor list `offset` is a page number (the doc text); `list_offset="item"` switches.
- Times: server times (create_time, start_time, ...) are `YYYY-MM-DDTHH:MM:SS+08:00`; detail
  responses echo the begin/end strings as sent unless `detail_time_format` says otherwise.
- A new busifavor stock is `RUNNING` (`busifavor_initial_state="UNAUDIT"` to model review).
- Create bodies with undocumented fields get PARAM_ERROR (`reject_unknown_fields`).
- busifavor modify: "暂不支持修改" fields (stock_name, merchant_logo_url, merchant_name,
  natural_person_limit) are accepted only unchanged; anything else not changeable is
  PARAM_ERROR. A wrong budget current value is 400 INVALID_REQUEST with the documented text.
- Wrong favor creator: 400 INVALID_REQUEST "非法的商户号"; another merchant's busifavor stock:
  403 NO_AUTH; an unregistered mchid: 400 MCH_NOT_EXISTS.
- Favor start repeated on a running stock answers the first start_time ("支持幂等重入");
  pause/restart/stop outside their precondition: 400 INVALID_REQUEST.
- Answers are signed with the key the request names in `Wechatpay-Serial`, else the merchant's
  own mode (`signing_key="by_merchant"`); `GET /v3/certificates` is served to every merchant
  with an APIv3 key (docs/emulator.md).
- Detail fields follow the official Go SDK models (`detail_fields`): favor max_amount_by_day
  is always shown (max_amount when the create gave none: UNCONFIRMED); busifavor brand name
  and logo are filled from the merchant's registration when the create gave none.
"""

from __future__ import annotations

from reconciler.emulator.app import Answer, Emulator, RequestLogEntry
from reconciler.emulator.faults import Faults
from reconciler.emulator.keys import PlatformCertificate, WechatPayKeys, generate_keys
from reconciler.emulator.merchant import DemoMerchant
from reconciler.emulator.server import EmulatorServer, run_server
from reconciler.emulator.settings import DEFAULT_RATE_LIMITS, EmulatorSettings, RateLimit
from reconciler.emulator.store import StoredStock

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "Answer",
    "DemoMerchant",
    "Emulator",
    "EmulatorServer",
    "EmulatorSettings",
    "Faults",
    "PlatformCertificate",
    "RateLimit",
    "RequestLogEntry",
    "StoredStock",
    "WechatPayKeys",
    "generate_keys",
    "run_server",
]
