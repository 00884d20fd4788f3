"""Apply's progress: a live bar on a terminal, plain lines in CI logs.

On a terminal (and with colour allowed) a `rich` progress bar shows done/total, the rate, the
time left, and which merchants' calls wait for a rate limit; each finished stock is printed
above it. Elsewhere (CI logs, pipes) every finished stock is one line, as before, and while
calls wait a line every `interval` seconds says what they wait for, so a 2.5-minute run of
150 favor creates at 60/min never looks stuck.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Sequence

import click

from reconciler.applier import Result
from reconciler.engine import Waiting
from reconciler.i18n import MESSAGES, Lang, t

MARKS = {"succeeded": "✓", "failed": "✗", "unresolved": "?", "skipped": "-"}


@functools.cache
def _result_patterns() -> list[tuple[re.Pattern[str], str]]:
    """Each `result.*` catalogue entry's English as a pattern whose groups are its values;
    the ones with the most fixed words first, so `interrupted before the {op} was sent` is
    tried before `interrupted before {op}`."""
    out = []
    for key, (en, _) in MESSAGES.items():
        if not key.startswith("result."):
            continue
        pieces = re.split(r"\{(\w+)\}", en)
        pattern = "".join(
            re.escape(p) if i % 2 == 0 else f"(?P<{p}>.+?)" for i, p in enumerate(pieces)
        )
        fixed = sum(len(p) for p in pieces[::2])
        out.append((fixed, re.compile(pattern, re.DOTALL), key))
    out.sort(key=lambda row: -row[0])
    return [(pattern, key) for _, pattern, key in out]


def result_text(lang: Lang, text: str) -> str:
    """An apply result's message (the applier's English, parts joined by "; ") in `lang`:
    each part that matches a `result.*` catalogue entry is shown in that language with the
    same values; anything else (WeChat Pay's own words) as it came. English is unchanged."""
    if lang == "en" or not text:
        return text
    parts = text.split("; ")
    shown, i = [], 0
    while i < len(parts):
        # The longest run of parts that one entry matches (a value may hold "; " itself).
        for j in range(len(parts), i, -1):
            said = _translated(lang, "; ".join(parts[i:j]))
            if said is not None:
                shown.append(said)
                i = j
                break
        else:
            shown.append(parts[i])
            i += 1
    return "；".join(shown)


def _translated(lang: Lang, part: str) -> str | None:
    for pattern, key in _result_patterns():
        found = pattern.fullmatch(part)
        if found is not None:
            return t(lang, key, **found.groupdict())
    return None


def result_lines(r: Result, done: int, total: int, lang: Lang = "en") -> list[str]:
    lines = [f"[{done}/{total}] {MARKS[r.outcome.value]} {r.id}: {result_text(lang, r.message)}"]
    if r.suggestion:
        lines.append(t(lang, "apply.next", suggestion=result_text(lang, r.suggestion)))
    return lines


def waiting_text(waiting: Sequence[Waiting], lang: Lang = "en") -> str:
    """`waiting for the rate limit: favor_create 60/min, merchant 1900000001 (16 calls)`."""
    if not waiting:
        return ""
    parts = [
        t(
            lang,
            "apply.waiting_one",
            call=w.call,
            limit=w.limit_text,
            merchant=w.merchant,
            count=w.count,
            s="s" if w.count != 1 else "",
        )
        for w in waiting
    ]
    return t(lang, "apply.waiting", parts=("; " if lang == "en" else "；").join(parts))


class Progress:
    """Receives each finished stock; `live` chooses the bar or the log lines."""

    def __init__(
        self,
        *,
        live: bool,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        lang: Lang = "en",
    ) -> None:
        self.live = live
        self.lang: Lang = lang
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
                TextColumn(t(self.lang, "apply.applying")),
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
            lines = result_lines(r, self.done, total, self.lang)
            if self._bar is not None:
                for line in lines:
                    self._bar.console.print(line, markup=False, highlight=False)  # type: ignore[attr-defined]
                self._bar.update(self._task, completed=self.done, rate=self.rate_text())  # type: ignore[attr-defined]
            else:
                for line in lines:
                    click.echo(line)

    def rate_text(self) -> str:
        minutes = max(self.clock() - self.started, 1e-6) / 60
        return t(self.lang, "apply.rate", rate=f"{self.done / minutes:.1f}") if self.done else ""

    def _tick(self) -> None:
        every = 0.5 if self._bar is not None else self.interval
        while not self._stop.wait(every):
            text = waiting_text(self._waiting(), self.lang)
            with self._lock:
                if self._bar is not None:
                    self._bar.update(self._task, waiting=text, rate=self.rate_text())  # type: ignore[attr-defined]
                elif text:
                    rate = self.rate_text() or t(self.lang, "apply.starting")
                    click.echo(
                        t(
                            self.lang,
                            "apply.ticker",
                            done=self.done,
                            total=self.total,
                            rate=rate,
                            waiting=text,
                        )
                    )
