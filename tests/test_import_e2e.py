"""`reconciler import` end to end: stocks made by another client, adopted, planned empty.

The emulator runs in this process and is reached through its in-memory transport (the CLI's
requests are signed, verified and paced exactly as over a socket; only the socket is left
out, which the loopback tests elsewhere cover). The stocks are created by the project's
WeChat Pay client used directly, as a separate program would, with a varied mix of optional
fields; reconciler never saw their create bodies.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import EmulatorSettings
from reconciler.emulator.settings import RateLimit
from reconciler.limits import Limit
from reconciler.wechatpay.client import WeChatPayClient
from reconciler.wechatpay.ratelimit import RateLimiter
from tests.cli_invoke import invoke
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    Workspace,
    edit_stock,
    generated_stock,
    load_yaml,
    make_workspace,
    project_client,
)

FAVORS = 40
BUSIFAVORS = 10


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path / "project")


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    settings = EmulatorSettings()
    # The other program's creates are not what is measured here: no 60/min wait for them.
    settings.rate_limits["favor.create"] = RateLimit(10_000, 1.0)
    with LocalEmulator(ws, settings) as running:
        yield running


def other_client(ws: Workspace, local: LocalEmulator) -> WeChatPayClient:
    return project_client(ws, local, RateLimiter({"favor_create": Limit(10_000, 1.0)}))


def favor_body(i: int) -> dict[str, Any]:
    """A favor create body; every index varies the optional fields a different way."""
    spec: dict[str, Any] = copy.deepcopy(generated_stock("favor", i)["spec"])
    spec["stock_name"] = f"other {i:03d}" if i % 3 else f"满减{i}"
    spec["out_request_no"] = f"OTHER-FAVOR-{i:04d}"
    use = spec["coupon_use_rule"]
    if i % 2:
        spec.pop("comment", None)
    if i % 4 == 1:
        spec["stock_use_rule"].pop("max_amount_by_day", None)
    if i % 5 == 2:
        spec["pattern_info"] = {"description": f"第{i}批，满100可用"}
    if i % 5 == 3:
        spec.pop("pattern_info")
    if i % 3 == 0:
        use.pop("trade_type", None)
    if i % 4 == 2:
        use["goods_tag"] = [f"tag{i}", "spring"]
        use.pop("combine_use", None)
    if i % 6 == 5:
        use["available_items"] = [f"sku-{i}-a", f"sku-{i}-b"]
    if i % 7 == 3:
        use.pop("available_merchants", None)
    spec["no_cash"] = i % 2 == 0
    return spec


def busifavor_body(i: int) -> dict[str, Any]:
    spec: dict[str, Any] = copy.deepcopy(generated_stock("busifavor", i)["spec"])
    spec["stock_name"] = f"busi {i:02d}" if i % 2 else f"拿铁{i}"
    spec["out_request_no"] = f"OTHER-BUSI-{i:04d}"
    if i % 2:
        spec.pop("comment", None)
    if i % 3 == 1:
        spec["stock_send_rule"].pop("max_coupons_by_day", None)
    if i % 3 == 2:
        spec["notify_config"] = {"notify_appid": "wx1234567890abcdef"}
    if i % 4 == 3:
        spec.pop("display_pattern_info", None)
    return spec


def test_import_adopts_fifty_stocks_made_elsewhere_and_the_next_plan_is_empty(
    ws: Workspace, local: LocalEmulator
) -> None:
    favors, busifavors = [], []
    with other_client(ws, local) as other:
        for i in range(FAVORS):
            favors.append(other.favor_create(favor_body(i)).stock_id)
        for sid in favors[:10]:
            other.favor_start(sid, MCHID)
        for sid in favors[:3]:
            other.favor_pause(sid, MCHID)
        for i in range(BUSIFAVORS):
            busifavors.append(other.busifavor_create(busifavor_body(i)).stock_id)

    ws.stocks_dir.mkdir()
    dry = ws.cli("import", "favor", "--merchant", MCHID, "--dry-run")
    assert dry.exit_code == 0, str(dry)
    assert f"Dry run: {FAVORS} file(s) would be written" in dry.stdout
    assert not list(ws.stocks_dir.rglob("*.yaml"))

    first = ws.cli("import", "favor", "--merchant", MCHID)
    assert first.exit_code == 0, str(first)
    second = ws.cli("import", "busifavor", *busifavors, "--merchant", MCHID)
    assert second.exit_code == 0, str(second)
    files = sorted(ws.stocks_dir.rglob("*.yaml"))
    assert len(files) == FAVORS + BUSIFAVORS
    assert {s.stock_id for s in ws.state().stocks.values()} == set(favors + busifavors)

    valid = invoke(["validate", str(ws.stocks_dir)])
    assert valid.exit_code == 0, valid.stdout + valid.stderr
    assert f"{FAVORS + BUSIFAVORS} files" in valid.stdout, valid.stdout
    plan = ws.cli("plan", "--detailed-exitcode")
    assert plan.exit_code == 0, str(plan)

    again = ws.cli("import", "favor", "--merchant", MCHID)
    assert again.exit_code == 0, str(again)
    assert again.stdout.count("already tracked") == FAVORS
    assert len(list(ws.stocks_dir.rglob("*.yaml"))) == FAVORS + BUSIFAVORS

    # A field that can change, in one imported busifavor file: exactly that update.
    by_stock = {s.stock_id: s.id for s in ws.state().stocks.values()}
    busi_id = by_stock[busifavors[0]]
    edit_stock(ws.stock_file(busi_id), lambda d: d["spec"].update(goods_name="新品拿铁"))
    changed = ws.cli("plan", "--format", "json")
    assert changed.exit_code == 0, str(changed)
    moving = [c for c in changed.json()["changes"] if c["action"] != "no-op"]
    assert [(c["id"], c["action"]) for c in moving] == [(busi_id, "update")]
    assert [f["path"] for f in moving[0]["fields"]] == ["spec.goods_name"]

    # A field WeChat Pay does not return, set in a favor file: immutable, explained.
    favor_id = by_stock[favors[5]]
    assert "comment" in ws.state().stock(favor_id).unknown_at_import
    edit_stock(ws.stock_file(favor_id), lambda d: d["spec"].update(comment="set later"))
    shown = ws.cli("plan")
    assert shown.exit_code == 1, str(shown)
    assert "set for the first time" in shown.stdout, str(shown)
    doc = ws.cli("plan", "--format", "json").json()
    change = next(c for c in doc["changes"] if c["id"] == favor_id)
    assert change["action"] == "immutable"
    assert "did not return this field when the stock was imported" in change["reason"]
    assert change["fields"][0]["before"] is None and change["fields"][0]["after"] == "set later"


def test_import_refuses_conflicts_and_writes_nothing(ws: Workspace, local: LocalEmulator) -> None:
    with other_client(ws, local) as other:
        ids = [other.busifavor_create(busifavor_body(i)).stock_id for i in range(3)]
    done = ws.cli("import", "busifavor", ids[0], "--merchant", MCHID)
    assert done.exit_code == 0, str(done)
    written = next(ws.stocks_dir.rglob("*.yaml"))
    # The second stock's file is in the way (by hand, other content); the first is tracked.
    text = written.read_text(encoding="utf-8")
    data = load_yaml(written)
    blocker = written.parent / f"busi-01-{ids[1]}.yaml"
    blocker.write_text(text.replace(str(data["id"]), "by-hand"), encoding="utf-8")
    serial = ws.state().serial
    refused = ws.cli("import", "busifavor", *ids, "--merchant", MCHID)
    assert refused.exit_code == 1, str(refused)
    assert "already exists" in refused.stderr and "nothing was written" in refused.stderr
    assert sorted(p.name for p in ws.stocks_dir.rglob("*.yaml")) == sorted(
        [written.name, blocker.name]
    )
    assert ws.state().serial == serial
