"""`reconciler demo`: the whole loop against a local emulator, with no merchant account.

Starts the emulator on a loopback port with fresh keys in a temporary directory, then runs
validate, plan, apply and plan again over the repository's stocks/. The clock is set to one
day before the earliest stock begins, so the example dates never fall into the past and the
demo works on any date.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from reconciler import engine
from reconciler.applier import Applier
from reconciler.commands.common import EXIT_ERROR, EXIT_OK, fail
from reconciler.config import load_project
from reconciler.emulator import DemoMerchant, Emulator
from reconciler.errors import ReconcilerError
from reconciler.loader import LoadedStock, load_stocks
from reconciler.planner import BEIJING
from reconciler.render import diagnostics as render_diagnostics
from reconciler.render.text import render_text
from reconciler.runtime import Clock, Runtime
from reconciler.spec import FavorStock
from reconciler.spec.common import parse_rfc3339


def _say(title: str) -> None:
    click.echo("")
    click.echo(click.style(f"$ {title}", bold=True))


@click.command()
@click.option(
    "--stocks",
    "stocks_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default="stocks",
    show_default=True,
)
def demo(stocks_dir: Path) -> None:
    """Run validate, plan, apply and plan again against a local emulator."""
    loaded = load_stocks([stocks_dir], base=Path.cwd())
    _say(f"reconciler validate {stocks_dir}")
    if loaded.diagnostics:
        click.echo(render_diagnostics.text(loaded.diagnostics))
    click.echo(render_diagnostics.summary(loaded.diagnostics, loaded.files, len(loaded.stocks)))
    if not loaded.ok or not loaded.stocks:
        fail(
            "fix the stock files first"
            if loaded.stocks or not loaded.ok
            else f"no stocks under {stocks_dir}"
        )
    begins = [
        parse_rfc3339(
            s.stock.spec.available_begin_time
            if isinstance(s.stock, FavorStock)
            else s.stock.spec.coupon_use_rule.coupon_available_time.available_begin_time
        )
        for s in loaded.stocks
    ]
    clock = Clock.starting_at(min(begins) - timedelta(days=1))
    with tempfile.TemporaryDirectory(prefix="reconciler-demo-") as tmp:
        root = Path(tmp)
        code = _run(root, stocks_dir, loaded.stocks, clock)
    sys.exit(code)


def _run(root: Path, stocks_dir: Path, stocks: list[LoadedStock], clock: Clock) -> int:
    emu = Emulator(clock=clock.time, data_path=root / "emulator.json")
    keys = root / "keys"
    keys.mkdir(mode=0o700)
    (keys / "wechatpay_pub_key.pem").write_bytes(emu.wechatpay_public_key_pem())
    merchants = []
    for mchid in sorted({s.stock.merchant for s in stocks}):
        m = DemoMerchant.generate(mchid)
        m.register(emu)
        pem = m.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        key_file = keys / f"{mchid}_key.pem"
        key_file.touch(mode=0o600)
        key_file.write_bytes(pem)
        merchants.append(
            f'  - mchid: "{mchid}"\n    serial_no: {m.serial_no}\n    private_key: {{file: keys/{mchid}_key.pem}}\n'
            f"    wechatpay_public_key: {{file: keys/wechatpay_pub_key.pem}}\n    wechatpay_public_key_id: {emu.wechatpay_public_key_id}\n"
        )
    shutil.copytree(stocks_dir, root / "stocks")
    with emu.serve("127.0.0.1", 0) as server:
        (root / "reconciler.yaml").write_text(
            f"# written by reconciler demo\nstocks: stocks\nstate: state.json\napi:\n  base_url: {server.base_url}\nmerchants:\n"
            + "".join(merchants),
            encoding="utf-8",
        )
        click.echo(
            f"\nemulator: {server.base_url} · clock set to {clock.now().astimezone(BEIJING).isoformat(timespec='seconds')} (one day before the first stock begins) · files in {root}"
        )
        project, diagnostics = load_project(root / "reconciler.yaml")
        if project is None:
            click.echo(render_diagnostics.text(diagnostics), err=True)
            return EXIT_ERROR
        runtime = Runtime(root, {}, clock)
        try:
            ctx = engine.open_context(project, runtime)
            _say("reconciler plan")
            first, state = engine.plan(ctx)
            click.echo(render_text(first, color=sys.stdout.isatty()), nl=False)
            _say("reconciler apply --yes")
            clients = engine.clients_for(ctx, [c.merchant for c in first.changes])
            with ctx.store.lock("demo apply"):
                applier = Applier(
                    ctx.store,
                    state,
                    clients,
                    clock.now,
                    on_result=lambda r: click.echo(
                        f"✓ {r.id}: {r.message}"
                        if r.outcome.value == "succeeded"
                        else f"✗ {r.id}: {r.outcome.value}: {r.message}"
                    ),
                )
                report = applier.apply(first)
            for c in clients.values():
                c.close()
            _say("reconciler plan   # again: everything is in sync")
            second, _ = engine.plan(ctx)
            click.echo(render_text(second, color=sys.stdout.isatty()), nl=False)
        except ReconcilerError as exc:
            click.echo(f"error: {exc}", err=True)
            return EXIT_ERROR
        remote = len(emu.stocks)
    click.echo(
        f"\n{remote} stocks exist in the emulator, {len(stocks)} stock files; a second apply would create nothing."
    )
    return EXIT_OK if report.ok and not second.has_changes and remote == len(stocks) else EXIT_ERROR
