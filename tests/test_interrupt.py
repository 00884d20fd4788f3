"""Ctrl-C and SIGTERM during apply: no new request starts after the signal.

A real `reconciler apply` child process creates 100 queued stocks, paced at 2 a second with 8
workers, against an emulator in this process that answers in milliseconds. So at any moment at
most one request is on the wire, while up to 8 creates wait for the rate limiter: after the
signal those must not be sent, and at most one more stock (the one on the wire) may appear. The state is saved, the summary lists what was skipped, the
lock is released, and the next apply creates the rest exactly once.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_support import (
    CliChildren,
    LocalEmulator,
    Workspace,
    finish,
    make_workspace,
    wait_for,
    write_generated_stocks,
)
from tests.pg_support import BACKENDS, current_state, lock_of, with_backend

STOCKS = 100
CONCURRENCY = 8
ON_THE_WIRE = 1


@pytest.fixture(scope="module")
def children() -> CliChildren:
    return CliChildren()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ws(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    ws = make_workspace(
        tmp_path / "project", concurrency=CONCURRENCY, creates_per_second=2, max_attempts=1
    )
    return with_backend(ws, backend, request, monkeypatch)


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    # The apply runs as a child process: it reaches the emulator over loopback.
    with LocalEmulator(ws, loopback=True) as running:
        yield running


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_no_new_request_starts_after_the_signal(
    ws: Workspace, local: LocalEmulator, children: CliChildren, signum: int, code: int
) -> None:
    ids = write_generated_stocks(ws.stocks_dir, STOCKS, kinds=("busifavor",))
    log = ws.root / "apply.log"
    proc = children.start(ws, "apply", "--yes", log=log)
    try:
        wait_for(lambda: len(local.stocks) >= 3 or not proc.is_alive(), "the first creates")
        assert proc.is_alive() and proc.pid is not None, "the apply finished too soon"
        before = len(local.stocks)
        os.kill(proc.pid, signum)
    finally:
        exit_code = finish(proc)
    output = log.read_text(encoding="utf-8")
    after = len(local.stocks)
    assert exit_code == code, output
    assert after - before <= ON_THE_WIRE, (before, after, output)
    assert after < STOCKS
    assert "Interrupted: no new request starts" in output, output
    assert "skipped" in output, output
    assert lock_of(ws) is None
    recorded = {s.id: s.stock_id for s in current_state(ws).stocks.values() if s.stock_id}
    assert len(recorded) == after, "every stock created is in the state"
    assert not [s for s in current_state(ws).stocks.values() if s.pending is not None], output

    ws.write_project(creates_per_second=1000)
    rest = ws.cli("apply", "--yes")
    assert rest.exit_code == 0, str(rest)
    assert len(local.stocks) == STOCKS
    stock_ids = {s.id: s.stock_id for s in current_state(ws).stocks.values()}
    assert sorted(stock_ids) == sorted(ids)
    assert len(set(stock_ids.values())) == STOCKS
