"""Shared set-up for the benchmarks: generated stocks, an emulator on loopback, a project."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings
from reconciler.runtime import Clock

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

FAVOR = (ROOT / "stocks" / "favor" / "spring-sale-10-off-100.yaml").read_text(encoding="utf-8")
BUSI = (ROOT / "stocks" / "busifavor" / "member-day-latte-8-off.yaml").read_text(encoding="utf-8")
# One day before the examples' earliest begin time, as the demo does.
from reconciler.spec.common import parse_rfc3339  # noqa: E402

NOW = parse_rfc3339("2027-03-01T00:00:00+08:00") - timedelta(days=1)


def write_stocks(directory: Path, count: int, kinds: str = "mixed") -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        favor = kinds == "favor" or (kinds == "mixed" and i % 2 == 0)
        text = FAVOR if favor else BUSI
        old = "spring-sale-10-off-100" if favor else "member-day-latte-8-off"
        text = text.replace(f"id: {old}", f"id: stock-{i:06d}")
        if favor:
            # Created only: activation is not what these benchmarks measure.
            text = text.replace("kind: favor", "kind: favor\nstatus: created", 1)
            text = text.replace("max_coupons: 20000", f"max_coupons: {20000 + i}").replace(
                "max_amount: 20000000 ", f"max_amount: {(20000 + i) * 1000} "
            )
        else:
            text = text.replace("max_coupons: 50000", f"max_coupons: {50000 + i}")
        sub = directory / f"team-{i % 50:02d}"
        sub.mkdir(exist_ok=True)
        (sub / f"stock-{i:06d}.yaml").write_text(text, encoding="utf-8")


def emulator(
    root: Path,
    clock: Clock,
    settings: EmulatorSettings | None = None,
    data_path: Path | None = None,
) -> tuple[Emulator, DemoMerchant]:
    emu = Emulator(settings or EmulatorSettings(), clock=clock.time, data_path=data_path)
    merchant = DemoMerchant.generate("1900000001")
    merchant.register(emu)
    keys = root / "keys"
    keys.mkdir(exist_ok=True)
    (keys / "pub.pem").write_bytes(emu.wechatpay_public_key_pem())
    (keys / "key.pem").write_bytes(
        merchant.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return emu, merchant


def write_project(
    root: Path, base_url: str, merchant: DemoMerchant, emu: Emulator, extra: str = ""
) -> Path:
    path = root / "reconciler.yaml"
    path.write_text(
        f"stocks: stocks\nstate: state.json\napi:\n  base_url: {base_url}\n{extra}"
        f'merchants:\n  - mchid: "1900000001"\n    serial_no: {merchant.serial_no}\n'
        f"    private_key: {{file: keys/key.pem}}\n    wechatpay_public_key: {{file: keys/pub.pem}}\n"
        f"    wechatpay_public_key_id: {emu.wechatpay_public_key_id}\n",
        encoding="utf-8",
    )
    return path


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB, from /proc (VmHWM) where there is one.

    Not `getrusage().ru_maxrss`: Linux carries that figure across exec, so a child started by
    a benchmark that had just built 50,000 stocks in memory reported the parent's peak as its
    own (1 GB for a child that used 30 MB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
