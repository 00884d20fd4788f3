"""One exception tree. Each error carries the fields a user needs to act on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.diagnostics import Diagnostic

if TYPE_CHECKING:
    from reconciler.i18n import Lang


class ReconcilerError(Exception):
    """Base of every error the tool raises on purpose; the CLI maps these to exit codes."""

    exit_code = 1


class ConfigError(ReconcilerError):
    """A project file, stock file or credential setting is wrong; the message says where."""


class StateError(ReconcilerError):
    """The state file is missing, corrupt, locked or stale; the message says the way out."""


class ApiError(ReconcilerError):
    """Base for failures talking to WeChat Pay (or the emulator)."""


class DiagnosedError(ReconcilerError):
    """Files with problems: each one is a diagnostic (file:line:col, field, message), printed
    before the one-line error."""

    def __init__(self, message: str, diagnostics: list[Diagnostic]) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics
        self.lang: Lang = "en"
        """The language the diagnostics are shown in (the command's, once it knows it)."""
