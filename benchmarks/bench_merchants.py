"""Many merchants in one apply, at the documented favor-create limit (60/min per merchant),
against the emulator on loopback with its documented sliding-window limits. Prints figures.

    .venv/bin/python benchmarks/bench_merchants.py [CREATES] [MERCHANTS]

- one merchant, CREATES (150) favor creates: the rate achieved (target ≥ 97 % of 60/min) and
  the 429 answers (target 0);
- MERCHANTS (4) merchants × CREATES favor creates in one apply: the wall time against the
  single merchant's, same run (target ≤ 1.1×), and the 429 answers (target 0).

Each run takes about CREATES seconds (2.5 minutes for 150).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from support import FAVOR, NOW

from reconciler import engine
from reconciler.applier import Applier
from reconciler.config import load_project
from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings
from reconciler.runtime import Clock, Runtime

FIRST = 1900000001


def _write(root: Path, merchants: list[str], creates: int) -> None:
    for mchid in merchants:
        folder = root / "stocks" / mchid
        folder.mkdir(parents=True)
        for i in range(creates):
            text = FAVOR.replace("1900000001", mchid)
            text = text.replace("id: spring-sale-10-off-100", f"id: m{mchid[-2:]}-stock-{i:04d}")
            # Created only: activation is not what this measures.
            text = text.replace("kind: favor", "kind: favor\nstatus: created", 1)
            text = text.replace("max_coupons: 20000", f"max_coupons: {20000 + i}").replace(
                "max_amount: 20000000 ", f"max_amount: {(20000 + i) * 1000} "
            )
            (folder / f"stock-{i:04d}.yaml").write_text(text, encoding="utf-8")


def run(merchant_count: int, creates: int) -> dict[str, float]:
    clock = Clock.starting_at(NOW)
    merchants = [str(FIRST + i) for i in range(merchant_count)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, merchants, creates)
        emu = Emulator(EmulatorSettings(), clock=clock.time)  # documented limits, enforced
        keys = root / "keys"
        keys.mkdir()
        (keys / "pub.pem").write_bytes(emu.wechatpay_public_key_pem())
        entries = []
        for mchid in merchants:
            merchant = DemoMerchant.generate(mchid)
            merchant.register(emu)
            (keys / f"{mchid}.pem").write_bytes(
                merchant.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            entries.append(
                f'  - mchid: "{mchid}"\n    serial_no: {merchant.serial_no}\n'
                f"    private_key: {{file: keys/{mchid}.pem}}\n"
                f"    wechatpay_public_key: {{file: keys/pub.pem}}\n"
                f"    wechatpay_public_key_id: {emu.wechatpay_public_key_id}\n"
            )
        with emu.serve() as server:
            (root / "reconciler.yaml").write_text(
                f"stocks: stocks\nstate: state.json\napi:\n  base_url: {server.base_url}\n"
                "merchants:\n" + "".join(entries),
                encoding="utf-8",
            )
            project, diagnostics = load_project(root / "reconciler.yaml")
            assert project is not None, diagnostics
            ws = engine.open_workspace(project, Runtime(root, {}, clock))
            planned = engine.plan(ws, "none")
            clients = engine.clients_for(ws, merchants)
            emu.clear_request_log()
            start = time.perf_counter()
            with ws.store.lock("bench"):
                report = Applier(ws.store, planned.state, clients, clock.now).apply(planned.plan)
            elapsed = time.perf_counter() - start
            counted = sum(ws.limiter.throttled().values())
            for c in clients.values():
                c.close()
            assert report.ok, [r for r in report.results if r.outcome.value != "succeeded"][:3]
            log = emu.request_log
            created = sum(1 for e in log if e.path.endswith("/coupon-stocks") and e.status == 200)
            throttled = sum(1 for e in log if e.status == 429)
    assert created == merchant_count * creates
    return {
        "seconds": elapsed,
        # The first create of each merchant goes at once; the rest are paced.
        "per_minute": (creates - 1) / elapsed * 60,
        "http_429": throttled,
        "counted_429": counted,
    }


def main() -> None:
    creates = int(sys.argv[1]) if len(sys.argv) > 1 else 150
    merchants = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    one = run(1, creates)
    print(
        f"1 merchant × {creates} favor creates: {one['seconds']:.1f} s, "
        f"{one['per_minute']:.1f}/min ({one['per_minute'] / 60 * 100:.1f} % of 60/min), "
        f"{one['http_429']} × 429 (apply counted {one['counted_429']})",
        flush=True,
    )
    many = run(merchants, creates)
    print(
        f"{merchants} merchants × {creates} favor creates: {many['seconds']:.1f} s "
        f"({many['seconds'] / one['seconds']:.3f} × the single merchant), "
        f"{many['per_minute']:.1f}/min per merchant, {many['http_429']} × 429 "
        f"(apply counted {many['counted_429']})"
    )


if __name__ == "__main__":
    main()
