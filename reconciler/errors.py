"""One exception tree. Each error carries the fields a user needs to act on it."""

from __future__ import annotations


class ReconcilerError(Exception):
    """Base of every error the tool raises on purpose; the CLI maps these to exit codes."""

    exit_code = 1


class ConfigError(ReconcilerError):
    """A project file, stock file or credential setting is wrong; the message says where."""


class StateError(ReconcilerError):
    """The state file is missing, corrupt, locked or stale; the message says the way out."""


class ApiError(ReconcilerError):
    """Base for failures talking to WeChat Pay (or the emulator)."""
