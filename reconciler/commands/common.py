"""Shared pieces of the CLI layer: project loading, exit codes, error printing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click

from reconciler.config import PROJECT_FILE, ProjectFile, load_project
from reconciler.engine import PlanInvalid
from reconciler.errors import ReconcilerError
from reconciler.render import diagnostics as render_diagnostics

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_INTERRUPTED = 130

project_option = click.option(
    "--project",
    "project_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=PROJECT_FILE,
    show_default=True,
    help="The project file: stocks, state, API and merchant credential sources.",
)


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def open_project(path: Path) -> ProjectFile:
    """Load the project file or exit with its diagnostics (file:line: field: message)."""
    if not path.exists():
        fail(
            f'{path}: no project file. Create one (see the README, "Project file"), or pass --project'
        )
    project, diagnostics = load_project(path, str(path))
    if diagnostics:
        click.echo(render_diagnostics.text(diagnostics), err=True)
    if project is None:
        sys.exit(EXIT_ERROR)
    return project


def report_error(exc: ReconcilerError) -> NoReturn:
    if isinstance(exc, PlanInvalid):
        click.echo(render_diagnostics.text(exc.diagnostics), err=True)
    fail(str(exc), exc.exit_code)
