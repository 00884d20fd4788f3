"""The plan use case, and saved plans: writing them, reading them back, checking they are fresh."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from reconciler import __version__, callbacks_apply
from reconciler.callbacks import Observed
from reconciler.engine.partners import with_sub_totals
from reconciler.engine.preflight import preflight
from reconciler.engine.scope import Scope, plan_scope, scoped_desired, scoped_state
from reconciler.engine.workspace import (
    Workspace,
    clients_for,
    desired_digest,
    refresh,
    refresh_targets,
)
from reconciler.errors import ConfigError, StateError
from reconciler.fsutil import write_atomic
from reconciler.plan import Plan, PlanFormatError
from reconciler.planner import PlanInputs, make_plan
from reconciler.spec.images import ImageFacts
from reconciler.state.model import State

REFRESH_MODES = ("changing", "all", "none")


@dataclass(frozen=True)
class Planned:
    """A plan and the state it was made from."""

    plan: Plan
    state: State


def plan(
    ws: Workspace,
    refresh_mode: str = "changing",
    refresh_note: str = "",
    scope: Scope | None = None,
) -> Planned:
    """Query what can still change, then decide what apply would do (the pure planner). With
    a `scope`, only the stock files and the part of the state it covers (`engine.scope`)."""
    if refresh_mode != "none":
        preflight(ws)  # every merchant's credentials, every problem at once, before any call
    state, ws.early_state = ws.early_state or ws.load_state(), None
    desired = scoped_desired(ws.desired, scope)
    view = state if scope is None else scoped_state(state, ws.desired, desired, scope)
    now = ws.runtime.clock.now()
    ids = refresh_targets(view, desired, refresh_mode, now)
    observed: dict[str, dict[str, Any]] = {}
    wanted = ws.project.callback_urls()
    if scope is not None:
        # Notify URLs are per merchant, not stock files: a merchant scope keeps its own, a
        # scope by paths alone covers stocks only.
        wanted = {
            k: v
            for k, v in wanted.items()
            if scope.merchants and not scope.paths and k.split("/", 1)[0] in scope.merchants
        }
    seen_callbacks: dict[str, Observed] | None = None
    if ids or (wanted and refresh_mode != "none"):
        merchants = [state.stock(i).merchant for i in ids]
        if refresh_mode != "none":
            merchants += [k.split("/", 1)[0] for k in wanted]
        clients = clients_for(ws, merchants)
        try:
            observed = refresh(ws, view, ids, clients) if ids else {}
            if refresh_mode != "none":
                seen_callbacks = callbacks_apply.read_all(clients, wanted)
        finally:
            for c in clients.values():
                c.close()
    result = make_plan(
        PlanInputs(
            desired=desired,
            state=view,
            observed=observed,
            now=now,
            refresh=refresh_mode,
            refresh_note=refresh_note,
            desired_digest=desired_digest(desired),
            tool_version=__version__,
            rate_limits={
                m.mchid: ws.project.rate_limits(m.mchid) for m in ws.project.project.merchants
            },
            images=image_catalog(ws),
            callbacks=wanted,
            observed_callbacks=seen_callbacks,
        )
    )
    if scope is not None:
        result = replace(result, scope=plan_scope(scope, desired, view))
    result = with_sub_totals(result, desired, ws.project)
    return Planned(result, state)


def image_catalog(ws: Workspace) -> dict[str, ImageFacts]:
    """The facts of the image files the stocks name (Pillow is imported only when some do)."""
    if not any(d.images for d in ws.desired):
        return {}
    from reconciler.media import catalog

    return catalog(ws.desired, ws.project.root)


def write_output(path: Path, text: str, what: str) -> None:
    """Write a rendering (a saved plan, a Markdown comment) whole or not at all: a full disk
    leaves the previous file, never half of a new one."""
    try:
        if path.exists() and not path.is_file():
            # A device or pipe (/dev/stdout, a FIFO): written in place, never replaced.
            with path.open("w", encoding="utf-8") as out:
                out.write(text)
            return
        write_atomic(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot write the {what} ({exc.strerror or exc}); free some space or choose another path"
        ) from None


def load_plan_file(path: Path) -> Plan:
    """Read a saved plan, refusing one that was edited (checksum), is of another format
    version, or is not a plan at all."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Plan.from_document(data)
    except PlanFormatError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: not a readable reconciler plan ({type(exc).__name__}: {exc}); make a new one with `reconciler plan --out {path}`"
        ) from None


def check_fresh(
    saved: Plan,
    state: State,
    digest: str,
    now: datetime,
    max_age_minutes: int,
    scoped_digest: str | None = None,
) -> None:
    """Refuse a saved plan whose inputs moved since it was made. A scoped plan is checked on
    its scope only (`scoped_digest`: the digest of the part of `state` it covers now): runs on
    other merchants raise the serial meanwhile, which does not make it stale."""
    problems = []
    if saved.scope is not None and scoped_digest is not None:
        if saved.scope.state_digest != scoped_digest:
            problems.append(
                f"the state of its scope ({saved.scope.describe()}) changed since the plan was made"
            )
        # The serial is not compared (the lineage still is, unless no state existed then).
        state = state.model_copy(update={"serial": saved.state_serial})
    if saved.state_serial == 0 and state.serial != 0:
        problems.append(
            f"there was no state when the plan was made; one was written since (serial {state.serial})"
        )
    elif not (saved.state_serial == 0 and state.serial == 0):
        if saved.state_lineage != state.lineage:
            problems.append(
                f"the state is a different lineage ({state.lineage}, the plan was made from {saved.state_lineage})"
            )
        elif saved.state_serial != state.serial:
            problems.append(
                f"the state moved from serial {saved.state_serial} to {state.serial} since the plan was made"
            )
    if saved.desired_digest != digest:
        problems.append("the stock files changed since the plan was made")
    made = datetime.fromisoformat(saved.created_at)
    if now - made > timedelta(minutes=max_age_minutes):
        problems.append(
            f"the plan is older than {max_age_minutes} minutes (made {saved.created_at})"
        )
    if problems:
        raise StateError("stale plan: " + "; ".join(problems) + ". Make a new plan and review it.")
