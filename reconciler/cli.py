"""Command-line interface: the commands, and `main`, the one place errors become exit codes.

`main` builds the Runtime once (the only reader of the environment and the clock) and hands it
to the commands through click's context object; tests call `main(argv, runtime=...)` in
process with the emulator's transport. Every error ends here: a user or API error as one line
and exit 1, Ctrl-C as 130, anything unexpected as one line asking for a report and exit 3
(with the traceback only under `--debug`).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler import __version__
from reconciler.commands import demo as demo_cmd
from reconciler.commands import doctor, emulator_cmd, import_cmd, init_cmd, plan_apply, state_cmd
from reconciler.commands.common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNEXPECTED,
    PROJECT_FILE,
    lang_option,
    runtime,
)
from reconciler.errors import DiagnosedError, ReconcilerError
from reconciler.render import diagnostics as render_diagnostics

if TYPE_CHECKING:
    from reconciler.i18n import Lang
    from reconciler.runtime import Runtime

# Every command imports what it needs when it runs (the engine, the HTTP client, the emulator,
# the schema's models), so `reconciler --help` starts in a fraction of the time.


@click.group(context_settings={"max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
@click.option(
    "--debug", is_flag=True, help="On an unexpected error, print the traceback (for a report)."
)
@click.option(
    "--no-color", is_flag=True, help="No colour and no live progress bar (as NO_COLOR does)."
)
def cli(debug: bool, no_color: bool) -> None:
    """WeChat Pay coupon stocks (代金券, 商家券) as code: validate, plan, apply.

    Shell completion: eval "$(_RECONCILER_COMPLETE=bash_source reconciler)" (zsh_source and
    fish_source for the other shells).
    """


def _default_stocks() -> Path:
    """The project's `stocks:` folder when a project file is here, else `stocks/`."""
    project_file = runtime().cwd / PROJECT_FILE
    if project_file.exists():
        from reconciler.config import load_project

        project, _ = load_project(project_file)
        if project is not None:
            return project.stocks_dir
    return Path("stocks")


def _language(option: str | None) -> Lang:
    """`--lang`, else the `language:` of a project file here, else the locale."""
    from reconciler.i18n import resolve_lang

    configured = None
    if option is None and (runtime().cwd / PROJECT_FILE).exists():
        from reconciler.config import load_project

        project, _ = load_project(runtime().cwd / PROJECT_FILE)
        configured = project.project.language if project is not None else None
    return resolve_lang(option, configured, runtime().environ)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="github emits GitHub Actions annotations on the offending lines.",
)
@lang_option
def validate(paths: tuple[Path, ...], fmt: str, lang: str | None) -> int:
    """Check stock files (default: the project's stocks folder, or stocks/) against every rule.

    Reports every problem of every file in one run, as path:line:col: severity: field: message.
    Exits 1 when there is any error, 0 otherwise (warnings alone do not fail).
    """
    from reconciler import engine

    result = engine.validate(list(paths) or [_default_stocks()], runtime().cwd)
    language = _language(lang)
    if fmt == "json":
        click.echo(render_diagnostics.json_doc(result.diagnostics, result.files, result.valid))
    else:
        body = (
            render_diagnostics.github(result.diagnostics, language)
            if fmt == "github"
            else render_diagnostics.text(result.diagnostics, language)
        )
        if body:
            click.echo(body)
        click.echo(
            render_diagnostics.summary(result.diagnostics, result.files, result.valid, language),
            err=fmt == "github",
        )
    return EXIT_OK if result.ok else EXIT_ERROR


@cli.command()
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout."
)
def schema(output: Path | None) -> int:
    """Print the JSON Schema of a stock file (for the yaml-language-server modeline)."""
    from reconciler.schema import stock_schema_text

    text = stock_schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        from reconciler import engine

        engine.write_output(output, text, "schema")
        click.echo(f"wrote {output}", err=True)
    return EXIT_OK


cli.add_command(plan_apply.plan)
cli.add_command(plan_apply.apply)
cli.add_command(state_cmd.state)
cli.add_command(emulator_cmd.emulator)
cli.add_command(demo_cmd.demo)
cli.add_command(init_cmd.init)
cli.add_command(doctor.doctor)
cli.add_command(import_cmd.import_)


SUMMARIES = {
    "validate": "Check stock files against every documented rule.",
    "plan": "Show what apply would create or change, money first.",
    "apply": "Create and update stocks, saving the state after each step.",
    "state": "Inspect and repair the state (never creates a stock).",
    "schema": "Print the JSON Schema of a stock file.",
    "init": "Write a new project: reconciler.yaml, stocks, workflows.",
    "emulator": "Serve a local WeChat Pay for trying and testing.",
    "demo": "Run the whole loop against a local emulator.",
    "doctor": "Check every merchant's credentials and say what is ready.",
    "list": "One line per recorded stock.",
    "show": "Everything recorded about one stock, as JSON.",
    "rm": "Stop tracking a stock (it stays at WeChat Pay).",
    "mv": "Rename a stock's id in the state.",
    "import": "Write the stock files of stocks that already exist.",
    "state import": "Adopt an existing remote stock for a stock file.",
    "unlock": "Break a stale lock left by a dead apply.",
    "pull": "Export the state as one JSON state file.",
    "push": "Load a JSON state file into the configured backend.",
    "add-merchant": "Register a merchant in an emulator data file.",
    "set-balance": "Set a merchant's balance in an emulator data file.",
    "seed": "Add stocks made elsewhere to an emulator data file.",
}
"""One line per command for `--help` listings, so none is cut off mid-sentence (a subcommand
whose name is also a command's is keyed with its group: "state import")."""


def _summarise(group: click.Group, prefix: str = "") -> None:
    for name, command in group.commands.items():
        summary = SUMMARIES.get(prefix + name, SUMMARIES.get(name))
        if summary is not None and command.short_help is None:
            command.short_help = summary
        if isinstance(command, click.Group):
            _summarise(command, f"{prefix}{name} ")


_summarise(cli)


def main(argv: Sequence[str] | None = None, runtime: Runtime | None = None) -> int:
    """Run one command; return its exit code. Never raises, never prints a secret."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        from reconciler.runtime import Runtime

        rt = runtime or Runtime.from_environment()
        code = cli.main(args, prog_name="reconciler", standalone_mode=False, obj=rt)
        return code if isinstance(code, int) else EXIT_OK
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort as exc:
        # click turns Ctrl-C (outside apply's own handling) and end of input into Abort.
        click.echo(
            "Interrupted." if isinstance(exc.__cause__, KeyboardInterrupt) else "Aborted.", err=True
        )
        return EXIT_INTERRUPTED if isinstance(exc.__cause__, KeyboardInterrupt) else EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return EXIT_INTERRUPTED
    except DiagnosedError as exc:
        click.echo(render_diagnostics.text(exc.diagnostics, exc.lang), err=True)
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except ReconcilerError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except Exception as exc:  # a defect: say where, never what (a message may hold data)
        frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
        where = f" in {Path(frame.filename).name}:{frame.lineno}" if frame else ""
        click.echo(
            f"error: unexpected {type(exc).__name__}{where}; this is a bug in reconciler "
            f"{__version__}. Please report it"
            + (
                ", with the traceback below."
                if debug
                else ", with the output of the same command run with --debug."
            ),
            err=True,
        )
        if debug:
            traceback.print_exception(exc)
        return EXIT_UNEXPECTED


def entry_point() -> None:
    """The `reconciler` console script."""
    sys.exit(main())
