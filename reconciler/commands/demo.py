"""`reconciler demo`: the whole loop against a local emulator, with no merchant account.

Starts the emulator on a loopback port with fresh keys in a temporary directory, then runs
validate, plan, apply and plan again over the repository's stocks/. The clock is set to one
day before the earliest stock begins, so the example dates never fall into the past and the
demo works on any date.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.commands.common import EXIT_ERROR, EXIT_OK, color_enabled, runtime
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.render import diagnostics as render_diagnostics

if TYPE_CHECKING:
    from reconciler.desired import DesiredStock
    from reconciler.runtime import Clock

# The engine, the emulator and the loader are imported when the demo runs, so that every
# other command starts without them.


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
    help="The stock files to run (the repository's examples by default).",
)
@click.option(
    "--shift-clock/--real-clock",
    default=None,
    help="Set the clock to one day before the first stock begins (the default for the "
    "examples, whose dates are fixed); with --stocks the real clock is used unless this is given.",
)
@click.option(
    "--keep",
    "keep_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the demo's project (keys, reconciler.yaml, state, emulator data) in this new folder.",
)
def demo(stocks_dir: Path, shift_clock: bool | None, keep_dir: Path | None) -> int:
    """Run validate, plan, apply and plan again against a local emulator."""
    from reconciler.kinds import kind_of
    from reconciler.loader import load_stocks
    from reconciler.runtime import Clock
    from reconciler.spec.common import parse_rfc3339

    loaded = load_stocks([stocks_dir], base=runtime().cwd)
    _say(f"reconciler validate {stocks_dir}")
    if loaded.diagnostics:
        click.echo(render_diagnostics.text(loaded.diagnostics))
    click.echo(render_diagnostics.summary(loaded.diagnostics, loaded.files, len(loaded.stocks)))
    if not loaded.ok or not loaded.stocks:
        raise ConfigError(
            "fix the stock files first"
            if loaded.stocks or not loaded.ok
            else f"no stocks under {stocks_dir}"
        )
    if shift_clock is None:
        given = click.get_current_context().get_parameter_source("stocks_dir")
        shift_clock = given is click.core.ParameterSource.DEFAULT
    if shift_clock:
        begins = []
        for s in loaded.stocks:
            kind = kind_of(s.stock.kind)
            begin = kind.begin_time(kind.create_body(s.stock, ""))
            if begin is not None:
                begins.append(parse_rfc3339(begin))
        clock = Clock.starting_at(min(begins) - timedelta(days=1))
    else:
        clock = runtime().clock
    if keep_dir is not None:
        if keep_dir.exists() and any(keep_dir.iterdir()):
            raise ConfigError(f"{keep_dir} is not empty; --keep writes a new folder")
        keep_dir.mkdir(parents=True, exist_ok=True)
        code = _run(keep_dir.resolve(), stocks_dir, loaded.stocks, clock, shifted=shift_clock)
        click.echo(f"The demo's project is kept in {keep_dir}.")
        return code
    with tempfile.TemporaryDirectory(prefix="reconciler-demo-") as tmp:
        return _run(Path(tmp), stocks_dir, loaded.stocks, clock, shifted=shift_clock, kept=False)


DEMO_DELAY = 3.0


def _pause_one(root: Path, stocks_dir: Path, stocks: list[DesiredStock]) -> str | None:
    """Add `status: paused` under `kind:` in the copy of the first running stock of a kind
    with a lifecycle (代金券)."""
    from reconciler.kinds import kind_of

    base = runtime().cwd
    for s in stocks:
        lifecycle = kind_of(s.stock.kind).initial_status is not None
        if not lifecycle or getattr(s.stock, "status", None) != "running":
            continue
        relative = (base / s.file).resolve().relative_to(stocks_dir.resolve())
        path = root / "stocks" / relative
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for i, line in enumerate(lines):
            if line.startswith("kind:"):
                lines.insert(i + 1, "status: paused\n")
                path.write_text("".join(lines), encoding="utf-8")
                return f"stocks/{relative.as_posix()}"
    return None


def _run(
    root: Path,
    stocks_dir: Path,
    stocks: list[DesiredStock],
    clock: Clock,
    *,
    shifted: bool,
    kept: bool = True,
) -> int:
    from cryptography.hazmat.primitives import serialization

    from reconciler import engine
    from reconciler.config import load_project
    from reconciler.emulator import DemoMerchant, Emulator, EmulatorSettings
    from reconciler.planner import BEIJING
    from reconciler.render.text import render_text
    from reconciler.runtime import Runtime

    # WeChat Pay needs about a minute to register a new 代金券 before it can be activated; the
    # demo's emulator takes DEMO_DELAY seconds, and the project waits for that.
    settings = EmulatorSettings(activation_delay_seconds=DEMO_DELAY)
    emu = Emulator(settings, clock=clock.time, data_path=root / "emulator.json")
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
            f"# written by reconciler demo\nstocks: stocks\nstate: state.json\napi:\n  base_url: {server.base_url}\n"
            f"activation: {{delay_seconds: {DEMO_DELAY}, retry_seconds: 1, max_attempts: 5}}\nmerchants:\n"
            + "".join(merchants),
            encoding="utf-8",
        )
        click.echo(
            f"\nemulator: {server.base_url} · clock "
            + (
                f"set to {clock.now().astimezone(BEIJING).isoformat(timespec='seconds')} (one day before the first stock begins)"
                if shifted
                else f"real ({clock.now().astimezone(BEIJING).isoformat(timespec='seconds')})"
            )
            + (f" · files in {root}" if kept else "")
        )
        project, diagnostics = load_project(root / "reconciler.yaml")
        if project is None:
            click.echo(render_diagnostics.text(diagnostics), err=True)
            return EXIT_ERROR
        demo_runtime = Runtime(root, {}, clock)
        color = color_enabled()
        try:
            ws = engine.open_workspace(project, demo_runtime)
            _say("reconciler plan")
            first = engine.plan(ws).plan
            click.echo(render_text(first, color=color), nl=False)
            _say("reconciler apply --yes")
            applied = engine.apply(
                ws,
                on_result=lambda r, total: click.echo(
                    f"✓ {r.id}: {r.message}"
                    if r.outcome.value == "succeeded"
                    else f"✗ {r.id}: {r.outcome.value}: {r.message}"
                ),
            )
            _say("reconciler plan   # again: everything is in sync")
            second = engine.plan(ws).plan
            click.echo(render_text(second, color=color), nl=False)
            paused = _pause_one(root, stocks_dir, stocks)
            if paused is not None:
                _say(f"# one line added to {paused}: status: paused")
                ws = engine.open_workspace(project, demo_runtime)
                _say("reconciler plan")
                click.echo(render_text(engine.plan(ws).plan, color=color), nl=False)
                _say("reconciler apply --yes")
                engine.apply(
                    ws,
                    on_result=lambda r, total: click.echo(
                        f"{'✓' if r.outcome.value == 'succeeded' else '✗'} {r.id}: {r.message}"
                    ),
                )
                second = engine.plan(ws).plan
                click.echo("\nat WeChat Pay (emulated):")
                for entry in sorted(ws.load_state().stocks.values(), key=lambda e: e.id):
                    held = emu.stocks.get(entry.stock_id or "")
                    if held is not None:  # favor says `paused`, busifavor `RUNNING`: one case
                        status = held.status.lower()
                        click.echo(f"  {entry.id}: {entry.kind} {entry.stock_id}, {status}")
        except ReconcilerError as exc:
            click.echo(f"error: {exc}", err=True)
            return EXIT_ERROR
        remote = len(emu.stocks)
    click.echo(
        f"\n{remote} stocks exist in the emulator, {len(stocks)} stock files; a second apply would create nothing."
    )
    ok = applied.report is None or applied.report.ok
    return EXIT_OK if ok and not second.has_changes and remote == len(stocks) else EXIT_ERROR
