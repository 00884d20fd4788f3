"""Run the CLI in this process, through `reconciler.cli.main` (its one error handler).

`invoke(args)` is click's CliRunner around `main`: output captured, environment overridden,
the exit code from `main`. Give `runtime` to inject a clock and a transport (the emulator's
in-memory transport), so a CLI test needs no port and no subprocess.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from click.testing import CliRunner, Result

from reconciler.cli import main
from reconciler.runtime import Runtime


class _Entry:
    """What CliRunner calls: `main`, whose return value becomes the exit code."""

    name = "reconciler"

    def __init__(self, runtime: Runtime | None) -> None:
        self.runtime = runtime

    def main(self, args: Sequence[str], prog_name: str | None = None, **extra: Any) -> NoReturn:
        sys.exit(main(list(args), runtime=self.runtime))


def invoke(
    args: Sequence[str],
    *,
    runtime: Runtime | None = None,
    env: Mapping[str, str | None] | None = None,
    input: str | None = None,
) -> Result:
    """Run `reconciler ARGS`; an exception that escapes `main` fails the test."""
    result = CliRunner().invoke(
        _Entry(runtime),  # type: ignore[arg-type]
        list(args),
        env=env,
        input=input,
        catch_exceptions=True,
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result
