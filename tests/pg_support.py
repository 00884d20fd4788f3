"""A PostgreSQL for the tests: the one named by RECONCILER_TEST_POSTGRES_DSN (what `.ci/run`
starts), or else a throwaway cluster started here from Debian's binaries (initdb and pg_ctl
under /usr/lib/postgresql/*/bin), listening only on a unix socket in a temporary folder.
Where neither is possible the tests that need it are skipped, with the reason.

initdb refuses to run as root, so as root the cluster is run by the `postgres` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from reconciler.state.backend import StateMissingError
from reconciler.state.lock import LockInfo
from reconciler.state.model import State
from reconciler.state.store import StateStore

if TYPE_CHECKING:
    from reconciler.state.postgres import PostgresStateStore
    from tests.e2e_support import Workspace

DSN_VARIABLE = "RECONCILER_TEST_POSTGRES_DSN"


def find_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), reverse=True)
    if found:
        return Path(found[0]).parent
    which = shutil.which("pg_ctl")
    return Path(which).parent if which else None


def _as_cluster_user(args: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return args
    return ["runuser", "-u", "postgres", "--", *args]


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a cluster in a temporary folder; yields its DSN; stops and deletes it after.
    Raises RuntimeError saying why when it cannot be started."""
    with cluster() as started:
        yield started.dsn


class Cluster:
    """A running throwaway cluster: its DSN, and a restart as an operator would do it."""

    def __init__(self, dsn: str, pg_ctl: list[str], data: Path) -> None:
        self.dsn = dsn
        self._pg_ctl = pg_ctl
        self._data = data

    def restart(self, mode: str = "fast") -> None:
        """`pg_ctl restart`: every connection is ended; returns once the server accepts
        connections again."""
        run = subprocess.run(
            _as_cluster_user([*self._pg_ctl, "-D", str(self._data), "-m", mode, "-w", "restart"]),
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed: {run.stderr.strip()[-300:]}")


@contextlib.contextmanager
def cluster() -> Iterator[Cluster]:
    """`throwaway_cluster`, yielding the Cluster (for tests that restart it)."""
    bin_dir = find_bin()
    if bin_dir is None:
        raise RuntimeError("no PostgreSQL binaries (pg_ctl) found")
    if os.geteuid() == 0:
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            raise RuntimeError("running as root and there is no `postgres` user") from None
    folder = Path(tempfile.mkdtemp(prefix="reconciler-pg-"))
    try:
        if os.geteuid() == 0:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        data = folder / "data"
        run = subprocess.run(
            _as_cluster_user(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(data),
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise RuntimeError(f"initdb failed: {run.stderr.strip()[-500:]}")
        options = f"-k {folder} -c listen_addresses='' -c max_connections=60"
        run = subprocess.run(
            _as_cluster_user(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(folder / "log"),
                    "-w",
                    "-t",
                    "30",
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            log = (
                (folder / "log").read_text(errors="replace")[-500:]
                if (folder / "log").exists()
                else ""
            )
            raise RuntimeError(f"pg_ctl start failed: {run.stderr.strip()[-300:]} {log}")
        try:
            yield Cluster(
                f"host={folder} dbname=postgres user=postgres",
                [str(bin_dir / "pg_ctl"), "-o", options, "-l", str(folder / "log")],
                data,
            )
        finally:
            subprocess.run(
                _as_cluster_user(
                    [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
                ),
                capture_output=True,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def fresh_schema(dsn: str, name: str) -> str:
    """Drop `name` if it exists, so a test starts from nothing; returns it."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
    return name


# --- a workspace whose state is in PostgreSQL ---------------------------------------------------

STATE_DSN_VARIABLE = "RECONCILER_TEST_STATE_DSN"
_postgres_states: dict[Path, tuple[str, str]] = {}
"""Project root -> (DSN, schema) of the workspaces whose state `use_postgres` moved there."""


def use_postgres(ws: Workspace, dsn: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the workspace's state in PostgreSQL (the DSN in an environment variable, as a
    pipeline has it), whatever `write_project` writes later; `state_of` and `lock_of` read it."""
    monkeypatch.setenv(STATE_DSN_VARIABLE, dsn)
    original = ws.write_project

    def write_project(*args: Any, **changes: Any) -> None:
        original(*args, **changes)
        text = ws.project_file.read_text(encoding="utf-8")
        text = text.replace(
            "state: state.json\n",
            f"state:\n  postgres:\n    dsn: {{env: {STATE_DSN_VARIABLE}}}\n    schema: {schema}\n",
        )
        ws.project_file.write_text(text, encoding="utf-8")

    ws.write_project = write_project  # type: ignore[method-assign]
    _postgres_states[ws.root] = (dsn, schema)
    if ws.project_file.exists():
        write_project()


def _postgres_store(ws: Workspace) -> PostgresStateStore | None:
    where = _postgres_states.get(ws.root)
    if where is None:
        return None
    from reconciler.state.postgres import PostgresStateStore

    return PostgresStateStore(where[0], schema=where[1], clock=ws.clock.clock())


def state_of(ws: Workspace) -> State | None:
    """The workspace's state wherever it is kept; None when there is none yet."""
    store = _postgres_store(ws)
    if store is None:
        return ws.state() if ws.state_path.exists() else None
    try:
        return store.load()
    except StateMissingError:
        return None
    finally:
        store.close()


def lock_of(ws: Workspace) -> LockInfo | None:
    """The lock on the workspace's state, wherever it is kept."""
    store = _postgres_store(ws)
    if store is None:
        return StateStore(ws.state_path, ws.clock.clock()).read_lock()
    try:
        return store.read_lock()
    finally:
        store.close()


def current_state(ws: Workspace) -> State:
    """The workspace's state, which must exist."""
    state = state_of(ws)
    assert state is not None, f"no state for {ws.root}"
    return state


BACKENDS = ["local", pytest.param("postgres", marks=pytest.mark.long)]
"""Both backends as parameters; PostgreSQL's need RECONCILER_LONG=1 (the default suite keeps
a few PostgreSQL crash cases of its own)."""


def with_backend(
    ws: Workspace, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    """`ws`, its state moved to a fresh PostgreSQL schema when `backend` is "postgres"."""
    if backend == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        name = f"ws_{os.getpid()}_{abs(hash(str(ws.root))) % 10**8}"
        use_postgres(ws, dsn, fresh_schema(dsn, name), monkeypatch)
    return ws


def stock_ids_of(ws: Workspace) -> dict[str, str | None]:
    """id -> remote stock_id as the workspace's state records it, wherever it is kept."""
    return {s.id: s.stock_id for s in current_state(ws).stocks.values()}
