"""Persistence: the data file, atomic saves, restarts with the same identity and state."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings
from reconciler.emulator.samples import favor_create_body
from reconciler.emulator.store import save_atomically
from reconciler.emulator.timefmt import format_time, parse_time, render_time

NOW = 1_780_000_000
MCHID = "1900000001"
FAVOR = "/v3/marketing/favor/coupon-stocks"


@pytest.fixture(scope="module")
def merchant() -> DemoMerchant:
    return DemoMerchant.generate(MCHID)


def fixed() -> float:
    return NOW


def start(data: Path, merchant: DemoMerchant | None = None) -> Emulator:
    emulator = Emulator(EmulatorSettings(rate_limiting=False), clock=fixed, data_path=data)
    if merchant is not None:
        merchant.register(emulator)
    return emulator


def create(emulator: Emulator, merchant: DemoMerchant, number: str) -> str:
    response = emulator.handle(
        merchant.request(
            "POST", FAVOR, timestamp=NOW, json_body=favor_create_body(MCHID, NOW, number)
        )
    )
    assert response.status_code == 200
    return str(response.json()["stock_id"])


def test_a_restart_keeps_keys_merchants_stocks_and_request_numbers(
    tmp_path: Path, merchant: DemoMerchant
) -> None:
    data = tmp_path / "emu.json"
    first = start(data, merchant)
    stock_id = create(first, merchant, "p1")

    second = start(data)  # no registration: it comes from the file
    assert second.wechatpay_public_key_id == first.wechatpay_public_key_id
    assert second.wechatpay_public_key_pem() == first.wechatpay_public_key_pem()
    assert second.stocks == first.stocks
    target = f"/v3/marketing/favor/stocks/{stock_id}?stock_creator_mchid={MCHID}"
    assert second.handle(merchant.request("GET", target, timestamp=NOW)).status_code == 200
    assert create(second, merchant, "p1") == stock_id  # replay after restart
    assert create(second, merchant, "p2") == str(int(stock_id) + 1)


def test_a_platform_certificate_is_kept_across_restarts(
    tmp_path: Path, merchant: DemoMerchant
) -> None:
    data = tmp_path / "emu.json"
    settings = EmulatorSettings(platform_certificates=True)
    first = Emulator(settings, clock=fixed, data_path=data)
    again = Emulator(EmulatorSettings(platform_certificates=True), clock=fixed, data_path=data)
    assert first.platform_certificate is not None and again.platform_certificate is not None
    assert again.platform_certificate.serial_no == first.platform_certificate.serial_no


def test_stock_ids_are_deterministic_per_data_file(tmp_path: Path, merchant: DemoMerchant) -> None:
    runs = []
    for name in ("a.json", "b.json"):
        emulator = start(tmp_path / name, merchant)
        runs.append([create(emulator, merchant, f"n{i}") for i in range(3)])
    assert runs[0] == runs[1] == ["10000001", "10000002", "10000003"]


def test_the_data_file_is_plain_json_and_leaves_no_temp_files(
    tmp_path: Path, merchant: DemoMerchant
) -> None:
    data = tmp_path / "emu.json"
    emulator = start(data, merchant)
    create(emulator, merchant, "p1")
    saved = json.loads(data.read_text("utf-8"))
    assert saved["format"] == "reconciler-emulator/1"
    assert saved["keys"]["public_key_id"] == emulator.wechatpay_public_key_id
    assert saved["merchants"][MCHID]["serial_no"] == merchant.serial_no
    assert [s["stock_id"] for s in saved["stocks"]] == ["10000001"]
    assert saved["stocks"][0]["body"]["out_request_no"] == "p1"
    assert saved["next_stock_id"] == 10000002
    assert [r["number"] for r in saved["request_numbers"]] == ["p1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emu.json"]


def test_a_failed_save_leaves_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "f.json"
    save_atomically(path, {"v": 1})

    def broken(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        save_atomically(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ValueError, match="not an emulator data file"):
        Emulator(data_path=path)


# --- time format ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2026-05-29T04:26:40+08:00", NOW),
        ("2026-05-28T20:26:40Z", NOW),
        ("2026-05-29T04:26:40.120+08:00", NOW + 0.12),
        ("2026-05-28T20:26:40.123456789Z", NOW + 0.123456),
    ],
)
def test_parse_time_accepts_rfc3339(text: str, epoch: float) -> None:
    moment = parse_time(text)
    assert moment is not None
    assert moment.timestamp() == pytest.approx(epoch)


@pytest.mark.parametrize(
    "text",
    [
        "2026-05-29 04:26:40+08:00",
        "2026-05-29T04:26:40",
        "2026-05-29t04:26:40z",
        "2026-13-01T00:00:00Z",
        "",
    ],
)
def test_parse_time_refuses_the_rest(text: str) -> None:
    assert parse_time(text) is None


def test_format_and_render_time() -> None:
    assert format_time(NOW) == "2026-05-29T04:26:40+08:00"
    assert format_time(NOW + 0.5, millis=True) == "2026-05-29T04:26:40.500+08:00"
    sent = "2026-05-28T20:26:40.5Z"
    assert render_time(sent, "as_sent") == sent
    assert render_time(sent, "seconds") == "2026-05-29T04:26:40+08:00"
    assert render_time(sent, "millis") == "2026-05-29T04:26:40.500+08:00"
