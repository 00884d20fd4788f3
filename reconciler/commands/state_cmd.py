"""`reconciler state ...`: inspect and repair the state file without touching stocks."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import click

from reconciler import engine
from reconciler.commands.common import EXIT_OK, fail, open_project, project_option, report_error
from reconciler.errors import ApiError, ReconcilerError
from reconciler.mapping import drifted, facts
from reconciler.planner import create_body
from reconciler.runtime import Runtime
from reconciler.spec.common import parse_rfc3339
from reconciler.state import StateStore, StockState


@click.group()
def state() -> None:
    """Inspect and repair the state file (never calls a create)."""


def _store(project_path: Path) -> tuple[StateStore, Runtime]:
    project = open_project(project_path)
    runtime = Runtime.from_environment()
    return StateStore(project.state_path, runtime.clock), runtime


@state.command("list")
@project_option
def list_(project_path: Path) -> None:
    """One line per recorded stock: id, kind, merchant, stock_id, pending."""
    store, _ = _store(project_path)
    try:
        current = store.load()
    except ReconcilerError as exc:
        report_error(exc)
    click.echo(
        f"state {store.path} · lineage {current.lineage} · serial {current.serial} · {len(current.stocks)} stocks"
    )
    for st in sorted(current.stocks.values(), key=lambda s: s.id):
        pending = (
            f" · pending {st.pending.action} ({st.pending.outcome or 'in flight'})"
            if st.pending
            else ""
        )
        click.echo(f"{st.id}  {st.kind}  {st.merchant}  {st.stock_id or '(not created)'}{pending}")


@state.command()
@click.argument("stock")
@project_option
def show(stock: str, project_path: Path) -> None:
    """Everything recorded about one stock, as JSON."""
    store, _ = _store(project_path)
    try:
        entry = store.load().stock(stock)
    except ReconcilerError as exc:
        report_error(exc)
    click.echo(
        json.dumps(entry.model_dump(mode="json"), ensure_ascii=False, indent=2, sort_keys=True)
    )


@state.command()
@click.argument("stock")
@project_option
def rm(stock: str, project_path: Path) -> None:
    """Stop tracking a stock. The stock itself stays at WeChat Pay (stocks cannot be deleted)."""
    store, _ = _store(project_path)
    try:
        with store.lock(f"state rm {stock}"):
            saved = store.save(store.load().without_stock(stock))
    except ReconcilerError as exc:
        report_error(exc)
    click.echo(
        f"Removed {stock!r} from the state (serial {saved.serial}); its out_request_no is retired and never reused."
    )


@state.command()
@click.argument("old")
@click.argument("new")
@project_option
def mv(old: str, new: str, project_path: Path) -> None:
    """Rename a stock's id in the state (after renaming it in its file), keeping its numbers."""
    store, _ = _store(project_path)
    try:
        with store.lock(f"state mv {old} {new}"):
            saved = store.save(store.load().renamed(old, new))
    except ReconcilerError as exc:
        report_error(exc)
    click.echo(f"Renamed {old!r} to {new!r} (serial {saved.serial}); WeChat Pay was not called.")


@state.command("import")
@click.argument("stock")
@click.argument("stock_id")
@project_option
def import_(stock: str, stock_id: str, project_path: Path) -> None:
    """Adopt an existing remote stock for the file with id STOCK, after checking it exists."""
    project = open_project(project_path)
    runtime = Runtime.from_environment()
    try:
        ctx = engine.open_context(project, runtime)
        desired = next((d.stock for d in ctx.desired if d.stock.id == stock), None)
        if desired is None:
            fail(f"no stock file has id {stock!r}; write its file first, then import")
        clients = engine.clients_for(ctx, [desired.merchant])
        client = clients[desired.merchant]
        try:
            detail = (
                client.favor_detail(stock_id, desired.merchant)
                if desired.kind == "favor"
                else client.busifavor_detail(stock_id)
            )
        except ApiError as exc:
            fail(f"cannot import {stock_id}: {exc}")
        finally:
            client.close()
        with ctx.store.lock(f"state import {stock} {stock_id}"):
            current = ctx.store.load(create_if_missing=True)
            now = runtime.clock.now()
            owner = next(
                (s.id for s in current.stocks.values() if s.stock_id == stock_id and s.id != stock),
                None,
            )
            if owner is not None:
                fail(
                    f"{stock_id} is already in the state as {owner!r}; one remote stock cannot belong to two stock files. Check the stock_id (renaming an id is `reconciler state mv`)"
                )
            if (
                stock in current.stocks
                and current.stocks[stock].pending is not None
                and current.stocks[stock].stock_id is None
            ):
                created = str(detail.get("create_time") or now.isoformat())
                updated = current.record_created(
                    stock, stock_id, _time(created, now)
                ).record_observed(stock, detail, now)
            elif stock in current.stocks and current.stocks[stock].stock_id is None:
                # Recorded but never created (its create was refused outright): adopt it.
                entry = current.stocks[stock]
                body = create_body(desired, entry.out_request_no)
                entry = entry.model_copy(update={"stock_id": stock_id, "applied_body": body})
                updated = current.with_stock(entry).record_observed(stock, detail, now)
            elif stock in current.stocks:
                fail(
                    f"{stock!r} is already in the state as {current.stocks[stock].stock_id}; `reconciler state rm {stock}` first if you mean to replace it"
                )
            else:
                entry = StockState.new(
                    stock,
                    desired.kind,
                    desired.merchant,
                    current.free_generation(desired.merchant, desired.kind, stock),
                )
                body = create_body(desired, entry.out_request_no)
                entry = entry.model_copy(update={"stock_id": stock_id, "applied_body": body})
                updated = current.with_stock(entry).record_observed(stock, detail, now)
            ctx.store.save(updated)
        applied = updated.stock(stock).applied_body or updated.stock(stock).sent_body or {}
        differences = drifted(desired.kind, applied, detail)
        click.echo(
            f"Imported {stock_id} as {stock!r}. Observed: {json.dumps(facts(desired.kind, detail), ensure_ascii=False)}"
        )
        for path, seen, sent in differences:
            click.echo(
                f"  warning: spec.{path}: WeChat Pay has {seen!r}, the file says {sent!r}", err=True
            )
    except ReconcilerError as exc:
        report_error(exc)
    sys.exit(EXIT_OK)


@state.command()
@click.argument("lock_id")
@project_option
def unlock(lock_id: str, project_path: Path) -> None:
    """Break a stale lock left by an apply that died (its id is in the lock error)."""
    store, _ = _store(project_path)
    try:
        info = store.unlock(lock_id)
    except ReconcilerError as exc:
        report_error(exc)
    click.echo(f"Removed the lock held by {info.holder} since {info.created_at} ({info.command}).")


def _time(value: str, fallback: datetime) -> datetime:
    try:
        return parse_rfc3339(value)
    except ValueError:
        return fallback
