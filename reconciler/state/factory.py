"""Which backend keeps the state: the project file's `state:` setting, opened."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.config import ProjectFile
from reconciler.parsecache import open_checked_states
from reconciler.state.backend import StateBackend, WallClock
from reconciler.state.store import StateStore


def open_backend(
    project: ProjectFile, clock: WallClock, environ: Mapping[str, str], *, journal: bool = True
) -> StateBackend:
    """The configured state backend: the local state file (with its journal) by default, or
    PostgreSQL with `state: {postgres: ...}` (the DSN read from its variable or file now)."""
    setting = project.postgres_state
    if setting is None:
        checked = open_checked_states(project.root, environ)
        return StateStore(project.state_path, clock, journal=journal, checked=checked)
    from reconciler.state.postgres import PostgresStateStore

    dsn, source = project.postgres_dsn(environ)
    return PostgresStateStore(dsn, schema=setting.schema_, dsn_source=source, clock=clock)
