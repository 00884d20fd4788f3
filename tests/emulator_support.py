"""Fixtures shared by the emulator tests (loaded as a pytest plugin from conftest.py).

A test module that needs a different emulator or merchant defines its own fixture of the same
name, which takes precedence over these.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings, WechatPayKeys
from reconciler.emulator.keys import generate_keys

NOW = 1_780_000_000
MCHID = "1900000001"

Call = Callable[..., httpx.Response]


class Clock:
    """An injectable clock a test can move by setting `now`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def merchant() -> DemoMerchant:
    return DemoMerchant.generate(MCHID)


@pytest.fixture(scope="module")
def other() -> DemoMerchant:
    return DemoMerchant.generate("1900000002")


@pytest.fixture(scope="module")
def keys() -> WechatPayKeys:
    return generate_keys()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def emu(clock: Clock, keys: WechatPayKeys, merchant: DemoMerchant, other: DemoMerchant) -> Emulator:
    """Both merchants registered, rate limits off (the limit tests turn them on)."""
    emulator = Emulator(EmulatorSettings(rate_limiting=False), clock=clock, keys=keys)
    merchant.register(emulator)
    other.register(emulator)
    return emulator


@pytest.fixture
def call(emu: Emulator, clock: Clock, merchant: DemoMerchant) -> Call:
    """Send a request signed by `merchant` (or `who=`) through the emulator's app."""

    def send(
        method: str, target: str, body: object = None, who: DemoMerchant | None = None
    ) -> httpx.Response:
        return emu.handle(
            (who or merchant).request(method, target, timestamp=int(clock.now), json_body=body)
        )

    return send
