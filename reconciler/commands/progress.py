"""Apply's progress: a live bar on a terminal, plain lines in CI logs.

On a terminal (and with colour allowed) a `rich` progress bar shows done/total, the rate, the
time left, and which merchants' calls wait for a rate limit; each finished stock is printed
above it. Elsewhere (CI logs, pipes) every finished stock is one line, as before, and while
calls wait a line every `interval` seconds says what they wait for, so a 2.5-minute run of
150 favor creates at 60/min never looks stuck.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import click

from reconciler.applier import Result
from reconciler.engine import Waiting

MARKS = {"succeeded": "✓", "failed": "✗", "unresolved": "?", "skipped": "-"}


def result_lines(r: Result, done: int, total: int) -> list[str]:
    lines = [f"[{done}/{total}] {MARKS[r.outcome.value]} {r.id}: {r.message}"]
    if r.suggestion:
        lines.append(f"      next: {r.suggestion}")
    return lines


def waiting_text(waiting: Sequence[Waiting]) -> str:
    """`waiting for the rate limit: favor_create 60/min, merchant 1900000001 (16 calls)`."""
    if not waiting:
        return ""
    parts = [
        f"{w.call} {w.limit_text}, merchant {w.merchant} ({w.count} call{'s' if w.count != 1 else ''})"
        for w in waiting
    ]
    return "waiting for the rate limit: " + "; ".join(parts)


class Progress:
    """Receives each finished stock; `live` chooses the bar or the log lines."""

    def __init__(
        self,
        *,
        live: bool,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.live = live
        self.interval = interval
        self.clock = clock
        self.total = 0
        self.done = 0
        self.started = clock()
        self._waiting: Callable[[], list[Waiting]] = list
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._bar: object | None = None
        self._task: object | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self, total: int, waiting: Callable[[], list[Waiting]]) -> None:
        self.total, self._waiting, self.started = total, waiting, self.clock()
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            bar = Bar(
                TextColumn("applying"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[waiting]}"),
                transient=True,
            )
            self._task = bar.add_task("apply", total=total, rate="", waiting="")
            self._bar = bar
            bar.start()
        self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self._bar is not None:
            self._bar.stop()  # type: ignore[attr-defined]

    # --- events ----------------------------------------------------------------------------

    def result(self, r: Result, total: int) -> None:
        with self._lock:
            self.done += 1
            lines = result_lines(r, self.done, total)
            if self._bar is not None:
                for line in lines:
                    self._bar.console.print(line, markup=False, highlight=False)  # type: ignore[attr-defined]
                self._bar.update(self._task, completed=self.done, rate=self.rate_text())  # type: ignore[attr-defined]
            else:
                for line in lines:
                    click.echo(line)

    def rate_text(self) -> str:
        minutes = max(self.clock() - self.started, 1e-6) / 60
        return f"{self.done / minutes:.1f}/min" if self.done else ""

    def _tick(self) -> None:
        every = 0.5 if self._bar is not None else self.interval
        while not self._stop.wait(every):
            text = waiting_text(self._waiting())
            with self._lock:
                if self._bar is not None:
                    self._bar.update(self._task, waiting=text, rate=self.rate_text())  # type: ignore[attr-defined]
                elif text:
                    click.echo(
                        f"... {self.done}/{self.total} done, {self.rate_text() or 'starting'}; {text}"
                    )
