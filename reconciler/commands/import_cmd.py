"""`reconciler import KIND [STOCK_ID...]`: write the files of stocks that already exist.

Reading thousands of stocks takes minutes at the documented rate limits: on a terminal a live
bar shows stocks read of the total; elsewhere (CI logs, pipes) a line every `LINE_EVERY`
stocks or every 30 seconds, whichever comes first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import click

from reconciler.commands.common import (
    EXIT_OK,
    color_enabled,
    init_state_option,
    open_project,
    project_option,
    runtime,
)

LINE_EVERY = 100
"""Off a terminal, a progress line after every this many stocks read."""
BEIJING = timezone(timedelta(hours=8))


class ImportProgress:
    """Stocks read of the total: a rich bar (`live`) or a line every `every` stocks or
    `interval` seconds."""

    def __init__(
        self,
        *,
        live: bool,
        every: int = LINE_EVERY,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        echo: Callable[[str], None] = click.echo,
    ) -> None:
        self.live, self.every, self.interval, self.clock, self.echo = (
            live,
            every,
            interval,
            clock,
            echo,
        )
        self._lock = threading.Lock()
        self._printed = 0
        self._last = clock()
        self._started = self._last
        self._bar: Any = None
        self._task: Any = None

    def __call__(self, done: int, total: int) -> None:
        """`done` stocks read of the `total` named so far (it grows while the list is read)."""
        with self._lock:
            if self.live:
                self._bar_update(done, total)
                return
            now = self.clock()
            if done == self._printed:
                return
            if (
                done // self.every > self._printed // self.every
                or now - self._last >= self.interval
            ):
                self._printed, self._last = done, now
                rate = done / max((now - self._started) / 60, 1e-6)
                self.echo(f"... read {done}/{total} stocks ({rate:.0f}/min)")

    def _bar_update(self, done: int, total: int) -> None:
        if self._bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(
                TextColumn("importing"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
            )
            self._task = self._bar.add_task("import", total=total)
            self._bar.start()
        self._bar.update(self._task, completed=done, total=total)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _since(value: datetime | None) -> datetime | None:
    """A date or time without an offset is Beijing time (WeChat Pay's)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=BEIJING)


@click.command("import")
@click.argument("kind")
@click.argument("stock_ids", nargs=-1)
@click.option("--merchant", required=True, help="The merchant (mchid) whose stocks to import.")
@click.option(
    "--created-since",
    type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
    help="Only stocks created since (Beijing time); with the kind's list.",
)
@click.option(
    "--status",
    type=click.Choice(["unactivated", "audit", "running", "stoped", "paused"]),
    help="Only stocks in this status (WeChat Pay's spelling); with the kind's list.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder for the files, under the stocks folder (default: stocks/KIND).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the files that would be written; write nothing."
)
@project_option
@init_state_option
def import_(
    kind: str,
    stock_ids: tuple[str, ...],
    merchant: str,
    created_since: datetime | None,
    status: str | None,
    out: Path | None,
    dry_run: bool,
    project_path: Path,
    init_state: bool,
) -> int:
    """Write one stock file per existing stock of KIND and track it in the state.

    A 代金券 (favor) merchant's stocks come from WeChat Pay's list (filtered by
    --created-since and --status), or name them; 商家券 (busifavor) has no list, so name
    the STOCK_IDs. Nothing is sent that changes a stock. Fields WeChat Pay does not return
    are marked in the files and never shown as drift until you set them. Stocks already
    tracked are skipped; any conflict (an existing file, an id in use) stops the import
    before anything is written.
    """
    from reconciler import engine
    from reconciler.engine.importing import ImportRequest, import_stocks

    project = open_project(project_path)
    if not dry_run:
        # A project that has no stock yet: the files go into a new stocks folder.
        project.stocks_dir.mkdir(parents=True, exist_ok=True)
    ws = engine.open_workspace(project, runtime(), init_state=init_state)
    request = ImportRequest(
        kind=kind,
        merchant=merchant,
        stock_ids=stock_ids,
        created_since=_since(created_since),
        status=status,
        out=out,
        dry_run=dry_run,
    )
    progress = ImportProgress(live=color_enabled())
    stop = engine.Stop()

    def interrupted() -> None:
        click.echo(
            "Interrupted: no new request starts; nothing will be written (Ctrl-C again to abort).",
            err=True,
        )

    if not stock_ids:
        click.echo(f"Listing merchant {merchant}'s {kind} stocks ...", err=True)
    try:
        with engine.stop_on_signals(stop, interrupted):
            result = import_stocks(ws, request, progress, stop.event)
    finally:
        progress.stop()
    for stock_id, owner in result.skipped:
        click.echo(f"- {stock_id}: already tracked as {owner!r}; skipped")
    for stock_id, why in result.not_imported:
        click.echo(
            f"! {stock_id}: not imported: {why}. Write its file by hand, then `reconciler state import ID {stock_id}`",
            err=True,
        )
    if dry_run:
        for f in result.files:
            click.echo(f"--- {f.file} ({'kept, ' if f.reused else ''}stock_id {f.stock_id})")
            click.echo(f.text, nl=False)
        click.echo(
            f"Dry run: {len(result.files)} file(s) would be written, {len(result.skipped)} stock(s) skipped, {len(result.not_imported)} not imported; nothing was written."
        )
        return EXIT_OK
    for f in result.files:
        note = f"; {len(f.unknown)} field(s) not returned by WeChat Pay" if f.unknown else ""
        click.echo(f"+ {f.file}: {f.stock_id} as {f.id!r}{note}")
    serial = f" (state serial {result.serial})" if result.serial is not None else ""
    click.echo(
        f"Imported {len(result.files)} stock(s){serial}, skipped {len(result.skipped)}, not imported {len(result.not_imported)}; nothing was sent to WeChat Pay. Run `reconciler plan`: it should show no changes."
    )
    return EXIT_OK
