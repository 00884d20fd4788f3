"""Plans and applies scoped to merchants or stock paths (`plan --merchant M stocks/favor/`).

A scope picks the stock files it covers (by merchant and by path) and the part of the state
that goes with them: their entries, and with `--merchant` and no paths also the orphans of
those merchants (a stock with no file has no path, so a plan scoped by path shows none). A
scoped plan is made, saved, checked for freshness and applied on that part alone, under the
locks of its merchants only, so that scoped applies of different merchants run at once.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.desired import DesiredStock
from reconciler.errors import ConfigError
from reconciler.plan import PlanScope
from reconciler.spec.stock import MCHID_PATTERN
from reconciler.state.model import State


@dataclass(frozen=True)
class Scope:
    """`merchants` (empty: all) and `paths` relative to the project root (empty: all)."""

    merchants: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def covers(self, stock: DesiredStock) -> bool:
        if self.merchants and stock.stock.merchant not in self.merchants:
            return False
        if not self.paths:
            return True
        return any(
            stock.file == p or stock.file.startswith(p.rstrip("/") + "/") for p in self.paths
        )

    @classmethod
    def of(cls, plan_scope: PlanScope) -> Scope:
        return cls(plan_scope.merchants, plan_scope.paths)


def make_scope(
    root: Path, stocks_dir: Path, merchants: Sequence[str], paths: Sequence[Path]
) -> Scope | None:
    """The scope the options ask for (None: everything). A path must lie inside the stocks
    folder; a merchant must look like a merchant id."""
    for m in merchants:
        if not re.fullmatch(MCHID_PATTERN, m):
            raise ConfigError(f"--merchant {m!r}: not a merchant id (mchid, 5 to 32 digits)")
    top = stocks_dir.resolve()
    relative = []
    for p in paths:
        full = p.resolve()
        if full != top and top not in full.parents:
            raise ConfigError(
                f"{p}: not inside the stocks folder {stocks_dir}; a plan is scoped to stock files or folders under it"
            )
        rel = Path(os.path.relpath(full, root.resolve())).as_posix()
        relative.append(rel)
    if any(p.resolve() == top for p in paths):
        relative = []  # the whole stocks folder: every path
    if not merchants and not relative:
        return None
    return Scope(tuple(sorted(set(merchants))), tuple(sorted(set(relative))))


def scoped_desired(desired: Sequence[DesiredStock], scope: Scope | None) -> list[DesiredStock]:
    return list(desired) if scope is None else [d for d in desired if scope.covers(d)]


def scoped_state(
    state: State, all_desired: Sequence[DesiredStock], desired: Sequence[DesiredStock], scope: Scope
) -> State:
    """The part of `state` a scoped plan covers: the entries of its stock files, and with
    merchants and no paths the orphans of those merchants."""
    keep = {d.stock.id for d in desired}
    if scope.merchants and not scope.paths:
        files = {d.stock.id for d in all_desired}
        keep |= {
            k for k, v in state.stocks.items() if k not in files and v.merchant in scope.merchants
        }
    return state.model_copy(update={"stocks": {k: v for k, v in state.stocks.items() if k in keep}})


def state_digest(view: State) -> str:
    """sha256 over the entries of a (scoped) state: a saved scoped plan is fresh while the
    part of the state it covers is unchanged, whatever runs on other merchants write."""
    h = hashlib.sha256()
    for key in sorted(view.stocks):
        h.update(f"{key}\0{view.stocks[key].model_dump_json()}\n".encode())
    return "sha256:" + h.hexdigest()


def lock_merchants(scope: Scope, desired: Sequence[DesiredStock], view: State | None) -> list[str]:
    """The merchants a scoped run locks: those named, and those of the stocks it covers."""
    out = set(scope.merchants) | {d.stock.merchant for d in desired}
    if view is not None:
        out |= {v.merchant for v in view.stocks.values()}
    return sorted(out)


def plan_scope(scope: Scope, desired: Sequence[DesiredStock], view: State) -> PlanScope:
    return PlanScope(
        scope.merchants,
        scope.paths,
        tuple(lock_merchants(scope, desired, view)),
        state_digest(view),
    )
