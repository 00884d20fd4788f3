"""Two `reconciler apply` processes on one project at once: the state lock keeps them apart.

Both are started together against one emulator on loopback. The emulator holds every create
at a gate until the test opens it, so the run that took the lock is guaranteed to be in the
middle of its apply (lock held, intents saved, creates in flight) while the other one tries:

- with no wait (or a short one), the other run fails and names the lock holder's pid;
- with `--lock-wait`, it is seen trying (its attempts touch the state folder while the
  holder is parked at the gate), waits, then finds nothing left to do;
- with two copies of one saved plan, the waiter refuses its plan once the state moved.

Afterwards the state file is valid, each stock id has exactly one remote stock, and
`plan --detailed-exitcode` exits 0. No sleeps: every wait polls a condition with a deadline.
The lock-holder and saved-plan cases run against the PostgreSQL state too (RECONCILER_LONG=1).
The applies that contend for the lock are real processes (each its own pid and lock); the
plans before and after run in this process, through the emulator's in-memory transport.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from reconciler.emulator import Answer, DemoMerchant, Emulator, EmulatorSettings, Faults
from reconciler.emulator.keys import public_key_pem
from reconciler.loader import load_stocks
from reconciler.runtime import NOW_VARIABLE, Clock, Runtime
from reconciler.state.model import State
from reconciler.state.postgres import PostgresStateStore
from reconciler.state.store import parse_state
from tests.cli_invoke import invoke
from tests.conftest import ROOT
from tests.pg_support import BACKENDS, STATE_DSN_VARIABLE, fresh_schema

MCHID = "1900000001"
DEADLINE = 60.0
CREATE_PATHS = ("/v3/marketing/favor/coupon-stocks", "/v3/marketing/busifavor/stocks")
BEGIN = dt.datetime(2027, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=8)))
"""The earliest example stock begins here; the clock runs from one day before."""


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


class GatedEmulator(Emulator):
    """Holds every create request until `open_gate()`; counts the ones waiting."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self._count_lock = threading.Lock()
        self.waiting = 0

    def respond(self, request: httpx.Request) -> Answer:
        if request.method == "POST" and request.url.path in CREATE_PATHS:
            with self._count_lock:
                self.waiting += 1
            self.gate.wait(DEADLINE)
        return super().respond(request)

    def open_gate(self) -> None:
        self.gate.set()


@dataclass
class Project:
    root: Path
    emulator: GatedEmulator
    clock: Clock
    postgres: tuple[str, str] | None = None
    """(DSN, schema) when the state is kept in PostgreSQL."""

    def store(self) -> PostgresStateStore:
        assert self.postgres is not None
        dsn, schema = self.postgres
        return PostgresStateStore(dsn, schema=schema, clock=self.clock)

    def state(self) -> State:
        if self.postgres is None:
            return parse_state(self.state_path.read_bytes())
        store = self.store()
        try:
            return store.load()
        finally:
            store.close()

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "state.json"

    def argv(self, *args: str) -> list[str]:
        return [*args, "--project", str(self.root / "reconciler.yaml")]

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "reconciler", *self.argv(*args)]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != NOW_VARIABLE}
        env[NOW_VARIABLE] = self.clock.now().isoformat(timespec="microseconds")
        return env

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.command(*args),
            cwd=self.root,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The CLI in this process, from the project directory, through the emulator's
        transport (the gate holds its creates as it does those of the processes)."""
        runtime = Runtime(
            self.root, self.env(), Clock(self.clock.offset), self.emulator.transport()
        )
        with contextlib.chdir(self.root):
            result = invoke(self.argv(*args), runtime=runtime)
        return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)

    def lock_holder_pid(self) -> int | None:
        if self.postgres is not None:
            store = self.store()
            try:
                info = store.read_lock()
            finally:
                store.close()
            return None if info is None else info.pid
        try:
            text = (self.state_path.parent / "state.json.lock").read_text("utf-8")
        except FileNotFoundError:
            return None
        m = re.search(r'"pid":\s*(\d+)', text)
        return int(m.group(1)) if m else None


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "local"))


@pytest.fixture
def project(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Project]:
    postgres: tuple[str, str] | None = None
    state_setting = "state/state.json"
    if backend == "postgres":
        dsn = request.getfixturevalue("postgres_dsn")
        postgres = (dsn, fresh_schema(dsn, f"concurrent_{os.getpid()}"))
        monkeypatch.setenv(STATE_DSN_VARIABLE, dsn)
        state_setting = (
            f"{{postgres: {{dsn: {{env: {STATE_DSN_VARIABLE}}}, schema: {postgres[1]}}}}}"
        )
    clock = Clock.starting_at(BEGIN - dt.timedelta(days=1))
    settings = EmulatorSettings(rate_limiting=False, faults=Faults(latency_ms=50))
    emu = GatedEmulator(settings, clock=clock.time)
    merchant = DemoMerchant.generate(MCHID)
    merchant.register(emu)
    root = tmp_path / "project"
    (root / "keys").mkdir(parents=True, mode=0o700)
    shutil.copytree(ROOT / "stocks", root / "stocks")
    (root / "keys" / "pub_key.pem").write_bytes(public_key_pem(emu.wechatpay_public_key))
    key = root / "keys" / "key.pem"
    key.touch(mode=0o600)
    key.write_bytes(
        merchant.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with emu.serve("127.0.0.1", 0) as server:
        (root / "reconciler.yaml").write_text(
            "stocks: stocks\n"
            f"state: {state_setting}\n"
            f"api: {{base_url: '{server.base_url}', max_attempts: 1, read_timeout_seconds: {DEADLINE:.0f}}}\n"
            "merchants:\n"
            f"  - mchid: '{MCHID}'\n"
            f"    serial_no: {merchant.serial_no}\n"
            "    private_key: {file: keys/key.pem}\n"
            "    wechatpay_public_key: {file: keys/pub_key.pem}\n"
            f"    wechatpay_public_key_id: {emu.wechatpay_public_key_id}\n"
            "    rate_limits:\n"
            "      favor_create: {count: 1000, per_seconds: 1}\n"
            "      busifavor_create: {count: 1000, per_seconds: 1}\n",
            encoding="utf-8",
        )
        try:
            yield Project(root, emu, clock, postgres)
        finally:
            emu.open_gate()  # never leave a server thread parked at the gate
        assert server.errors == []


@contextlib.contextmanager
def both(project: Project, *commands: list[str]) -> Iterator[list[subprocess.Popen[str]]]:
    """Start the commands together; on the way out, make sure they are gone and closed."""
    procs = [project.start(*args) for args in commands]
    try:
        yield procs
    finally:
        project.emulator.open_gate()
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(DEADLINE)
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=DEADLINE)
    return proc.returncode, out, err


def stock_ids() -> list[str]:
    return sorted(s.stock.id for s in load_stocks([ROOT / "stocks"]).stocks)


def assert_settled(project: Project) -> None:
    """A valid state, one remote stock per id (the one the state names), and nothing to do."""
    ids = stock_ids()
    state = project.state()
    remote = project.emulator.stocks
    by_number: dict[str, list[str]] = {}
    for stock_id, stock in remote.items():
        by_number.setdefault(stock.out_request_no, []).append(stock_id)
    assert len(remote) == len(ids), remote
    assert all(len(v) == 1 for v in by_number.values()), by_number
    assert sorted(state.stocks) == ids
    for entry in state.stocks.values():
        assert entry.pending is None, entry
        assert by_number[entry.out_request_no] == [entry.stock_id]
    if (project.state_path.parent / "state.json.backup").exists():
        parse_state((project.state_path.parent / "state.json.backup").read_bytes())
    assert project.lock_holder_pid() is None
    again = project.run("plan", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr


def holder_in_the_middle(project: Project) -> int:
    """Wait until one run holds the lock with every create parked at the gate; its pid."""
    wait_until(
        lambda: (
            project.emulator.waiting == len(stock_ids()) and project.lock_holder_pid() is not None
        ),
        "one apply to hold the lock with its creates in flight",
    )
    pid = project.lock_holder_pid()
    assert pid is not None
    return pid


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("lock_wait", ["0", "0.5"])
def test_the_second_apply_fails_naming_the_lock_holder(project: Project, lock_wait: str) -> None:
    args = ["apply", "--yes", "--lock-wait", lock_wait]
    with both(project, args, args) as procs:
        holder = holder_in_the_middle(project)
        winner = next(p for p in procs if p.pid == holder)
        loser = next(p for p in procs if p.pid != holder)
        code, out, err = finish(loser)  # exits while the holder is still parked
        assert winner.poll() is None
        assert code == 1, out + err
        assert f":{holder}, running `apply`" in err, err
        assert "reconciler state unlock" in err and "Traceback" not in err
        project.emulator.open_gate()
        code, out, err = finish(winner)
        assert code == 0, out + err
        assert "Traceback" not in err
    assert_settled(project)


def test_the_second_apply_waits_for_the_lock(project: Project) -> None:
    args = ["apply", "--yes", "--lock-wait", str(DEADLINE)]
    with both(project, args, args) as procs:
        holder = holder_in_the_middle(project)
        waiter = next(p for p in procs if p.pid != holder)
        # The holder is parked and writes nothing; each attempt of the waiter creates and
        # removes a temporary lock file next to the state, which moves the folder's mtime.
        folder = project.state_path.parent
        before = folder.stat().st_mtime_ns
        wait_until(lambda: folder.stat().st_mtime_ns != before, "the waiter to try the lock")
        assert waiter.poll() is None, "the waiter gave up instead of waiting"
        project.emulator.open_gate()
        results = {p.pid: finish(p) for p in procs}
    for code, out, err in results.values():
        assert code == 0, out + err
        assert "Traceback" not in err
    assert "No changes to apply." in results[waiter.pid][1]
    assert_settled(project)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
def test_two_applies_of_one_saved_plan_apply_it_once(project: Project) -> None:
    planned = project.run("plan", "--out", "plan.json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    args = ["apply", "plan.json", "--lock-wait", str(DEADLINE)]
    with both(project, args, args) as procs:
        holder = holder_in_the_middle(project)
        project.emulator.open_gate()
        results = {p.pid: finish(p) for p in procs}
    waiter = next(pid for pid in results if pid != holder)
    assert results[holder][0] == 0, results[holder]
    code, out, err = results[waiter]
    assert code == 1, out + err
    assert "Traceback" not in err and "stale plan" in err, err
    assert_settled(project)
