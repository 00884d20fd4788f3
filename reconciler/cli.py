"""Command-line interface: the only module that prints, and the one place exit codes are chosen."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler import __version__
from reconciler.commands import demo as demo_cmd
from reconciler.commands import emulator_cmd, plan_apply, state_cmd
from reconciler.config import PROJECT_FILE, load_project
from reconciler.loader import load_stocks
from reconciler.render import diagnostics as render_diagnostics
from reconciler.schema import stock_schema_text

EXIT_OK = 0
EXIT_ERROR = 1


@click.group()
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """WeChat Pay coupon stocks (代金券, 商家券) as code: validate, plan, apply."""


def _default_stocks() -> Path:
    """The project's `stocks:` folder when a project file is here, else `stocks/`."""
    project_file = Path(PROJECT_FILE)
    if project_file.exists():
        project, _ = load_project(project_file)
        if project is not None:
            return project.stocks_dir
    return Path("stocks")


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
def validate(paths: tuple[Path, ...], fmt: str) -> None:
    """Check stock files (default: the project's stocks folder, or stocks/) against every rule.

    Reports every problem of every file in one run, as path:line:col: severity: field: message.
    Exits 1 when there is any error, 0 otherwise (warnings alone do not fail).
    """
    result = load_stocks(list(paths) or [_default_stocks()], base=Path.cwd(), keep=False)
    if fmt == "json":
        click.echo(render_diagnostics.json_doc(result.diagnostics, result.files, result.valid))
    else:
        body = (
            render_diagnostics.github(result.diagnostics)
            if fmt == "github"
            else render_diagnostics.text(result.diagnostics)
        )
        if body:
            click.echo(body)
        click.echo(
            render_diagnostics.summary(result.diagnostics, result.files, result.valid),
            err=fmt == "github",
        )
    sys.exit(EXIT_OK if result.ok else EXIT_ERROR)


@cli.command()
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Write here instead of stdout."
)
def schema(output: Path | None) -> None:
    """Print the JSON Schema of a stock file (for the yaml-language-server modeline)."""
    text = stock_schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


cli.add_command(plan_apply.plan)
cli.add_command(plan_apply.apply)
cli.add_command(state_cmd.state)
cli.add_command(emulator_cmd.emulator)
cli.add_command(demo_cmd.demo)
cli.add_command(__import__("reconciler.commands.init_cmd", fromlist=["init"]).init)


def main() -> None:
    cli()
