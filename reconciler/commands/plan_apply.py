"""`reconciler plan` and `reconciler apply`."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.commands.common import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    color_enabled,
    init_state_option,
    lang_option,
    open_project,
    output_language,
    project_option,
    runtime,
)
from reconciler.errors import ConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from reconciler.applier import Report
    from reconciler.config import ProjectFile
    from reconciler.engine.scope import Scope
    from reconciler.i18n import Lang
    from reconciler.plan import Plan
    from reconciler.state.lock import LockInfo

# The engine, the HTTP client and the renderers are imported where a command runs, so that
# `reconciler --help` and `reconciler validate` start without them.

REFRESH_CHOICES = {"true": "changing", "all": "all", "false": "none"}
"""`--refresh` as a user writes it -> the engine's refresh mode."""

refresh_option = click.option(
    "--refresh",
    type=click.Choice(list(REFRESH_CHOICES)),
    default="true",
    show_default=True,
    help="true: query stocks that can still change; all: every recorded stock; false: plan from the state alone (no credentials needed).",
)


merchant_option = click.option(
    "--merchant",
    "merchants",
    multiple=True,
    metavar="MCHID",
    help="Only this merchant's stocks (repeatable). Scoped runs of different merchants apply at once.",
)


def _scope(
    project: ProjectFile, merchants: tuple[str, ...], paths: tuple[Path, ...]
) -> Scope | None:
    from reconciler.engine.scope import make_scope

    return make_scope(project.root, project.stocks_dir, merchants, paths)


def _plain_url(value: str | None) -> str | None:
    """An http(s) URL with nothing that could end a Markdown link early."""
    from reconciler.render.markdown import PLAIN_URL

    if value is not None and not PLAIN_URL.match(value):
        raise click.BadParameter(
            f"{value!r} is not a plain http(s) URL (no spaces, parentheses or angle brackets)"
        )
    return value


def _render(plan: Plan, fmt: str, note: str | None, lang: Lang, url: str | None) -> str:
    if fmt == "json":
        from reconciler.render.json_doc import render_json

        return render_json(plan)
    if fmt == "markdown":
        from reconciler.render.markdown import render_markdown

        return render_markdown(plan, note=note, lang=lang, full_plan_url=url)
    from reconciler.render.text import render_text

    return render_text(plan, color=color_enabled(), lang=lang)


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))
@project_option
@merchant_option
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
    help="Also write the Markdown rendering here, folded to fit a pull-request comment.",
)
@click.option(
    "--summary-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the full Markdown plan here (for the job summary: up to 1 MiB).",
)
@click.option(
    "--plan-url",
    callback=lambda ctx, param, value: _plain_url(value),
    help="Where the full plan is (the CI run's page); the comment links it.",
)
@click.option("--note", help="A line shown at the top of the Markdown rendering.")
@click.option(
    "--detailed-exitcode", is_flag=True, help="Exit 0 with no changes, 1 on error, 2 with changes."
)
@init_state_option
@lang_option
def plan(
    paths: tuple[Path, ...],
    project_path: Path,
    merchants: tuple[str, ...],
    refresh: str,
    out: Path | None,
    fmt: str,
    markdown_out: Path | None,
    note: str | None,
    detailed_exitcode: bool,
    init_state: bool,
    summary_out: Path | None,
    plan_url: str | None,
    lang: str | None,
) -> int:
    """Show what apply would create or change, money first, in Chinese or English.

    PATHS (stock files or folders under the stocks folder) and --merchant scope the plan: it
    covers only those stocks, says so, and a saved scoped plan applies only them.
    """
    from reconciler import engine
    from reconciler.engine.preflight import require_credentials
    from reconciler.render.json_doc import render_json
    from reconciler.render.markdown import SUMMARY_LIMIT, render_markdown

    output_language(lang, None)  # a broken project file is reported in --lang too
    project = open_project(project_path)
    language = output_language(lang, project)
    # Every merchant's credentials first (all problems at once), before the slow loading.
    checked = (
        require_credentials(project, runtime().environ)
        if REFRESH_CHOICES[refresh] != "none"
        else None
    )
    ws = engine.open_workspace(
        project,
        runtime(),
        read_state=True,
        init_state=init_state,
        credentials=checked.credentials if checked else None,
    )
    scope = _scope(project, merchants, paths)
    result = engine.plan(ws, REFRESH_CHOICES[refresh], refresh_note=note or "", scope=scope).plan
    click.echo(_render(result, fmt, note, language, plan_url), nl=fmt != "json")
    if out is not None:
        engine.write_output(out, render_json(result), "plan")
        click.echo(
            f"Saved the plan to {out} ({result.checksum()}); apply it with: reconciler apply {out}",
            err=True,
        )
    if markdown_out is not None:
        comment = render_markdown(result, note=note, lang=language, full_plan_url=plan_url)
        engine.write_output(markdown_out, comment, "Markdown plan")
    if summary_out is not None:
        full = render_markdown(
            result, note=note, lang=language, max_chars=SUMMARY_LIMIT, max_bytes=SUMMARY_LIMIT
        )
        engine.write_output(summary_out, full, "full Markdown plan")
    if result.has_errors:
        return EXIT_ERROR
    return EXIT_CHANGES if detailed_exitcode and result.has_changes else EXIT_OK


@click.command()
@click.argument("targets", nargs=-1, type=click.Path(path_type=Path, exists=True))
@project_option
@merchant_option
@refresh_option
@click.option("--yes", is_flag=True, help="Apply without asking (needed when not on a terminal).")
@click.option(
    "--lock-wait",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for another apply's lock.",
)
@click.option(
    "--show-plan",
    is_flag=True,
    help="With --yes off a terminal, print the whole plan, not only its summary.",
)
@init_state_option
@lang_option
def apply(
    targets: tuple[Path, ...],
    project_path: Path,
    merchants: tuple[str, ...],
    refresh: str,
    yes: bool,
    lock_wait: float,
    show_plan: bool,
    init_state: bool,
    lang: str | None,
) -> int:
    """Create every missing stock and send allowed updates, saving the state after each step.

    With PLAN_FILE, applies exactly that reviewed plan and refuses it if the state, the stock
    files or its age moved on; without it, plans first and asks. Stock paths and --merchant
    scope a run without a plan file (a saved scoped plan keeps its own scope).
    """
    from reconciler import engine
    from reconciler.commands.progress import Progress
    from reconciler.engine.preflight import require_credentials
    from reconciler.i18n import t
    from reconciler.render.text import merchant_line, render_text, summary_line

    plan_files = [t for t in targets if t.is_file() and t.suffix not in (".yaml", ".yml")]
    if len(plan_files) > 1:
        raise ConfigError("give at most one saved plan file")
    plan_file = plan_files[0] if plan_files else None
    paths = tuple(t for t in targets if t not in plan_files)
    output_language(lang, None)  # a broken project file is reported in --lang too
    project = open_project(project_path)
    language = output_language(lang, project)
    scope = _scope(project, merchants, paths)
    checked = require_credentials(project, runtime().environ)
    ws = engine.open_workspace(
        project, runtime(), init_state=init_state, credentials=checked.credentials
    )
    terminal = sys.stdout.isatty()

    def waiting(held: LockInfo) -> None:
        since = held.created_at.isoformat(timespec="seconds")
        click.echo(
            t(
                language,
                "apply.lock_wait",
                seconds=f"{lock_wait:g}",
                holder=held.holder,
                command=held.command,
                since=since,
            ),
            err=True,
        )

    def show(chosen: Plan) -> None:
        if yes and not terminal and not show_plan:
            # CI logs: the reviewed plan is in the pull request; say what is about to happen.
            click.echo(summary_line(chosen, language))
            if chosen.scope is not None:
                click.echo(t(language, "apply.scope", scope=chosen.scope.describe()))
            for row in chosen.totals:
                click.echo(f"  {merchant_line(row, language)}")
            return
        click.echo(render_text(chosen, color=color_enabled(), lang=language))

    def confirm(chosen: Plan) -> bool:
        if plan_file is not None or yes:
            return True
        if not sys.stdin.isatty():
            raise ConfigError(
                "not on a terminal: review the plan and pass --yes, or apply a saved plan file"
            )
        return click.confirm(t(language, "apply.confirm"), default=False)

    progress = Progress(live=terminal and color_enabled(), lang=language)

    def interrupted() -> None:
        click.echo(t(language, "apply.interrupted"), err=True)

    stop = engine.Stop()
    try:
        with engine.stop_on_signals(stop, interrupted):
            applied = engine.apply(
                ws,
                plan_file=plan_file,
                refresh_mode=REFRESH_CHOICES[refresh],
                confirm=confirm,
                lock_wait=lock_wait,
                on_waiting=waiting,
                on_plan=show,
                on_result=progress.result,
                on_start=progress.start,
                stop=stop,
                scope=scope,
            )
    finally:
        progress.stop()
    if applied.report is None:
        click.echo(t(language, "apply.no_changes"))
        return EXIT_OK
    _summarise(applied.report, language)
    _throttled(applied.throttled, language)
    if applied.report.interrupted:
        return EXIT_TERMINATED if stop.signal == signal.SIGTERM else EXIT_INTERRUPTED
    return EXIT_OK if applied.report.ok else EXIT_ERROR


def _throttled(counts: Mapping[tuple[str, str], int], lang: Lang = "en") -> None:
    """Every 429 shown: the client paces below the documented limits, so one means the
    limits or the margin (api.rate_limit_margin) need a look."""
    from reconciler.i18n import t

    total = sum(counts.values())
    if not total:
        return
    sep = ", " if lang == "en" else "，"
    parts = sep.join(f"{m} {call} × {n}" for (m, call), n in sorted(counts.items()))
    click.echo(t(lang, "apply.throttled", total=total, parts=parts), err=True)


def _summarise(report: Report, lang: Lang) -> None:
    from reconciler.applier import Outcome
    from reconciler.commands.progress import result_text
    from reconciler.i18n import MESSAGES, t

    def word(o: Outcome) -> str:
        key = f"outcome.{o.value}"
        return t(lang, key) if key in MESSAGES else o.value

    parts = [f"{report.count(o)} {word(o)}" for o in Outcome if report.count(o)]
    listed = (", " if lang == "en" else "，").join(parts)
    click.echo(t(lang, "apply.finished", parts=listed or t(lang, "apply.nothing")))
    for r in report.results:
        if r.outcome in (Outcome.FAILED, Outcome.UNRESOLVED):
            message = result_text(lang, r.message)
            click.echo(
                t(lang, "apply.failed_line", outcome=word(r.outcome), id=r.id, message=message),
                err=True,
            )
    skipped = [r.id for r in report.results if r.outcome is Outcome.SKIPPED]
    if skipped:
        shown = ", ".join(skipped[:10])
        if len(skipped) > 10:
            shown = t(lang, "apply.and_more", ids=shown, n=len(skipped) - 10)
        click.echo(f"  {t(lang, 'apply.skipped', ids=shown)}", err=True)
    if not report.ok:
        click.echo(t(lang, "apply.left"), err=True)
