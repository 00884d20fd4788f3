"""`reconciler emulator`: the local WeChat Pay on a loopback port."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from reconciler.emulator import Emulator, EmulatorSettings, Faults
from reconciler.runtime import Runtime


@click.command()
@click.option("--port", type=int, default=8765, show_default=True, help="0 picks a free port.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--data",
    "data_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Keep keys, merchants and stocks in this JSON file across restarts.",
)
@click.option(
    "--reuse",
    type=click.Choice(["idempotent", "reject"]),
    default="idempotent",
    show_default=True,
    help="What a reused out_request_no gets (UNCONFIRMED for the real API).",
)
@click.option(
    "--latency-ms",
    type=int,
    default=0,
    show_default=True,
    help="Added to every answer (after the work is done).",
)
def emulator(port: int, host: str, data_path: Path | None, reuse: str, latency_ms: int) -> None:
    """Serve a local WeChat Pay that signs, verifies and validates like the documented API.

    Prints `listening on <url>` once ready. The clock follows RECONCILER_NOW when set.
    """
    runtime = Runtime.from_environment()
    settings = EmulatorSettings(out_request_no_reuse=reuse, faults=Faults(latency_ms=latency_ms))  # type: ignore[arg-type]
    emu = Emulator(settings, clock=runtime.clock.time, data_path=data_path)
    with emu.serve(host, port) as server:
        click.echo(
            f"reconciler emulator listening on {server.base_url} (WeChat Pay key {emu.wechatpay_public_key_id})",
            err=False,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            click.echo("stopped", err=True)
