"""Random sequences of state commands interleaved with apply: nothing duplicated, nothing
changed through the wrong id, no traceback.

A hypothesis state machine drives the CLI in process against an in-process emulator (its
transport injected through the Runtime, so no port): `state rm`, `state mv` (with the file's id),
`state import` (right and wrong stock_ids), edits of a file (allowed and immutable ones), raising
`generation`, deleting and restoring files, deleting the state and restoring it from its backup
or starting a new one with `--init-state`, then `plan` and `apply`. After every step:

- each stock id has at most as many remote stocks as its raised generations (and renames that
  gave its first number away) allow: `state rm` never leads to a silent second stock;
- every modify and budget request went to a stock that belongs to the id whose number it
  carries (the id it was created under, or renamed to);
- every command exits 0, 1 or 2, and no output holds a traceback.

`RECONCILER_LONG=1` runs at least 2,000 steps.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from reconciler.emulator import Emulator, EmulatorSettings
from reconciler.runtime import Runtime
from tests.cli_invoke import invoke
from tests.e2e_support import (
    MCHID,
    VirtualClock,
    Workspace,
    dump_yaml,
    generated_stock,
    register_merchants,
    shared_keys,
)

LONG = os.environ.get("RECONCILER_LONG") == "1"
KINDS = ("favor", "busifavor", "favor", "busifavor")
IDS = [f"gen-{kind}-{i:03d}" for i, kind in enumerate(KINDS)]


def fragment(number: str) -> str:
    """The id part of a derived request number: `<merchant>_<KPg>_<id fragment>_<digest>`."""
    return number.split("_", 2)[2].rsplit("_", 1)[0]


def generation_of(number: str) -> int:
    return int(number.split("_")[1][2:])


class StateCommands(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix="reconciler-seq-"))
        self.clock = VirtualClock()
        self.ws = Workspace(self.tmp / "project", self.clock, max_attempts=1)
        self.emu = Emulator(EmulatorSettings(), clock=self.clock.time, keys=shared_keys())
        register_merchants(self.emu, (MCHID,))
        self.ws.write_project("http://127.0.0.1:9")
        self.runtime = Runtime(self.ws.root, {}, self.clock.clock(), self.emu.transport())
        self.files: dict[str, dict[str, Any]] = {}
        self.deleted: dict[str, dict[str, Any]] = {}
        for i, kind in enumerate(KINDS):
            data = generated_stock(kind, i)
            self.files[data["id"]] = data
            self._write(data)
        # How many remote stocks each id fragment may have: one, plus one per raised
        # generation, plus one per rename that took its first number to another id.
        self.allowed: dict[str, int] = {i: 1 for i in IDS}
        self.owner: dict[str, str] = {}
        """stock_id -> the id it belongs to (created under, or renamed to)."""

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- helpers -------------------------------------------------------------------------------

    def _path(self, data: dict[str, Any]) -> Path:
        return self.ws.stocks_dir / str(data["kind"]) / f"{data['id']}.yaml"

    def _write(self, data: dict[str, Any]) -> None:
        path = self._path(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_yaml(data), encoding="utf-8")

    def cli(self, *args: str) -> Any:
        run = invoke([*args, "--project", str(self.ws.project_file)], runtime=self.runtime)
        out = run.stdout + run.stderr
        assert "Traceback" not in out, out
        assert run.exit_code in (0, 1, 2), (args, run.exit_code, out)
        return run

    def _recorded(self) -> dict[str, str]:
        if not self.ws.state_path.exists():
            return {}
        return {i: sid for i, sid in self.ws.stock_ids().items() if sid is not None}

    # --- rules ---------------------------------------------------------------------------------

    @rule()
    def apply(self) -> None:
        self.cli("apply", "--yes")
        for sid, stock in self.emu.stocks.items():
            if sid not in self.owner:
                self.owner[sid] = fragment(stock.out_request_no)

    @rule()
    def plan(self) -> None:
        self.cli("plan")

    @rule(i=st.integers(0, len(IDS) - 1))
    def rm(self, i: int) -> None:
        self.cli("state", "rm", sorted(self.files)[i % len(self.files)])

    @rule(i=st.integers(0, len(IDS) - 1))
    def import_own(self, i: int) -> None:
        id = sorted(self.files)[i % len(self.files)]
        mine = [s for s, owner in self.owner.items() if owner == id]
        if mine:
            self.cli("state", "import", id, mine[-1])

    @rule(i=st.integers(0, len(IDS) - 1), j=st.integers(0, 50))
    def import_other(self, i: int, j: int) -> None:
        if self.emu.stocks:
            id = sorted(self.files)[i % len(self.files)]
            sid = sorted(self.emu.stocks)[j % len(self.emu.stocks)]
            self.cli("state", "import", id, sid)

    @precondition(lambda self: any(not i.endswith("-m") for i in self.files))
    @rule(i=st.integers(0, len(IDS) - 1))
    def mv(self, i: int) -> None:
        candidates = sorted(i for i in self.files if not i.endswith("-m"))
        old = candidates[i % len(candidates)]
        new = old + "-m"
        run = self.cli("state", "mv", old, new)
        if run.exit_code == 0:
            data = self.files.pop(old)
            self._path(data).unlink()
            data["id"] = new
            self.files[new] = data
            self._write(data)
            self.allowed[new] = self.allowed.get(new, 0) + 1
            self.allowed[old] = self.allowed.get(old, 1) + 1
            for sid, owner in self.owner.items():
                if owner == old and self.ws.stock_ids().get(new) == sid:
                    self.owner[sid] = new

    @rule(i=st.integers(0, len(IDS) - 1), value=st.integers(1, 3))
    def edit(self, i: int, value: int) -> None:
        data = self.files[sorted(self.files)[i % len(self.files)]]
        if data["kind"] == "busifavor":
            data["spec"]["comment"] = f"备注{value}"
            data["spec"]["stock_send_rule"]["max_coupons"] = 50_000 + value
        else:
            data["spec"]["comment"] = f"immutable {value}"
        self._write(data)

    @rule(i=st.integers(0, len(IDS) - 1))
    def raise_generation(self, i: int) -> None:
        id = sorted(self.files)[i % len(self.files)]
        data = self.files[id]
        data["generation"] = int(data.get("generation", 0)) + 1
        base = id.removesuffix("-m")
        self.allowed[base] = self.allowed.get(base, 1) + 1
        self.allowed[id] = self.allowed.get(id, 1) + 1
        self._write(data)

    @precondition(lambda self: len(self.files) > 1)
    @rule(i=st.integers(0, len(IDS) - 1))
    def delete_file(self, i: int) -> None:
        id = sorted(self.files)[i % len(self.files)]
        data = self.files.pop(id)
        self._path(data).unlink()
        self.deleted[id] = data

    @precondition(lambda self: bool(self.deleted))
    @rule()
    def restore_file(self) -> None:
        id, data = self.deleted.popitem()
        if id in self.files:
            return
        self.files[id] = data
        self._write(data)

    @precondition(lambda self: self.ws.state_path.exists())
    @rule()
    def delete_state(self) -> None:
        self.ws.state_path.unlink()

    @precondition(lambda self: not self.ws.state_path.exists())
    @rule(init=st.booleans())
    def recover_state(self, init: bool) -> None:
        backups = sorted(self.ws.root.glob("state.json.backup"))
        if backups and not init:
            shutil.copy(backups[0], self.ws.state_path)
        else:
            self.cli("apply", "--yes", "--init-state")

    # --- invariants ----------------------------------------------------------------------------

    @invariant()
    def no_unasked_second_stock(self) -> None:
        per_id: dict[str, set[int]] = {}
        for stock in self.emu.stocks.values():
            per_id.setdefault(fragment(stock.out_request_no), set()).add(
                generation_of(stock.out_request_no)
            )
        for id, generations in per_id.items():
            assert len(generations) <= self.allowed.get(id, 1), (id, generations, self.allowed)

    @invariant()
    def updates_only_through_the_owning_id(self) -> None:
        store = self.emu._store
        for scope in ("busifavor_modify", "busifavor_budget"):
            for number, record in store.numbers(MCHID, scope).items():
                owner = self.owner.get(record.stock_id, fragment(number))
                assert fragment(number) == owner, (number, record.stock_id, owner)


StateCommands.TestCase.settings = settings(
    max_examples=60 if LONG else 8,
    stateful_step_count=40 if LONG else 15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_state_command_sequences = StateCommands.TestCase


@pytest.mark.long
def test_long_mode_runs_at_least_2000_steps() -> None:
    if not LONG:
        pytest.skip("long run; set RECONCILER_LONG=1")
    s = StateCommands.TestCase.settings
    assert s.max_examples * s.stateful_step_count >= 2000


def test_the_fragment_helpers_read_derived_numbers() -> None:
    from reconciler.ids import out_request_no

    number = out_request_no(MCHID, "busifavor", "gen-busifavor-001", 3)
    assert fragment(number) == "gen-busifavor-001" and generation_of(number) == 3
