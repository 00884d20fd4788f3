"""Plans and applies scoped to merchants or stock paths, and scoped applies of different
merchants at the same moment on one local state (real file locks): both succeed, nothing is
lost or created twice, and the state holds both."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler import engine
from reconciler.config import load_project
from reconciler.emulator import Answer, Emulator, EmulatorSettings
from reconciler.engine.scope import Scope
from reconciler.runtime import Clock, Runtime
from reconciler.state.lock import StateLockedError
from reconciler.state.model import State, StockState
from reconciler.state.store import StateStore
from tests.e2e_support import (
    LocalEmulator,
    Workspace,
    assert_one_remote_per_id,
    emulator_stocks,
    make_workspace,
    register_merchants,
    shared_keys,
    write_generated_stocks,
)

A, B = "1900000001", "1900000002"
CREATE_PATHS = ("/v3/marketing/favor/coupon-stocks", "/v3/marketing/busifavor/stocks")
DEADLINE = 30.0


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = make_workspace(tmp_path / "project", mchids=(A, B))
    # Four stocks per merchant: favor and busifavor, merchant A then B.
    write_generated_stocks(workspace.stocks_dir, 8, merchants=(A, B))
    return workspace


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    with LocalEmulator(ws) as running:
        yield running


def _ids(doc: dict[str, Any]) -> dict[str, str]:
    return {c["id"]: c["merchant"] for c in doc["changes"]}


# --- scoped plans -------------------------------------------------------------------------------


def test_a_merchant_scope_keeps_its_own_notify_urls_and_a_path_scope_none(
    ws: Workspace, local: LocalEmulator
) -> None:
    """Notify URLs are per merchant, not stock files: a plan scoped to a merchant plans that
    merchant's callbacks only, and a plan scoped by paths plans stocks only."""
    urls = {
        m: {k: f"https://shop.example.com/{m}/{k}" for k in ("favor", "busifavor")} for m in (A, B)
    }
    ws.write_project(callbacks=urls)

    def settings(*args: str) -> list[tuple[str, str]]:
        doc = ws.cli("plan", *args, "--format", "json").json()
        return sorted((c["merchant"], c["id"]) for c in doc["changes"] if c.get("setting"))

    assert {m for m, _ in settings()} == {A, B} and len(settings()) == 4
    assert settings("--merchant", A) == [
        (A, f"callback/busifavor/{A}"),
        (A, f"callback/favor/{A}"),
    ]
    assert settings(str(ws.stocks_dir / "favor")) == []
    assert settings(str(ws.stocks_dir / "favor"), "--merchant", B) == []


def test_a_plan_scoped_to_a_merchant_or_a_path_says_so_in_every_format(
    ws: Workspace, local: LocalEmulator
) -> None:
    run = ws.cli("plan", "--merchant", A, "--format", "json")
    assert run.exit_code == 0, str(run)
    doc = run.json()
    assert set(_ids(doc).values()) == {A} and len(doc["changes"]) == 4
    assert doc["scope"]["merchants"] == [A] and doc["scope"]["paths"] == []
    assert doc["scope"]["locked_merchants"] == [A]
    assert [t["merchant"] for t in doc["totals"]] == [A]
    assert f"Scoped plan: merchant {A}; stocks outside" in ws.cli("plan", "--merchant", A).stdout
    markdown = ws.cli("plan", "--merchant", A, "--format", "markdown").stdout
    assert f"**Scoped plan: merchant {A}; stocks outside it are not in this plan.**" in markdown
    zh = ws.cli("plan", "--merchant", A, "--lang", "zh").stdout
    assert f"范围：merchant {A}（范围外的批次不在本计划中）" in zh

    favor = str(ws.stocks_dir / "favor")
    doc = ws.cli("plan", favor, "--format", "json").json()
    assert doc["scope"]["paths"] == ["stocks/favor"]
    assert {c["kind"] for c in doc["changes"]} == {"favor"} and len(doc["changes"]) == 4
    assert sorted(doc["scope"]["locked_merchants"]) == [A, B]
    # Paths and merchants together; the whole stocks folder is no scope at all.
    both = ws.cli("plan", favor, "--merchant", B, "--format", "json").json()
    assert set(_ids(both).values()) == {B} and len(both["changes"]) == 2
    whole = ws.cli("plan", str(ws.stocks_dir), "--format", "json").json()
    assert "scope" not in whole and len(whole["changes"]) == 8


def test_a_scope_outside_the_stocks_or_a_bad_merchant_is_refused(
    ws: Workspace, local: LocalEmulator
) -> None:
    outside = ws.cli("plan", str(ws.root / "keys"))
    assert outside.exit_code == 1 and "not inside the stocks folder" in outside.output
    bad = ws.cli("plan", "--merchant", "abc")
    assert bad.exit_code == 1 and "not a merchant id" in bad.output
    assert "Traceback" not in outside.output + bad.output


def test_a_saved_scoped_plan_applies_its_scope_only_and_stays_fresh_while_others_apply(
    ws: Workspace, local: LocalEmulator, tmp_path: Path
) -> None:
    saved = tmp_path / "a.json"
    assert ws.cli("plan", "--merchant", A, "--out", str(saved)).exit_code == 0
    whole = tmp_path / "whole.json"
    assert ws.cli("plan", "--out", str(whole)).exit_code == 0
    other = ws.cli("apply", "--merchant", B, "--yes")
    assert other.exit_code == 0, str(other)
    assert {s.creator_mchid for s in local.emu.stocks.values()} == {B}
    # The state moved (B's creates), but not in A's scope: A's saved plan is still fresh.
    stale = ws.cli("apply", str(whole))
    assert stale.exit_code == 1 and "stale plan" in stale.output
    run = ws.cli("apply", str(saved))
    assert run.exit_code == 0, str(run)
    assert_one_remote_per_id(ws.state(), emulator_stocks(local.emu), sorted(ws.kinds()))
    # A's part moved since this plan was made: refused, naming the scope.
    again = tmp_path / "a2.json"
    ws.cli("plan", "--merchant", A, "--out", str(again))
    edited = ws.cli("apply", "--merchant", A, "--yes")
    assert edited.exit_code == 0, str(edited)
    # Scope options do not go with a saved plan.
    mixed = ws.cli("apply", str(saved), "--merchant", A)
    assert mixed.exit_code == 1 and "applied as it was made" in mixed.output
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_a_saved_scoped_plan_is_stale_once_its_own_part_of_the_state_moved(
    ws: Workspace, local: LocalEmulator, tmp_path: Path
) -> None:
    saved = tmp_path / "a.json"
    assert ws.cli("plan", "--merchant", A, "--out", str(saved)).exit_code == 0
    assert ws.cli("apply", "--merchant", A, "--yes").exit_code == 0
    run = ws.cli("apply", str(saved))
    assert run.exit_code == 1
    assert f"the state of its scope (merchant {A}) changed" in run.output


# --- two scoped applies at the same moment ------------------------------------------------------


class GatedEmulator(Emulator):
    """Holds every create until both merchants have one waiting: both applies are then in
    the middle of their run (locks held, intents saved) at the same moment."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()
        self.seen: set[str] = set()
        self._guard = threading.Lock()

    def respond(self, request: httpx.Request) -> Answer:
        if request.method == "POST" and request.url.path in CREATE_PATHS:
            found = re.search(r'mchid="(\d+)"', request.headers.get("Authorization", ""))
            with self._guard:
                if found:
                    self.seen.add(found.group(1))
                if self.seen >= {A, B}:
                    self.gate.set()
            self.gate.wait(DEADLINE)
        return super().respond(request)


def test_two_scoped_applies_of_different_merchants_run_at_once_on_one_state(
    ws: Workspace,
) -> None:
    emu = GatedEmulator(
        EmulatorSettings(rate_limiting=False), clock=ws.clock.time, keys=shared_keys()
    )
    register_merchants(emu, ws.mchids)
    ws.write_project()
    results: dict[str, object] = {}
    start = threading.Barrier(2)

    def run(mchid: str) -> None:
        try:
            project, diagnostics = load_project(ws.project_file)
            assert project is not None, diagnostics
            runtime = Runtime(ws.root, {}, ws.clock.clock(), emu.transport())
            workspace = engine.open_workspace(project, runtime)
            start.wait(DEADLINE)
            applied = engine.apply(workspace, scope=Scope((mchid,)), lock_wait=0.0)
            assert applied.report is not None
            results[mchid] = applied.report
        except BaseException as exc:
            results[mchid] = exc

    threads = [threading.Thread(target=run, args=(m,)) for m in (A, B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE * 2)
    assert emu.gate.is_set(), "the two applies never had creates in flight at once"
    for mchid in (A, B):
        report = results[mchid]
        assert not isinstance(report, BaseException), report
        assert report.ok and len(report.results) == 4, report  # type: ignore[attr-defined]
    state = ws.state()
    assert_one_remote_per_id(state, emulator_stocks(emu), sorted(ws.kinds()))
    assert {s.merchant for s in state.stocks.values()} == {A, B}
    # Between runs the state file alone is the state, and no lock is left behind.
    leftovers = sorted(p.name for p in ws.root.iterdir() if p.name.startswith("state.json."))
    assert leftovers in ([], ["state.json.backup"], ["state.json.backup", "state.json.lock.save"])


# --- the local backend: merchant locks and saves in turns ----------------------------------------


class _Clock:
    def now(self) -> Any:
        return Clock().now()


def test_merchant_locks_and_the_whole_state_lock_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store, other = StateStore(path, _Clock()), StateStore(path, _Clock())
    store.save(store.load(create_if_missing=True))
    with store.lock("apply", merchants=[A]) as info:
        with pytest.raises(StateLockedError, match=info.lock_id):
            other.lock("state rm x").__enter__()
        with pytest.raises(StateLockedError, match=info.lock_id):
            other.lock("apply", merchants=[A, B]).__enter__()
        with other.lock("apply", merchants=[B]):
            pass
    with store.lock("state rm x") as whole, pytest.raises(StateLockedError, match=whole.lock_id):
        other.lock("apply", merchants=[B]).__enter__()
    assert not list(tmp_path.glob("state.json.lock*[0-9]"))


def test_a_scoped_lock_of_a_run_that_died_is_broken_by_its_id(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path, _Clock())
    store.save(store.load(create_if_missing=True))
    held = store.lock("apply", merchants=[A, B])
    info = held.__enter__()  # never released: the run "died"
    assert sorted(p.name for p in tmp_path.glob("state.json.lock.19*")) == [
        f"state.json.lock.{A}",
        f"state.json.lock.{B}",
    ]
    assert StateStore(path, _Clock()).unlock(info.lock_id).lock_id == info.lock_id
    assert not list(tmp_path.glob("state.json.lock.19*"))


_WRITER = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from reconciler.state.model import StockState
from reconciler.state.store import StateStore

class C:
    def now(self):
        return datetime.now(UTC)

path, mchid, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
store = StateStore(path, C(), journal=True)
with store.lock("apply", merchants=[mchid], wait_seconds=30):
    state = store.load(create_if_missing=True)
    print("locked", flush=True)
    sys.stdin.readline()  # both processes hold their locks before either saves
    for i in range(count):
        state = store.save(state.with_stock(StockState.new(f"m{mchid[-1]}-{i:03d}", "favor", mchid)))
"""


def test_two_processes_saving_different_merchants_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    base = StateStore(path, _Clock()).save(State.new("6f1c2d3e-4a5b-4c6d-8e7f-0123456789ab"))
    count = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), m, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for m in (A, B)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "locked"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    deadline = time.monotonic() + DEADLINE
    for p in procs:
        p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        assert p.returncode == 0
    final = StateStore(path, _Clock()).load()
    assert len(final.stocks) == 2 * count
    assert {s.merchant for s in final.stocks.values()} == {A, B}
    assert final.serial == base.serial + 2 * count
    assert not path.with_name("state.json.journal").exists()  # compacted on release
    assert all(isinstance(s, StockState) for s in final.stocks.values())
