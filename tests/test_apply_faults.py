"""apply under every fault the emulator injects, for both kinds and both out_request_no modes.

Each case has stocks of both kinds (two favor, two busifavor) and puts a fault on the first few
requests (the creates of both kinds, then list look-ups, read-backs, refreshes), then runs
`apply --yes` until it succeeds, at most `ROUNDS` times. A busifavor create that WeChat Pay says
was already used (reject mode) cannot be looked up, so the test does what the suggestion says: finds the stock_id (here: in the emulator, as a person would
in 商户平台) and runs `reconciler state import`. In the end there must be exactly one remote stock
per id, the state must map every id to it, and a plan must show no changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorSettings, Faults
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    Run,
    Workspace,
    assert_one_remote_per_id,
    copy_stocks,
    dump_yaml,
    edit_stock,
    emulator_stocks,
    generated_stock,
    make_workspace,
    remote_by_request_no,
    write_generated_stocks,
)
from tests.pg_support import BACKENDS, current_state, stock_ids_of, with_backend

ROUNDS = 6
FAULTED_REQUESTS = 5
RESULT = re.compile(r"^\[\d+/\d+\] (?P<mark>[✓✗?-]) (?P<id>[a-z0-9-]+): (?P<message>.*)$")
IMPORT = re.compile(r"reconciler state import (?P<id>[a-z0-9-]+) <stock_id>")


@dataclass(frozen=True)
class Fault:
    faults: Faults
    project: dict[str, Any] = field(default_factory=dict)


FAULTS: dict[str, Fault] = {
    # Slower than the client waits: a timeout after the emulator committed.
    "latency": Fault(
        Faults(latency_ms=900, next_requests=FAULTED_REQUESTS), {"read_timeout_seconds": 0.3}
    ),
    "error_500": Fault(Faults(error_500_share=1.0, next_requests=FAULTED_REQUESTS)),
    "commit_then_500": Fault(Faults(commit_then_500_share=1.0, next_requests=FAULTED_REQUESTS)),
    "commit_then_drop": Fault(Faults(commit_then_drop_share=1.0, next_requests=FAULTED_REQUESTS)),
    "rate_limit_burst": Fault(Faults(rate_limit_share=1.0, next_requests=FAULTED_REQUESTS)),
    "bad_signature": Fault(Faults(bad_signature_share=1.0, next_requests=FAULTED_REQUESTS)),
    "signtest_probe": Fault(Faults(probe_signature_share=1.0, next_requests=FAULTED_REQUESTS)),
    "skewed_clock": Fault(Faults(response_clock_skew_seconds=600, next_requests=FAULTED_REQUESTS)),
    # The client's own retry (same body bytes, same number) before the applier sees anything.
    "commit_then_drop_retried": Fault(
        Faults(commit_then_drop_share=1.0, next_requests=FAULTED_REQUESTS), {"max_attempts": 2}
    ),
}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ws(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Workspace:
    return with_backend(make_workspace(tmp_path / "project"), backend, request, monkeypatch)


def both_kinds(ws: Workspace) -> list[str]:
    """The repository's three examples plus a generated favor: two stocks of each kind."""
    ids = copy_stocks(ws.stocks_dir)
    return sorted(ids + write_generated_stocks(ws.stocks_dir, 1, ["favor"]))


def check_reported(run: Run, kinds: dict[str, str], reuse: str) -> set[str]:
    """Every stock that did not succeed is named with a reason, and an unresolved one with what
    to do next; returns the ids whose suggestion is a `state import`."""
    lines = run.stdout.splitlines()
    imports: set[str] = set()
    for i, line in enumerate(lines):
        found = RESULT.match(line)
        if found is None or found["mark"] == "✓":
            continue
        assert found["message"], str(run)
        assert f"{found['id']}: " in run.stderr, str(run)  # the summary repeats it
        if found["mark"] == "?":
            assert i + 1 < len(lines) and lines[i + 1].strip().startswith("next: "), str(run)
            wanted = IMPORT.search(lines[i + 1])
            if wanted is not None:
                assert wanted["id"] == found["id"], str(run)
                imports.add(found["id"])
    if run.exit_code != 0 and "Apply finished" not in run.stdout:
        assert "error: " in run.stderr, str(run)
    # Only a busifavor create in reject mode needs a person; the next apply settles the rest
    # (favor: through the list endpoint), even where it suggests an import.
    return {i for i in imports if kinds[i] == "busifavor" and reuse == "reject"}


def import_from_remote(ws: Workspace, local: LocalEmulator, stock: str) -> None:
    """What a person does with the suggestion: find the stock_id, import it."""
    number = current_state(ws).stock(stock).out_request_no
    found = remote_by_request_no(emulator_stocks(local.emu)).get(number)
    assert found is not None and len(found) == 1, (stock, found)
    run = ws.cli("state", "import", stock, found[0])
    assert run.exit_code == 0, str(run)


def converge(ws: Workspace, local: LocalEmulator, reuse: str) -> list[Run]:
    kinds = ws.kinds()
    runs: list[Run] = []
    for _ in range(ROUNDS):
        run = ws.cli("apply", "--yes")
        runs.append(run)
        imports = check_reported(run, kinds, reuse)
        if run.exit_code == 0:
            return runs
        assert run.exit_code == 1, str(run)
        for stock in sorted(imports):
            import_from_remote(ws, local, stock)
    raise AssertionError(f"apply did not succeed in {ROUNDS} rounds:\n" + "\n".join(map(str, runs)))


@pytest.fixture(params=["idempotent", "reject"])
def reuse(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def local(ws: Workspace, reuse: str) -> Iterator[LocalEmulator]:
    # On a loopback port: a latency longer than the read timeout must time out on a socket.
    settings = EmulatorSettings(out_request_no_reuse=reuse)  # type: ignore[arg-type]
    with LocalEmulator(ws, settings, loopback=True) as running:
        yield running


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_creates_settle_under_fault(
    ws: Workspace, local: LocalEmulator, reuse: str, fault: str
) -> None:
    ids = both_kinds(ws)
    ws.write_project(**FAULTS[fault].project)
    local.set_faults(FAULTS[fault].faults)

    converge(ws, local, reuse)

    assert local.emu.faults_remaining == 0
    counted = [e.endpoint for e in local.emu.request_log if e.endpoint is not None]
    faulted = set(counted[: FAULTS[fault].faults.next_requests or 0])
    assert {"favor.create", "busifavor.create"} <= faulted, f"the fault missed a kind: {faulted}"
    assert_one_remote_per_id(current_state(ws), emulator_stocks(local.emu), ids)
    final = ws.cli("plan", "--detailed-exitcode")
    assert final.exit_code == 0, str(final)


UPDATE_FAULTS = [
    "commit_then_500",
    "latency",
    pytest.param("commit_then_drop", marks=pytest.mark.long),
    pytest.param("bad_signature", marks=pytest.mark.long),
]


@pytest.mark.parametrize("fault", UPDATE_FAULTS)
def test_busifavor_updates_settle_under_fault(
    ws: Workspace, local: LocalEmulator, reuse: str, fault: str
) -> None:
    ids = copy_stocks(ws.stocks_dir, ["busifavor"])
    applied = ws.cli("apply", "--yes")
    assert applied.exit_code == 0, str(applied)
    stock = "member-day-latte-8-off"

    def change(data: dict[str, Any]) -> None:
        data["spec"]["comment"] = "changed under fault"
        data["spec"]["stock_send_rule"]["max_coupons"] = 60000

    edit_stock(ws.stock_file(stock), change)
    ws.write_project(**FAULTS[fault].project)
    # Skip the refresh of the plan apply makes first: the faults hit modify and budget.
    local.set_faults(
        Faults(
            **{
                **FAULTS[fault].faults.__dict__,
                "endpoints": frozenset({"busifavor.modify", "busifavor.budget"}),
                "next_requests": 2,
            }
        )
    )

    converge(ws, local, reuse)

    assert local.emu.faults_remaining == 0, "the fault never fired"
    stock_id = stock_ids_of(ws)[stock]
    assert stock_id is not None
    body = local.stocks[stock_id].body
    assert body["comment"] == "changed under fault"
    assert body["stock_send_rule"]["max_coupons"] == 60000
    assert current_state(ws).stock(stock).pending is None
    assert_one_remote_per_id(current_state(ws), emulator_stocks(local.emu), ids)
    final = ws.cli("plan", "--detailed-exitcode")
    assert final.exit_code == 0, str(final)


def test_favor_look_up_never_takes_another_ids_stock(ws: Workspace, local: LocalEmulator) -> None:
    """Two favor stocks that differ only where the list endpoint does not look (comment): when
    one's create is in doubt, the other's stock must not be taken for it."""
    twin_a, twin_b = (generated_stock("favor", i) for i in (1, 2))
    twin_b["spec"]["stock_name"] = twin_a["spec"]["stock_name"]
    twin_a["spec"]["comment"], twin_b["spec"]["comment"] = "twin a", "twin b"
    folder = ws.stocks_dir / "favor"
    folder.mkdir(parents=True)
    (folder / "b.yaml").write_text(dump_yaml(twin_b), encoding="utf-8")
    ws.write_project(concurrency=1)  # one request at a time: the order below is the order sent
    # b is created but its answer is lost, and so is its look-up.
    local.set_faults(
        Faults(
            commit_then_500_share=1.0,
            endpoints=frozenset({"favor.create", "favor.list"}),
            next_requests=2,
        )
    )
    first = ws.cli("apply", "--yes")
    assert first.exit_code == 1, str(first)
    # a arrives; its create fails before WeChat Pay processes it, so a looks itself up and
    # finds b's stock, the only one with its visible fields.
    (folder / "a.yaml").write_text(dump_yaml(twin_a), encoding="utf-8")
    local.set_faults(
        Faults(error_500_share=1.0, endpoints=frozenset({"favor.create"}), next_requests=1)
    )

    converge(ws, local, local.settings.out_request_no_reuse)

    ids = sorted(ws.kinds())
    assert_one_remote_per_id(current_state(ws), emulator_stocks(local.emu), ids)
    comments = {s.stock_id: s.body["comment"] for s in local.stocks.values()}
    assert {i: comments[str(stock_ids_of(ws)[i])] for i in ids} == {
        twin_a["id"]: "twin a",
        twin_b["id"]: "twin b",
    }


ACTIVATION_FAULTS = [
    "commit_then_500",
    "commit_then_drop",
    "error_500",
    "latency",
    pytest.param("bad_signature", marks=pytest.mark.long),
    pytest.param("rate_limit_burst", marks=pytest.mark.long),
]


@pytest.mark.parametrize("fault", ACTIVATION_FAULTS)
def test_activations_settle_under_fault(
    ws: Workspace, local: LocalEmulator, reuse: str, fault: str
) -> None:
    """Faults on the starts that follow the creates: one stock per id, each 预充值 stock's
    budget locked exactly once (no double activation), and the state's status equal to the
    emulator's."""
    ids = both_kinds(ws)
    ws.write_project(**FAULTS[fault].project)
    local.set_faults(
        Faults(
            **{
                **FAULTS[fault].faults.__dict__,
                "endpoints": frozenset({"favor.start"}),
                "next_requests": 2,
            }
        )
    )

    converge(ws, local, reuse)

    assert local.emu.faults_remaining == 0, "the fault never fired"
    assert_one_remote_per_id(current_state(ws), emulator_stocks(local.emu), ids)
    state = current_state(ws)
    favors = [s for s in local.stocks.values() if s.kind == "favor"]
    assert favors and all(s.status == "running" for s in favors)
    for s in favors:
        entry = next(e for e in state.stocks.values() if e.stock_id == s.stock_id)
        assert (entry.observed or {}).get("status") == s.status
    locked = sum(s.body["stock_use_rule"]["max_amount"] for s in favors if not s.body["no_cash"])
    assert local.emu.balance(MCHID) == (None, locked)
    final = ws.cli("plan", "--detailed-exitcode")
    assert final.exit_code == 0, str(final)
