"""Shared pieces of the commands: exit codes, the project option, the runtime from the context.

Commands parse their arguments, call the engine, render, and return an exit code. They raise
`ReconcilerError` for anything a user must act on; `reconciler.cli.main` turns every error into
one line and an exit code, in one place.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from reconciler.errors import ConfigError, DiagnosedError

if TYPE_CHECKING:
    from reconciler.config import ProjectFile
    from reconciler.i18n import Lang
    from reconciler.runtime import Runtime

# Heavy modules (the project file's models, the HTTP client, the engine, the emulator) are
# imported inside the commands that use them, so `reconciler --help` and `validate` start
# without them. tests/test_layers.py checks what `reconciler --help` loads.

PROJECT_FILE = "reconciler.yaml"
"""reconciler.config.PROJECT_FILE, repeated so the option below needs no config import."""

EXIT_OK = 0
EXIT_ERROR = 1
"""A user or API error: the message says what to do."""
EXIT_CHANGES = 2
"""`plan --detailed-exitcode` with changes to apply."""
EXIT_UNEXPECTED = 3
"""A defect in reconciler: the message asks for a report."""
EXIT_INTERRUPTED = 130
"""Ctrl-C (128 + SIGINT)."""
EXIT_TERMINATED = 143
"""SIGTERM, as CI runners send on cancel (128 + SIGTERM)."""

project_option = click.option(
    "--project",
    "project_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=PROJECT_FILE,
    show_default=True,
    help="The project file: stocks, state, API and merchant credential sources.",
)


init_state_option = click.option(
    "--init-state",
    is_flag=True,
    help="Start a new, empty state although a backup, lock or temporary file of an old one is there (the old files are kept).",
)


class ProjectInvalid(DiagnosedError):
    """The project file has errors."""


def runtime() -> Runtime:
    """The Runtime `main` built once for this invocation (tests hand in their own)."""
    from reconciler.runtime import Runtime

    obj = click.get_current_context().find_root().obj
    if not isinstance(obj, Runtime):
        raise RuntimeError("the command was invoked without a Runtime; call reconciler.cli.main")
    return obj


def open_project(path: Path) -> ProjectFile:
    """Load the project file, relative to the runtime's working directory."""
    from reconciler.config import load_project

    full = path if path.is_absolute() else runtime().cwd / path
    if not full.exists():
        raise ConfigError(
            f'{path}: no project file. Create one (see the README, "Project file"), or pass --project'
        )
    project, diagnostics = load_project(full, str(path))
    if project is None:
        raise ProjectInvalid(f"{path}: the project file has errors", diagnostics)
    if diagnostics:
        from reconciler.render import diagnostics as render_diagnostics

        click.echo(render_diagnostics.text(diagnostics), err=True)
    return project


def color_enabled() -> bool:
    """Colour (and the live progress bar) only on a terminal, and never with `--no-color` or
    NO_COLOR set to anything (https://no-color.org)."""
    root = click.get_current_context().find_root()
    if root.params.get("no_color") or runtime().environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


_LANG_KEY = "reconciler.lang"
F = TypeVar("F", bound=Callable[..., Any])


def lang_option(command: F) -> F:
    """`--lang`. Files with problems found after the command has chosen its language
    (`output_language`) are reported in that language."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> object:
        try:
            return command(*args, **kwargs)
        except DiagnosedError as exc:
            exc.lang = click.get_current_context().meta.get(_LANG_KEY, exc.lang)
            raise

    return click.option(
        "--lang",
        type=click.Choice(["zh", "en"]),
        default=None,
        help="Language of the output (default: reconciler.yaml's language:, then LANG).",
    )(cast("F", run))


def output_language(option: str | None, project: ProjectFile | None) -> Lang:
    """`--lang`, else the project's `language:`, else the locale (the runtime's LANG)."""
    from reconciler.i18n import resolve_lang

    configured = project.project.language if project is not None else None
    chosen = resolve_lang(option, configured, runtime().environ)
    click.get_current_context().meta[_LANG_KEY] = chosen
    return chosen
