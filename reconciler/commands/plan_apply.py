"""`reconciler plan` and `reconciler apply`."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from reconciler import engine
from reconciler.applier import Applier, Outcome, Report, Result
from reconciler.commands.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    fail,
    open_project,
    project_option,
    report_error,
)
from reconciler.errors import ReconcilerError
from reconciler.plan import Plan
from reconciler.render.json_doc import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import render_text
from reconciler.runtime import Runtime
from reconciler.state import State

REFRESH_CHOICES = {
    "true": "changing",
    "changing": "changing",
    "false": "none",
    "none": "none",
    "all": "all",
}

refresh_option = click.option(
    "--refresh",
    type=click.Choice(sorted(REFRESH_CHOICES)),
    default="true",
    show_default=True,
    help="true: query stocks that can still change; all: every recorded stock; false: plan from the state alone (no credentials needed).",
)


def _render(plan: Plan, fmt: str, note: str | None) -> str:
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan, note=note)
    return render_text(plan, color=sys.stdout.isatty())


@click.command()
@project_option
@refresh_option
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Save the plan (JSON, checksummed) for `reconciler apply PLAN`.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option(
    "--markdown-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the Markdown rendering here (PR comment, job summary).",
)
@click.option("--note", help="A line shown at the top of the Markdown rendering.")
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 1 on error, 2 with changes."
)
def plan(
    project_path: Path,
    refresh: str,
    out: Path | None,
    fmt: str,
    markdown_out: Path | None,
    note: str | None,
    detailed_exitcode: bool,
) -> None:
    """Show what apply would create or change, with money in fen and yuan."""
    project = open_project(project_path)
    try:
        ctx = engine.open_context(project, Runtime.from_environment(), read_state=True)
        result, _ = engine.plan(ctx, REFRESH_CHOICES[refresh], refresh_note=note or "")
    except ReconcilerError as exc:
        report_error(exc)
    click.echo(_render(result, fmt, note), nl=fmt != "json")
    if out is not None:
        out.write_text(render_json(result), encoding="utf-8")
        click.echo(
            f"Saved the plan to {out} ({result.checksum()}); apply it with: reconciler apply {out}",
            err=True,
        )
    if markdown_out is not None:
        markdown_out.write_text(render_markdown(result, note=note), encoding="utf-8")
    if result.has_errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK)


@click.command()
@click.argument(
    "plan_file", required=False, type=click.Path(path_type=Path, dir_okay=False, exists=True)
)
@project_option
@refresh_option
@click.option("--yes", is_flag=True, help="Apply without asking (needed when not on a terminal).")
@click.option(
    "--lock-wait",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for another apply's lock.",
)
def apply(
    plan_file: Path | None, project_path: Path, refresh: str, yes: bool, lock_wait: float
) -> None:
    """Create every missing stock and send allowed updates, saving the state after each step.

    With PLAN_FILE, applies exactly that reviewed plan and refuses it if the state, the stock
    files or its age moved on; without it, plans first and asks.
    """
    project = open_project(project_path)
    runtime = Runtime.from_environment()
    try:
        ctx = engine.open_context(project, runtime)
        held = ctx.store.read_lock() if lock_wait > 0 else None
        if held is not None:
            click.echo(
                f"Waiting up to {lock_wait:g} s for the lock held by {held.holder} "
                f"({held.command}, since {held.created_at.isoformat(timespec='seconds')})...",
                err=True,
            )
        with ctx.store.lock("apply", wait_seconds=lock_wait):
            state = ctx.store.load(create_if_missing=True)
            if plan_file is not None:
                chosen = engine.load_plan_file(plan_file)
                engine.check_fresh(
                    chosen,
                    state,
                    engine.desired_digest(ctx.desired),
                    runtime.clock.now(),
                    project.project.plan_max_age_minutes,
                )
            else:
                chosen, state = engine.plan(ctx, REFRESH_CHOICES[refresh])
                click.echo(render_text(chosen, color=sys.stdout.isatty()))
            if chosen.has_errors:
                fail(
                    "the plan has errors (marked ✗ above or in the plan); fix them, then plan again"
                )
            if not chosen.has_changes:
                click.echo("No changes to apply.")
                sys.exit(EXIT_OK)
            if plan_file is None and not yes:
                if not sys.stdin.isatty():
                    fail(
                        "not on a terminal: review the plan and pass --yes, or apply a saved plan file"
                    )
                if not click.confirm("Apply these changes?", default=False):
                    fail("nothing applied")
            report = _run(ctx, state, chosen)
    except ReconcilerError as exc:
        report_error(exc)
    _summarise(report)
    if report.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if report.ok else EXIT_ERROR)


def _run(ctx: engine.Context, state: State, chosen: Plan) -> Report:
    acting = [c for c in chosen.changes if c.operations]
    clients = engine.clients_for(ctx, [c.merchant for c in acting])
    stop = threading.Event()
    counter = {"done": 0}
    lock = threading.Lock()

    def on_result(r: Result) -> None:
        with lock:
            counter["done"] += 1
            mark = {"succeeded": "✓", "failed": "✗", "unresolved": "?", "skipped": "-"}[
                r.outcome.value
            ]
            click.echo(f"[{counter['done']}/{len(acting)}] {mark} {r.id}: {r.message}")
            if r.suggestion:
                click.echo(f"      next: {r.suggestion}")

    def interrupt(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        click.echo(
            "Interrupted: finishing the requests in flight and saving the state (Ctrl-C again to abort).",
            err=True,
        )

    previous = (
        signal.signal(signal.SIGINT, interrupt)
        if threading.current_thread() is threading.main_thread()
        else None
    )
    try:
        applier = Applier(
            ctx.store,
            state,
            clients,
            ctx.runtime.clock.now,
            on_result=on_result,
            stop=stop,
            concurrency=ctx.project.project.concurrency,
        )
        return applier.apply(chosen)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        for c in clients.values():
            c.close()


def _summarise(report: Report) -> None:
    parts = [f"{report.count(o)} {o.value}" for o in Outcome if report.count(o)]
    click.echo(f"Apply finished: {', '.join(parts) or 'nothing to do'}.")
    for r in report.results:
        if r.outcome in (Outcome.FAILED, Outcome.UNRESOLVED):
            click.echo(f"  {r.outcome.value}: {r.id}: {r.message}", err=True)
    if not report.ok:
        click.echo(
            "The state holds everything that succeeded; run `reconciler plan` to see what is left.",
            err=True,
        )


__all__ = ["EXIT_ERROR", "apply", "plan"]
