"""User mistakes as one `error: ...` line and an exit code, never a traceback.

The commands here raise `ReconcilerError`s and let this adapter turn them into what click shows;
they never call sys.exit themselves.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO, Any

import click

from reconciler.errors import ReconcilerError


class UserError(click.ClickException):
    """A ReconcilerError as click shows it: `error: <message>` on stderr, exit code 1 (every
    ReconcilerError's; click keeps the exit code on the class)."""

    def __init__(self, exc: ReconcilerError) -> None:
        super().__init__(str(exc))

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True, file=file)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    try:
        yield
    except ReconcilerError as exc:
        raise UserError(exc) from exc
