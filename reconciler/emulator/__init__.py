"""A local WeChat Pay emulator for coupon stocks (代金券 favor, 商家券 busifavor).

One request -> response app (`Emulator.handle`), usable behind `httpx.MockTransport`
(`Emulator.transport()`), on a loopback port (`Emulator.serve()`, `run_server()`), or as the
default backend that lets the tool run without a merchant account.
"""

from __future__ import annotations

from reconciler.emulator.app import Emulator, Outcome, RequestLogEntry
from reconciler.emulator.faults import Faults
from reconciler.emulator.keys import PlatformCertificate, WechatPayKeys, generate_keys
from reconciler.emulator.merchant import DemoMerchant
from reconciler.emulator.server import EmulatorServer, run_server
from reconciler.emulator.settings import DEFAULT_RATE_LIMITS, EmulatorSettings, RateLimit
from reconciler.emulator.store import Stock

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "DemoMerchant",
    "Emulator",
    "EmulatorServer",
    "EmulatorSettings",
    "Faults",
    "Outcome",
    "PlatformCertificate",
    "RateLimit",
    "RequestLogEntry",
    "Stock",
    "WechatPayKeys",
    "generate_keys",
    "run_server",
]
