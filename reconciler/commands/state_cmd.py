"""`reconciler state ...`: inspect and repair the state without touching stocks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.commands.common import (
    EXIT_OK,
    init_state_option,
    open_project,
    project_option,
    runtime,
)

if TYPE_CHECKING:
    from reconciler.state.backend import StateBackend

# The engine and the state store are imported where a command runs (see plan_apply).


@click.group()
def state() -> None:
    """Inspect and repair the state file (never calls a create)."""


def _store(project_path: Path) -> StateBackend:
    from reconciler.state.factory import open_backend

    project = open_project(project_path)
    rt = runtime()
    return open_backend(project, rt.clock, rt.environ)


@state.command("list")
@project_option
def list_(project_path: Path) -> int:
    """One line per recorded stock: id, kind, merchant, stock_id, pending."""
    from reconciler.engine import state_ops

    store = _store(project_path)
    current = state_ops.read(store)
    click.echo(
        f"state {store.location} · lineage {current.lineage} · serial {current.serial} · {len(current.stocks)} stocks"
    )
    for st in sorted(current.stocks.values(), key=lambda s: s.id):
        pending = (
            f" · pending {st.pending.action} ({st.pending.outcome or 'in flight'})"
            if st.pending
            else ""
        )
        click.echo(f"{st.id}  {st.kind}  {st.merchant}  {st.stock_id or '(not created)'}{pending}")
    return EXIT_OK


@state.command()
@click.argument("stock")
@project_option
def show(stock: str, project_path: Path) -> int:
    """Everything recorded about one stock, as JSON."""
    from reconciler.engine import state_ops

    entry = state_ops.read(_store(project_path)).stock(stock)
    click.echo(
        json.dumps(entry.model_dump(mode="json"), ensure_ascii=False, indent=2, sort_keys=True)
    )
    return EXIT_OK


@state.command()
@click.argument("stock")
@project_option
def rm(stock: str, project_path: Path) -> int:
    """Stop tracking a stock. The stock itself stays at WeChat Pay (stocks cannot be deleted)."""
    from reconciler.engine import state_ops

    saved = state_ops.remove(_store(project_path), stock)
    click.echo(
        f"Removed {stock!r} from the state (serial {saved.serial}); its out_request_no is retired and never reused."
    )
    return EXIT_OK


@state.command()
@click.argument("old")
@click.argument("new")
@project_option
def mv(old: str, new: str, project_path: Path) -> int:
    """Rename a stock's id in the state (after renaming it in its file), keeping its numbers."""
    from reconciler.engine import state_ops

    saved = state_ops.rename(_store(project_path), old, new)
    click.echo(f"Renamed {old!r} to {new!r} (serial {saved.serial}); WeChat Pay was not called.")
    return EXIT_OK


@state.command("import")
@click.argument("stock")
@click.argument("stock_id")
@project_option
@init_state_option
def import_(stock: str, stock_id: str, project_path: Path, init_state: bool) -> int:
    """Adopt an existing remote stock for the file with id STOCK, after checking it exists."""
    from reconciler import engine
    from reconciler.engine import state_ops
    from reconciler.render.text import value_text

    ws = engine.open_workspace(open_project(project_path), runtime(), init_state=init_state)
    done = state_ops.import_stock(ws, stock, stock_id)
    observed = ", ".join(f"{k}={value_text(v)}" for k, v in sorted(done.facts.items()))
    click.echo(f"Imported {stock_id} as {stock!r}. Observed: {observed or '(nothing)'}")
    for d in done.differences:
        click.echo(
            f"  warning: spec.{d.path}: WeChat Pay has {d.before!r}, the file says {d.after!r}",
            err=True,
        )
    return EXIT_OK


@state.command()
@click.argument("lock_id")
@project_option
def unlock(lock_id: str, project_path: Path) -> int:
    """Break a stale lock left by an apply that died (its id is in the lock error)."""
    from reconciler.engine import state_ops

    info = state_ops.unlock(_store(project_path), lock_id)
    click.echo(f"Removed the lock held by {info.holder} since {info.created_at} ({info.command}).")
    return EXIT_OK


@state.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@project_option
def pull(file: Path | None, project_path: Path) -> int:
    """Export the state as a JSON state file: to FILE, or to standard output."""
    from reconciler.engine import state_ops
    from reconciler.errors import StateError

    text = state_ops.pull(_store(project_path))
    if file is None:
        click.echo(text, nl=False)
    else:
        try:
            file.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise StateError(f"cannot write {file}: {exc.strerror}") from exc
    return EXIT_OK


@state.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a state of another lineage or newer serial.")
@project_option
def push(file: Path, force: bool, project_path: Path) -> int:
    """Import a JSON state file (from `state pull`) into the configured state."""
    from reconciler.engine import state_ops
    from reconciler.errors import StateError

    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read {file}: {exc.strerror}") from exc
    store = _store(project_path)
    saved = state_ops.push(store, raw, str(file), force=force)
    click.echo(
        f"Pushed {file} to {store.location}: lineage {saved.lineage}, serial {saved.serial}, {len(saved.stocks)} stocks."
    )
    return EXIT_OK
