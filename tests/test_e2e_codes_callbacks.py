"""Code pools and callback URLs end to end: the CLI against the emulator (in-process transport).

One apply creates a 商家券 in MERCHANT_UPLOAD mode and uploads its 450 codes in 3 batches, and
sets both callback URLs; a second apply sends nothing; a third, after one code is added and a
callback changed, sends one batch of one code and one callback request. The emulator answers
STATEMENT_CREATING for a moment after the create, which apply waits out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import EmulatorSettings
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    Workspace,
    make_workspace,
    write_code_stock,
    write_codes,
)

CODES = [f"LATTE-{i:04d}" for i in range(450)]
FAVOR_URL = "https://shop.example.com/wechatpay/favor"
BUSI_URL = "https://shop.example.com/wechatpay/busifavor"
SENDING = ("POST", "PATCH", "DELETE")
ELSEWHERE = "https://elsewhere.example.com/n"


def remote_callbacks(ws: Workspace) -> dict[str, str]:
    data = json.loads(ws.emulator_data.read_text(encoding="utf-8"))
    return dict(data["callbacks"])


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "project")


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    # 0.3 s of STATEMENT_CREATING after the create: the first batch is retried.
    settings = EmulatorSettings(code_upload_delay_seconds=0.3)
    with LocalEmulator(ws, settings, persist=True) as running:
        yield running


def sent(local: LocalEmulator) -> list[str]:
    """Endpoints of the requests that change something, since the last call."""
    out = [e.endpoint or "" for e in local.emu.request_log if e.method in SENDING]
    local.emu.clear_request_log()
    return out


def test_codes_and_callbacks_in_three_applies(ws: Workspace, local: LocalEmulator) -> None:
    stock_file = write_code_stock(ws.stocks_dir, 1, CODES)
    ws.write_project(callbacks={MCHID: {"favor": FAVOR_URL, "busifavor": BUSI_URL}})

    plan = ws.cli("plan")
    assert "upload 450 code(s)" in plan.stdout and "3 batch(es)" in plan.stdout, str(plan)
    assert f"callback favor: (none) → {FAVOR_URL}" in plan.stdout, str(plan)

    first = ws.cli("apply", "--yes")
    assert first.exit_code == 0, str(first)
    calls = sent(local)
    assert calls.count("busifavor.create") == 1
    uploads = [c for c in calls if c == "busifavor.upload_codes"]
    assert len(uploads) >= 3  # 3 batches, the first perhaps refused while the stock is made
    assert sorted(c for c in calls if "callback" in c) == [
        "busifavor.callback_set",
        "favor.callback_set",
    ]
    (stock,) = local.stocks.values()
    assert sorted(stock.codes) == sorted(CODES) and stock.codes_sent_again == 0
    assert len(set(stock.codes.values())) == 3  # three upload_request_nos
    state = ws.state()
    batches = state.stock("gen-codes-001").code_batches
    assert sorted(len(b.uploaded) for b in batches.values()) == [50, 200, 200]
    assert state.callbacks[f"{MCHID}/favor"].url == FAVOR_URL

    second = ws.cli("apply", "--yes")
    assert second.exit_code == 0, str(second)
    assert sent(local) == []

    write_codes(stock_file, [*CODES, "LATTE-9999"])
    ws.write_project(callbacks={MCHID: {"favor": FAVOR_URL, "busifavor": BUSI_URL + "/v2"}})
    third = ws.cli("apply", "--yes")
    assert third.exit_code == 0, str(third)
    assert sorted(sent(local)) == ["busifavor.callback_set", "busifavor.upload_codes"]
    (stock,) = local.stocks.values()
    assert len(stock.codes) == 451 and stock.codes_sent_again == 0
    assert remote_callbacks(ws)[f"busifavor:{MCHID}"] == BUSI_URL + "/v2"
    final = ws.cli("plan", "--detailed-exitcode")
    assert final.exit_code == 0, str(final)


def test_a_callback_changed_elsewhere_is_reported_as_drift(
    ws: Workspace, local: LocalEmulator
) -> None:
    ws.stocks_dir.mkdir()
    ws.write_project(callbacks={MCHID: {"favor": FAVOR_URL}})
    assert ws.cli("apply", "--yes").exit_code == 0
    local.restart(lambda data: data["callbacks"].update({f"favor:{MCHID}": ELSEWHERE}))
    plan = ws.cli("plan", "--format", "json")
    (change,) = plan.json()["changes"]
    assert change["action"] == "drift" and change["setting"] == "callback"
    assert change["fields"][0]["after"] == ELSEWHERE
    apply = ws.cli("apply", "--yes")
    assert apply.exit_code == 0 and sent(local) == []
