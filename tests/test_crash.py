"""apply killed with SIGKILL at random moments, and the emulator killed under it.

The emulator runs as its own process on a data file (so it outlives a killed apply, and can be
killed and restarted itself), with latency on every request so that kills land mid-request.
Between runs the stock files change the way a busy repository does (new stocks, modified
comments, raised budgets), so every run has creates and updates in flight. Each run is killed
at a random moment after it takes the state lock; afterwards the state file (and its backup)
must parse, a stale lock is broken with `reconciler state unlock`, and in reject mode a busifavor
create that cannot be looked up is imported, as its suggestion says. Finally apply runs to
completion: exactly one remote stock per id, every id mapped in the state, every update landed,
and a plan shows no changes.

Apply runs are real child processes (`CliChildren`), forked from a server that has reconciler
imported so that 200 of them take seconds, not minutes; `test_a_killed_cli_process...` uses
the plain `python -m reconciler` process once, and shows the stale lock it leaves.

The kills run against both state backends: the local file and PostgreSQL (where a kill may
land inside a save's transaction); PostgreSQL's longer runs need RECONCILER_LONG=1.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import pytest

from reconciler.codes import uploaded
from reconciler.emulator.settings import ReuseMode
from reconciler.state.lock import is_stale
from reconciler.state.store import StateStore, parse_state
from tests.e2e_support import (
    MCHID,
    CliChildren,
    EmulatorProcess,
    Workspace,
    assert_one_remote_per_id,
    edit_stock,
    finish,
    load_yaml,
    make_workspace,
    remote_by_request_no,
    stopped,
    wait_for,
    write_code_stock,
    write_codes,
    write_generated_stocks,
)
from tests.pg_support import current_state, lock_of, state_of, with_backend

STOCKS = 30
MERCHANTS = (MCHID, "1900000002")
"""Two merchants: each has its own client, rate limits and concurrency during an apply."""
LATENCY_MS = 20
FIRST_WINDOW_SECONDS = 1.0
"""Kills land uniformly in a window after the run takes the lock. It adapts to cover whole
runs: it grows after every kill and shrinks to a run's length when one ends before its kill."""
EMULATOR_KILL_EVERY = 5
NEW_STOCK_EVERY = 4
SETTLE_ROUNDS = 6
SEED = int(os.environ.get("RECONCILER_CRASH_SEED", "20270201"))


@dataclass
class Tally:
    killed: int = 0
    """Runs killed while still running."""
    finished: int = 0
    """Runs that ended before their moment came."""
    left_pending: int = 0
    """Kills after which the state showed a request in flight."""
    emulator_kills: int = 0
    imports: int = 0


@pytest.fixture(scope="module")
def children() -> CliChildren:
    return CliChildren()


BOTH = ["local", "postgres"]
BOTH_POSTGRES_LONG = ["local", pytest.param("postgres", marks=pytest.mark.long)]


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "local"))


@pytest.fixture
def ws(
    tmp_path: Path,
    backend: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Workspace:
    # One attempt per request: a failure goes straight to the applier, and nothing sleeps.
    ws = make_workspace(
        tmp_path / "project", mchids=MERCHANTS, max_attempts=1, read_timeout_seconds=5.0
    )
    return with_backend(ws, backend, request, monkeypatch)


@pytest.fixture
def emulator(ws: Workspace, request: pytest.FixtureRequest) -> Iterator[EmulatorProcess]:
    reuse: ReuseMode = getattr(request, "param", "idempotent")
    with EmulatorProcess(ws, reuse=reuse, latency_ms=LATENCY_MS) as running:
        ws.write_project(running.base_url)
        yield running


def busifavor_files(ws: Workspace) -> list[Path]:
    return sorted((ws.stocks_dir / "busifavor").glob("*.yaml"))


def churn(ws: Workspace, rng: random.Random, run: int) -> None:
    """What happens to the files between two runs: a new stock now and then, and changes
    WeChat Pay allows (modify, budget) to a few busifavor stocks. Values are never reverted."""
    if run % NEW_STOCK_EVERY == 0:
        kind = ("favor", "busifavor")[run // NEW_STOCK_EVERY % 2]
        write_generated_stocks(ws.stocks_dir, 1, [kind], STOCKS + run, MERCHANTS)
    for path in rng.sample(busifavor_files(ws), 2):

        def change(data: dict[str, Any]) -> None:
            data["spec"]["comment"] = f"crash run {run}"
            if rng.random() < 0.5:
                data["spec"]["stock_send_rule"]["max_coupons"] += 1000

        edit_stock(path, change)


def check_state(ws: Workspace) -> int:
    """The state and its backup parse whenever they exist; returns how many requests the
    state has in flight."""
    pending = 0
    state = state_of(ws)  # a local state file is parsed whole
    if state is not None:
        pending = sum(1 for s in state.stocks.values() if s.pending is not None)
    backup = ws.state_path.with_name(ws.state_path.name + ".backup")
    if backup.exists():
        parse_state(backup.read_bytes())
    return pending


def break_stale_lock(ws: Workspace) -> None:
    """What a person does after a crash: check the holder is gone, then `state unlock`."""
    info = lock_of(ws)
    if info is None:
        return
    assert is_stale(info), f"a live run holds the lock: {info}"
    run = ws.cli("state", "unlock", info.lock_id)
    assert run.exit_code == 0, str(run)


def import_unresolved(ws: Workspace, emulator: EmulatorProcess) -> int:
    """Import every busifavor create WeChat Pay called "already used" (reject mode), finding
    its stock_id by out_request_no, as a person would in 商户平台."""
    state = state_of(ws)
    if state is None:
        return 0
    remote = remote_by_request_no(emulator.stocks())
    done = 0
    for st in state.stocks.values():
        if st.kind == "busifavor" and st.pending and st.pending.outcome == "already_exists":
            found = remote.get(st.out_request_no)
            assert found is not None and len(found) == 1, (st.id, found)
            run = ws.cli("state", "import", st.id, found[0])
            assert run.exit_code == 0, str(run)
            done += 1
    return done


def lock_taken_or_exited(ws: Workspace, proc: BaseProcess) -> bool:
    return lock_of(ws) is not None or not proc.is_alive()


def crash_runs(
    ws: Workspace,
    emulator: EmulatorProcess,
    children: CliChildren,
    runs: int,
    rng: random.Random,
    between: Callable[[int], None] = lambda run: None,
) -> Tally:
    tally = Tally()
    window = FIRST_WINDOW_SECONDS
    for run in range(runs):
        churn(ws, rng, run)
        between(run)
        proc = children.start(ws, "apply", "--yes", log=ws.root / f"apply-{run:03d}.log")
        try:
            wait_for(partial(lock_taken_or_exited, ws, proc), "the apply to take the lock")
            locked = time.monotonic()
            proc.join(rng.uniform(0.0, window))
            if proc.exitcode is not None:
                tally.finished += 1
                window = 1.2 * (time.monotonic() - locked)
            elif run % EMULATOR_KILL_EVERY == EMULATOR_KILL_EVERY - 1:
                # The emulator dies instead; the run carries on against the restarted one.
                emulator.kill()
                emulator.start()
                tally.emulator_kills += 1
            else:
                proc.kill()
                tally.killed += 1
                window *= 1.15
                if check_state(ws):
                    tally.left_pending += 1
        finally:
            finish(proc)
        check_state(ws)
        break_stale_lock(ws)
        tally.imports += import_unresolved(ws, emulator)
    return tally


def settle(ws: Workspace, emulator: EmulatorProcess, tally: Tally) -> None:
    """apply until a plan shows nothing to do, importing where a run says so. A recovered
    create whose file changed meanwhile is created as first sent; the change to it is the
    next run's update ("the change shows after"), so this can take two successful runs."""
    outputs = []
    for _ in range(SETTLE_ROUNDS):
        run = ws.cli("apply", "--yes")
        outputs.append(str(run))
        if run.exit_code == 0:
            final = ws.cli("plan", "--detailed-exitcode")
            outputs.append(str(final))
            if final.exit_code == 0:
                return
            assert final.exit_code == 2, str(final)
        tally.imports += import_unresolved(ws, emulator)
    raise AssertionError("apply never settled:\n" + "\n".join(outputs))


def check_converged(ws: Workspace, emulator: EmulatorProcess) -> None:
    ids = sorted(ws.kinds())
    remote = emulator.stocks()
    state = current_state(ws)
    assert_one_remote_per_id(state, remote, ids)
    # Every 代金券 went live exactly once: running, recorded as running, and each 预充值
    # budget locked once per merchant (a double activation would lock it twice).
    favors = [s for s in remote if s["kind"] == "favor"]
    assert favors and all(s["status"] == "running" for s in favors), favors
    recorded = {s.stock_id: (s.observed or {}).get("status") for s in state.stocks.values()}
    assert all(recorded[s["stock_id"]] == "running" for s in favors)
    data = json.loads(ws.emulator_data.read_text(encoding="utf-8"))
    for mchid in MERCHANTS:
        locked = sum(
            s["body"]["stock_use_rule"]["max_amount"]
            for s in favors
            if s["creator_mchid"] == mchid and not s["body"]["no_cash"]
        )
        assert data["merchants"][mchid]["locked_fen"] == locked, mchid
    bodies = {s["stock_id"]: s["body"] for s in remote}
    for path in busifavor_files(ws):
        wanted = load_yaml(path)
        stock_id = state.stock(wanted["id"]).stock_id
        body = bodies[stock_id]
        assert body.get("comment") == wanted["spec"].get("comment"), path
        want_max = wanted["spec"]["stock_send_rule"]["max_coupons"]
        assert body["stock_send_rule"]["max_coupons"] == want_max, path


def crash_test(ws: Workspace, emulator: EmulatorProcess, children: CliChildren, runs: int) -> Tally:
    """`runs` kills, then settle and check: 0 remote stocks lost, 0 created twice."""
    write_generated_stocks(ws.stocks_dir, STOCKS, merchants=MERCHANTS)
    rng = random.Random(SEED)
    tally = crash_runs(ws, emulator, children, runs, rng)
    settle(ws, emulator, tally)
    check_converged(ws, emulator)
    print(f"seed {SEED}: {tally}")
    return tally


@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_apply_killed_at_random_moments(
    ws: Workspace, emulator: EmulatorProcess, children: CliChildren, backend: str
) -> None:
    tally = crash_test(ws, emulator, children, runs=20 if backend == "local" else 8)
    assert tally.killed >= (8 if backend == "local" else 3), tally
    if backend == "local":  # eight PostgreSQL runs are too few for the window to cover a run
        assert tally.finished >= 1, f"no run ever reached its end: {tally}"
    assert tally.left_pending >= 1, f"no kill landed mid-request: {tally}"
    assert tally.emulator_kills >= 1, tally


@pytest.mark.long
@pytest.mark.parametrize("emulator", ["idempotent", "reject"], indirect=True)
@pytest.mark.parametrize("backend", BOTH, indirect=True)
def test_apply_killed_at_random_moments_long(
    ws: Workspace, emulator: EmulatorProcess, children: CliChildren
) -> None:
    tally = crash_test(ws, emulator, children, runs=200)
    assert tally.killed >= 100, tally
    assert tally.finished >= 1, tally
    assert tally.left_pending >= 10, tally


def test_a_killed_cli_process_leaves_a_stale_lock_and_nothing_else(
    ws: Workspace, emulator: EmulatorProcess
) -> None:
    ids = write_generated_stocks(ws.stocks_dir, 12)
    with open(ws.root / "apply.log", "wb") as log:
        proc = subprocess.Popen(
            ws.command("apply", "--yes"), stdout=log, stderr=log, env=ws.env(), cwd=ws.root
        )
    with stopped(proc):
        wait_for(lambda: check_state(ws) > 0 or proc.poll() is not None, "a create in flight")
        assert proc.poll() is None, "the apply finished before a create was in flight"
        proc.kill()
        proc.wait()
    assert check_state(ws) > 0

    locked = ws.cli("apply", "--yes")
    assert locked.exit_code == 1, str(locked)
    assert f"The lock is stale: no process {proc.pid} is running" in locked.stderr, str(locked)
    info = lock_of(ws)
    assert info is not None
    assert f"reconciler state unlock {info.lock_id}" in locked.stderr, str(locked)

    break_stale_lock(ws)
    plan = ws.cli("plan", "--format", "json")
    assert "recover" in {c["action"] for c in plan.json()["changes"]}, str(plan)
    settle(ws, emulator, Tally())
    assert_one_remote_per_id(current_state(ws), emulator.stocks(), ids)


@pytest.mark.parametrize("backend", BOTH_POSTGRES_LONG, indirect=True)
def test_ctrl_c_lets_requests_in_flight_finish_and_releases_the_lock(
    ws: Workspace, emulator: EmulatorProcess, children: CliChildren
) -> None:
    ids = write_generated_stocks(ws.stocks_dir, STOCKS)
    log = ws.root / "apply.log"
    proc = children.start(ws, "apply", "--yes", log=log)
    try:
        wait_for(lambda: check_state(ws) > 0 or not proc.is_alive(), "a create in flight")
        assert proc.is_alive() and proc.pid is not None, "the apply finished too soon"
        os.kill(proc.pid, signal.SIGINT)
    finally:
        code = finish(proc)
    output = log.read_text(encoding="utf-8")
    assert code == 130, output
    assert "Interrupted: no new request starts" in output, output
    assert check_state(ws) == 0, "a request was left in flight"
    assert lock_of(ws) is None
    stock_ids = {s.id: s.stock_id for s in current_state(ws).stocks.values()}
    created = {i: sid for i, sid in stock_ids.items() if sid is not None}
    # Only requests already on the wire finish: a create whose intent was saved but which
    # still waited for a slot is forgotten, so this may be none at all.
    assert len(created) < len(ids), output
    assert len(emulator.stocks()) == len(created), output

    settle(ws, emulator, Tally())
    assert_one_remote_per_id(current_state(ws), emulator.stocks(), ids)


IMAGE_STOCKS = 8
IMAGE_RUNS = 6


def test_apply_with_image_uploads_killed_at_random_moments(
    ws: Workspace, emulator: EmulatorProcess, children: CliChildren
) -> None:
    """Every stock names a logo (and each 商家券 a coupon image) as a file. Whatever the
    kills, each merchant uploads each content once, plus once more only where a kill left that
    upload's outcome unknown (the state shows its intent without a URL); every stock ends with
    the recorded URL, and no stand-in token ever reaches WeChat Pay."""
    from tests.media_support import write_image

    write_generated_stocks(ws.stocks_dir, IMAGE_STOCKS, merchants=MERCHANTS)
    write_image(ws.stocks_dir / "images" / "logo.png")
    write_image(ws.stocks_dir / "images" / "coupon.png", 850, 350, color="blue")
    for path in sorted(ws.stocks_dir.rglob("gen-*.yaml")):

        def add_images(data: dict[str, Any]) -> None:
            spec = data["spec"]
            if data["kind"] == "favor":
                spec.setdefault("pattern_info", {"description": "满100减10"})
                spec["pattern_info"]["merchant_logo"] = {"file": "../images/logo.png"}
            else:
                spec["display_pattern_info"]["merchant_logo_url"] = {"file": "../images/logo.png"}
                spec["display_pattern_info"]["coupon_image_url"] = {"file": "../images/coupon.png"}

        edit_stock(path, add_images)
    rng = random.Random(SEED)
    in_doubt: dict[str, int] = {}
    for run in range(IMAGE_RUNS):
        churn(ws, rng, run)
        proc = children.start(ws, "apply", "--yes", log=ws.root / f"images-{run:03d}.log")
        try:
            wait_for(partial(lock_taken_or_exited, ws, proc), "the apply to take the lock")
            proc.join(rng.uniform(0.0, 0.6))
            if proc.exitcode is None:
                proc.kill()
        finally:
            finish(proc)
        if ws.state_path.exists():
            # Read as a run reads it: the snapshot with its journal replayed.
            seen = StateStore(ws.state_path, ws.clock.clock()).load()
            for merchant, images in seen.images.items():
                for sha, image in images.items():
                    if image.media_url is None:
                        key = f"{merchant}/{sha}"
                        in_doubt[key] = in_doubt.get(key, 0) + 1
        break_stale_lock(ws)
        import_unresolved(ws, emulator)
    settle(ws, emulator, Tally())
    check_converged(ws, emulator)

    state = ws.state()
    uploads = json.loads(ws.emulator_data.read_text(encoding="utf-8"))["uploads"]
    assert len(uploads) == 2 * len(MERCHANTS), uploads  # two contents for each merchant
    for key, count in uploads.items():
        assert count <= 1 + in_doubt.get(key, 0), (key, count, in_doubt)
    with_images = 0
    for stock in emulator.stocks():
        text = json.dumps(stock["body"])
        assert "media:sha256:" not in text
        urls = set(state.media_urls(stock["creator_mchid"]).values())
        body = stock["body"]
        pattern = body.get("pattern_info") or body.get("display_pattern_info") or {}
        logo = pattern.get("merchant_logo") or pattern.get("merchant_logo_url")
        assert logo is None or logo in urls, stock
        with_images += logo is not None
    assert with_images == IMAGE_STOCKS
    print(f"image uploads {uploads}, in doubt after kills {in_doubt}")


# --- code pools and callbacks ------------------------------------------------------------------


def code_stock_files(ws: Workspace) -> list[Path]:
    return sorted((ws.stocks_dir / "busifavor").glob("gen-codes-*.yaml"))


def more_codes_and_callbacks(ws: Workspace, emulator: EmulatorProcess, chunk: int) -> None:
    """Between chunks of killed runs: each code stock gets new codes (one batch or more), and
    every merchant's callback URLs change."""
    for path in code_stock_files(ws):
        codes = (path.parent / load_yaml(path)["codes"]["file"]).read_text().split()
        start = len(codes)
        write_codes(path, codes + [f"{path.stem}-{i:05d}" for i in range(start, start + 1000)])
    urls = {
        m: {k: f"https://shop.example.com/{m}/{k}/v{chunk}" for k in ("favor", "busifavor")}
        for m in MERCHANTS
    }
    ws.write_project(emulator.base_url, callbacks=urls)


def check_codes_and_callbacks(ws: Workspace, emulator: EmulatorProcess) -> None:
    """No code reached WeChat Pay under two numbers, and the state is WeChat Pay's truth."""
    state = ws.state()
    remote = {s["stock_id"]: s for s in emulator.stocks()}
    for path in code_stock_files(ws):
        data = load_yaml(path)
        wanted = set((path.parent / data["codes"]["file"]).read_text().split())
        st = state.stock(data["id"])
        assert st.stock_id is not None
        there = remote[st.stock_id]
        assert there["codes_sent_again"] == 0, path
        assert set(there["codes"]) == wanted, path
        assert uploaded(st) == wanted and all(b.done for b in st.code_batches.values()), path
    data = json.loads(ws.emulator_data.read_text(encoding="utf-8"))
    for mchid, urls in ws.callbacks.items():
        for kind, url in urls.items():
            assert data["callbacks"][f"{kind}:{mchid}"] == url
            record = state.callbacks[f"{mchid}/{kind}"]
            assert (record.url, record.pending) == (url, None)


def code_crash_test(
    ws: Workspace, emulator: EmulatorProcess, children: CliChildren, runs: int
) -> Tally:
    write_generated_stocks(ws.stocks_dir, 4, merchants=MERCHANTS)
    for i, mchid in enumerate(MERCHANTS):
        write_code_stock(ws.stocks_dir, i, [f"seed-{mchid}-{n:04d}" for n in range(1000)], mchid)
    rng = random.Random(SEED)
    in_doubt = []

    def between(run: int) -> None:
        if ws.state_path.exists():  # what the previous (killed) run left
            batches = [b for s in ws.state().stocks.values() for b in s.code_batches.values()]
            in_doubt.append(sum(1 for b in batches if not b.done))
        if run % 3 == 0:
            more_codes_and_callbacks(ws, emulator, run // 3)

    tally = crash_runs(ws, emulator, children, runs, rng, between)
    print(f"seed {SEED}: {tally}; code batches in doubt after each run: {in_doubt}")
    settle(ws, emulator, tally)
    check_converged(ws, emulator)
    check_codes_and_callbacks(ws, emulator)
    return tally


def test_code_uploads_and_callbacks_killed_at_random_moments(
    ws: Workspace, emulator: EmulatorProcess, children: CliChildren
) -> None:
    tally = code_crash_test(ws, emulator, children, runs=6)
    assert tally.killed >= 3, tally


@pytest.mark.long
@pytest.mark.parametrize("emulator", ["idempotent", "reject"], indirect=True)
def test_code_uploads_and_callbacks_killed_at_random_moments_long(
    ws: Workspace, emulator: EmulatorProcess, children: CliChildren
) -> None:
    tally = code_crash_test(ws, emulator, children, runs=60)
    assert tally.killed >= 30, tally
