"""`reconciler import` in parts: the inverse of each kind's create→detail mapping, ids, the
file's comments, the state's unknown-at-import fields, conflicts, a resumed import, the
emulator's seed file and `state import`'s marking."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.emulator import Emulator
from reconciler.emulator.routes_busifavor import busifavor_view
from reconciler.emulator.routes_favor import favor_view
from reconciler.emulator.seed import SeedError, seed
from reconciler.emulator.store import KindName, StoredStock
from reconciler.importfile import render_stock_file, slug_id
from reconciler.kinds import kind_of
from reconciler.loader import load_stock_file
from reconciler.mapping import get_path, leaves
from reconciler.plan import Action
from reconciler.planner import FIRST_TIME, PlanInputs, make_plan
from reconciler.state.backend import StateBackend
from reconciler.state.model import State, StockState
from tests.cli_invoke import invoke
from tests.e2e_support import (
    MCHID,
    LocalEmulator,
    Workspace,
    edit_stock,
    load_yaml,
    make_workspace,
    prepare_data_file,
    shared_keys,
)
from tests.fake_api import FakeStockApi
from tests.test_import_e2e import busifavor_body, favor_body, other_client
from tests.test_state_backends import Factory, factory, kind  # noqa: F401  (the backend fixtures)

T0 = datetime(2027, 2, 1, 1, 0, tzinfo=UTC)


def stored(name: KindName, body: dict[str, Any], status: str) -> StoredStock:
    return StoredStock(
        name, "10000009", MCHID, "X1", 0.0, "2027-02-01T09:00:00+08:00", status, body
    )


def under(path: str, unknown: tuple[str, ...]) -> bool:
    return any(path == u or path.startswith(u + ".") for u in unknown)


# --- the inverse mapping, per kind ----------------------------------------------------------


@pytest.mark.parametrize("index", range(12))
def test_favor_round_trip_gives_back_every_returned_field(index: int) -> None:
    """create body → detail (the emulator's view) → imported spec: equal on every field the
    API returns; the fields it does not return are exactly the unknown ones."""
    k = kind_of("favor")
    body = favor_body(index)
    detail = favor_view(stored("favor", body, "running"), "as_sent")
    api = FakeStockApi(MCHID)
    api.stocks["10000009"] = body
    reads = k.import_reads(api, "10000009", MCHID, detail)
    imported = k.from_detail(detail, reads)
    original = {k: v for k, v in body.items() if k != "out_request_no"}
    for path, value in leaves(original):
        if under(path, imported.unknown):
            continue
        assert get_path(imported.spec, path) == (True, value), path
    for path, value in leaves(imported.spec):
        if path in imported.stand_ins:
            assert value is False and under(path, imported.unknown)
            continue
        if path == "stock_use_rule.max_amount_by_day" and not get_path(original, path)[0]:
            # The detail always carries a daily budget (the SDK model marks it required); with
            # none sent it is the whole budget, which limits nothing more.
            assert value == original["stock_use_rule"]["max_amount"]
            continue
        assert get_path(original, path) == (True, value), path
    assert "comment" in imported.unknown and "ext_info" in imported.unknown
    assert "coupon_use_rule.available_merchants" not in imported.unknown
    assert imported.top == {"status": "running"}
    assert k.matches({**imported.spec}, detail)


@pytest.mark.parametrize("index", range(8))
def test_busifavor_round_trip_gives_back_the_whole_body(index: int) -> None:
    k = kind_of("busifavor")
    body = busifavor_body(index)
    detail = busifavor_view(stored("busifavor", body, "RUNNING"), "as_sent")
    imported = k.from_detail(detail, k.import_reads(FakeStockApi(MCHID), "1", MCHID, detail))
    original = {k: v for k, v in body.items() if k != "out_request_no"}
    # The detail shows unset flags as false (server defaults); the file keeps those it must.
    flags = {"stock_send_rule.natural_person_limit", "stock_send_rule.prevent_api_abuse"}
    extra = {p for p, _ in leaves(imported.spec)} - {p for p, _ in leaves(original)}
    assert extra <= flags
    assert all(get_path(imported.spec, p) == (True, v) for p, v in leaves(original))
    assert imported.unknown == ()


def test_favor_detail_shapes_the_docs_leave_open() -> None:
    """trade_type as a bare string becomes a list; a single-item stock's goods come from the
    items list; an `audit` stock is written as running (no lifecycle call)."""
    k = kind_of("favor")
    body = favor_body(5)
    detail = favor_view(stored("favor", body, "audit"), "millis")
    detail["stock_use_rule"]["trade_type"] = "MICROAPP"
    api = FakeStockApi(MCHID)
    api.stocks["10000009"] = body
    reads = k.import_reads(api, "10000009", MCHID, detail)
    imported = k.from_detail(detail, reads)
    assert imported.spec["coupon_use_rule"]["trade_type"] == ["MICROAPP"]
    assert imported.spec["coupon_use_rule"]["available_items"] == ["sku-5-a", "sku-5-b"]
    assert imported.top == {"status": "running"}
    assert api.count("favor_items") == 1 and api.count("favor_merchants") == 1
    for status, written in [
        ("unactivated", "created"),
        ("paused", "paused"),
        ("stoped", "stopped"),
    ]:
        assert k.import_top({"status": status})[0] == {"status": written}


# --- ids and the file -----------------------------------------------------------------------


def test_ids_come_from_the_name_and_stock_id() -> None:
    assert slug_id("favor", "Spring Sale 10 off", "123") == "spring-sale-10-off-123"
    assert slug_id("favor", "满100减10", "987") == "favor-987"
    assert slug_id("busifavor", "Café_Latte!!", "5") == "cafe-latte-5"
    long = slug_id("favor", "x" * 80, "1234567890123456")
    assert len(long) <= 64 and long.endswith("-1234567890123456")


def test_the_file_marks_what_is_not_returned_and_loads_as_the_same_stock() -> None:
    k = kind_of("favor")
    body = favor_body(3)  # no pattern_info, no comment
    detail = favor_view(stored("favor", body, "unactivated"), "as_sent")
    imported = k.from_detail(detail, {"coupon_use_rule.available_merchants": [MCHID]})
    text = render_stock_file(k, "favor-10000009", MCHID, "10000009", imported, "2027-02-01")
    assert "imported from WeChat Pay: stock_id 10000009" in text
    assert "# comment: not returned by WeChat Pay" in text
    assert "pattern_info" not in text  # the detail shows it absent (no description)
    assert "# ext_info: not returned by WeChat Pay" in text.splitlines()[-1]
    assert re.search(
        r"natural_person_limit: false +# not returned by WeChat Pay: false stands in", text
    )
    assert "status: created" in text
    loaded, diagnostics = load_stock_file(text.encode(), "x.yaml")
    assert loaded is not None, diagnostics
    assert k.create_body(loaded.stock, "N") == {**imported.spec, "out_request_no": "N"}
    data = YAML(typ="safe").load(text)
    assert data["merchant"] == MCHID and data["spec"]["belong_merchant"] == MCHID


# --- the state ------------------------------------------------------------------------------


def test_unknown_at_import_is_kept_by_both_backends_and_left_out_when_empty(
    factory: Factory,  # noqa: F811
) -> None:
    store: StateBackend = factory()
    state = store.load(create_if_missing=True)
    entry = StockState.new("imported", "favor", MCHID)
    plain = StockState.new("plain", "favor", MCHID)
    body = {"stock_name": "x", "out_request_no": entry.out_request_no}
    state = state.with_stocks([entry, plain]).adopt("imported", "1", body, ["comment", "ext_info"])
    saved = store.save(state)
    again = factory().load()
    assert again.stock("imported").unknown_at_import == ("comment", "ext_info")
    assert "unknown_at_import" not in again.stock("plain").model_dump(mode="json")
    # An update that sets one of them makes it known.
    updated = again.record_applied("imported", {**body, "comment": "now known"})
    assert updated.stock("imported").unknown_at_import == ("ext_info",)
    assert saved.serial + 1 == store.save(updated).serial


def _busifavor_case(tmp_path: Path) -> tuple[State, str]:
    body = busifavor_body(1)
    body.pop("comment", None)
    detail = busifavor_view(stored("busifavor", body, "RUNNING"), "as_sent")
    k = kind_of("busifavor")
    imported = k.from_detail(detail)
    text = render_stock_file(k, "busi-1", MCHID, "10000009", imported, "2027-02-01")
    loaded, _ = load_stock_file(text.encode(), "busi-1.yaml")
    assert loaded is not None
    entry = StockState.new("busi-1", "busifavor", MCHID)
    state = State.new("00000000-0000-0000-0000-000000000001").with_stock(entry)
    applied = k.create_body(loaded.stock, entry.out_request_no)
    state = state.adopt("busi-1", "10000009", applied, ["comment"])
    return state, text


def test_a_modifiable_field_unknown_at_import_is_an_update_set_for_the_first_time(
    tmp_path: Path,
) -> None:
    state, text = _busifavor_case(tmp_path)
    loaded, _ = load_stock_file(text.encode(), "busi-1.yaml")
    assert loaded is not None
    now = datetime(2027, 2, 2, tzinfo=UTC)
    same = make_plan(PlanInputs([loaded], state, {}, now))
    assert [c.action for c in same.changes] == [Action.NOOP]
    edited = text.replace("spec:", "spec:\n  comment: set now", 1)
    changed, diagnostics = load_stock_file(edited.encode(), "busi-1.yaml")
    assert changed is not None, diagnostics
    plan = make_plan(PlanInputs([changed], state, {}, now))
    change = plan.changes[0]
    assert change.action is Action.UPDATE
    assert [(f.path, f.before, f.after, f.note) for f in change.fields] == [
        ("spec.comment", None, "set now", FIRST_TIME)
    ]


# --- conflicts, a resumed import, the seed file, state import --------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = make_workspace(tmp_path / "project")
    workspace.stocks_dir.mkdir(parents=True)
    return workspace


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    with LocalEmulator(ws) as running:
        yield running


def _made(ws: Workspace, local: LocalEmulator, n: int) -> list[str]:
    with other_client(ws, local) as other:
        return [other.busifavor_create(busifavor_body(i)).stock_id for i in range(n)]


def test_an_id_in_use_or_a_stock_tracked_without_its_file_refuses_everything(
    ws: Workspace, local: LocalEmulator
) -> None:
    ids = _made(ws, local, 3)
    ok = ws.cli("import", "busifavor", ids[0], "--merchant", MCHID)
    assert ok.exit_code == 0, str(ok)
    first = next(ws.stocks_dir.rglob("*.yaml"))
    first_id = str(load_yaml(first)["id"])
    # A file by hand elsewhere takes the id the second stock would get.
    taken = f"busi-01-{ids[1]}"
    hand = ws.stocks_dir / "mine.yaml"
    hand.write_text(first.read_text(encoding="utf-8").replace(first_id, taken), encoding="utf-8")
    refused = ws.cli("import", "busifavor", *ids, "--merchant", MCHID)
    assert refused.exit_code == 1 and f"id '{taken}'" in refused.stderr, str(refused)
    hand.unlink()
    # The first stock's file is gone while the state still tracks it.
    moved = first.read_text(encoding="utf-8")
    first.unlink()
    refused = ws.cli("import", "busifavor", *ids, "--merchant", MCHID)
    assert refused.exit_code == 1, str(refused)
    assert f"is tracked as '{first_id}', which has no stock file" in refused.stderr
    assert not list(ws.stocks_dir.rglob("*.yaml"))
    first.write_text(moved, encoding="utf-8")
    done = ws.cli("import", "busifavor", *ids, "--merchant", MCHID)
    assert done.exit_code == 0, str(done)
    assert f"already tracked as '{first_id}'" in done.stdout
    assert len(ws.state().stocks) == 3


def test_an_import_stopped_after_its_files_is_finished_by_the_next(
    ws: Workspace, local: LocalEmulator
) -> None:
    ids = _made(ws, local, 2)
    assert ws.cli("import", "busifavor", *ids, "--merchant", MCHID).exit_code == 0
    files = {p: p.read_text(encoding="utf-8") for p in ws.stocks_dir.rglob("*.yaml")}
    ws.state_path.unlink()  # as if the run stopped before the state was saved
    for path in ws.root.glob("state.json*"):
        path.unlink()
    again = ws.cli("import", "busifavor", *ids, "--merchant", MCHID)
    assert again.exit_code == 0, str(again)
    assert {p: p.read_text(encoding="utf-8") for p in ws.stocks_dir.rglob("*.yaml")} == files
    assert {s.stock_id for s in ws.state().stocks.values()} == set(ids)
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_busifavor_needs_stock_ids_and_the_files_stay_under_the_stocks_folder(
    ws: Workspace, local: LocalEmulator
) -> None:
    no_ids = ws.cli("import", "busifavor", "--merchant", MCHID)
    assert no_ids.exit_code == 1 and "no list endpoint" in no_ids.stderr, str(no_ids)
    outside = ws.cli("import", "favor", "--merchant", MCHID, "--out", str(ws.root / "elsewhere"))
    assert outside.exit_code == 1 and "under the stocks folder" in outside.stderr, str(outside)
    missing = ws.cli("import", "busifavor", "99999999", "--merchant", MCHID)
    assert missing.exit_code == 1, str(missing)
    assert "reading busifavor stock 99999999" in missing.stderr
    assert "nothing was written" in missing.stderr
    unknown = ws.cli("import", "favor", "--merchant", "1900000009")
    assert unknown.exit_code == 1 and "not in" in unknown.stderr, str(unknown)


def test_stocks_seeded_from_a_file_are_imported(ws: Workspace) -> None:
    prepare_data_file(ws)
    seed_file = ws.root / "seed.yaml"
    favor, busifavor = favor_body(7), busifavor_body(2)
    del favor["out_request_no"], busifavor["out_request_no"]
    stocks: list[dict[str, Any]] = [
        {"kind": "favor", "merchant": MCHID, "status": "running", "body": favor},
        {"kind": "busifavor", "merchant": MCHID, "body": busifavor},
    ]
    bad = [{**stocks[0], "body": {**favor, "stock_name": ""}}]
    seed_file.write_text(json.dumps({"stocks": bad}), encoding="utf-8")
    command = ["emulator", "seed", str(seed_file), "--data", str(ws.emulator_data)]
    refused = invoke(command, env=ws.clock.env())
    assert refused.exit_code == 1 and "stocks[0].body" in refused.stderr, refused.stderr
    seed_file.write_text(json.dumps({"stocks": stocks}), encoding="utf-8")
    done = invoke(command, env=ws.clock.env())
    assert done.exit_code == 0, done.stdout + done.stderr
    with LocalEmulator(ws, persist=True) as local:
        assert len(local.stocks) == 2
        busi = next(s.stock_id for s in local.stocks.values() if s.kind == "busifavor")
        assert ws.cli("import", "favor", "--merchant", MCHID).exit_code == 0
        assert ws.cli("import", "busifavor", busi, "--merchant", MCHID).exit_code == 0
        assert ws.cli("plan", "--detailed-exitcode").exit_code == 0
    adopted = next(s for s in ws.state().stocks.values() if s.kind == "favor")
    assert adopted.observed is not None and adopted.observed["status"] == "running"


def test_seed_refuses_an_unregistered_merchant_and_adds_nothing() -> None:
    emu = Emulator(keys=shared_keys())
    body = favor_body(1)
    with pytest.raises(SeedError, match="not registered"):
        seed(emu, [{"kind": "favor", "merchant": MCHID, "body": body}], T0.timestamp())
    assert emu.stocks == {}


def test_state_import_of_a_hand_written_file_marks_what_the_detail_does_not_show(
    ws: Workspace, local: LocalEmulator
) -> None:
    with other_client(ws, local) as other:
        sid = other.favor_create(favor_body(2)).stock_id
    dry = ws.cli("import", "favor", "--merchant", MCHID, "--dry-run")
    assert dry.exit_code == 0, str(dry)
    text = dry.stdout.split("\n", 1)[1].rsplit("Dry run:", 1)[0]
    path = ws.stocks_dir / "by-hand.yaml"
    path.write_text(text.replace(f"other-002-{sid}", "by-hand"), encoding="utf-8")
    edit_stock(path, lambda d: d["spec"].update(comment="known to us"))
    done = ws.cli("state", "import", "by-hand", sid)
    assert done.exit_code == 0, str(done)
    entry = ws.state().stock("by-hand")
    assert "comment" in entry.unknown_at_import
    assert "stock_use_rule.natural_person_limit" in entry.unknown_at_import
    assert "stock_name" not in entry.unknown_at_import
    assert ws.cli("plan", "--detailed-exitcode").exit_code == 0


def test_progress_off_a_terminal_is_a_line_every_n_stocks_or_every_interval() -> None:
    from reconciler.commands.import_cmd import ImportProgress

    lines: list[str] = []
    now = [0.0]
    progress = ImportProgress(
        live=False, every=100, interval=30.0, clock=lambda: now[0], echo=lines.append
    )
    for done in range(0, 251):
        now[0] = done * 0.01 if done < 120 else 31.0 + done * 0.01
        progress(done, 250)
    assert [line.split(" stocks")[0] for line in lines] == [
        "... read 100/250",
        "... read 120/250",
        "... read 200/250",
    ]
    quiet: list[str] = []
    small = ImportProgress(live=False, every=100, clock=lambda: 0.0, echo=quiet.append)
    for done in range(0, 6):
        small(done, 5)
    assert quiet == []


def test_the_favor_list_is_filtered_by_status_and_creation_time(
    ws: Workspace, local: LocalEmulator
) -> None:
    with other_client(ws, local) as other:
        made = [other.favor_create(favor_body(i)).stock_id for i in range(3)]
        other.favor_start(made[1], MCHID)
    running = ws.cli("import", "favor", "--merchant", MCHID, "--status", "running", "--dry-run")
    assert running.exit_code == 0, str(running)
    assert "Dry run: 1 file(s)" in running.stdout and f"stock_id {made[1]}" in running.stdout
    later = ws.cli(
        "import", "favor", "--merchant", MCHID, "--created-since", "2027-02-02", "--dry-run"
    )
    assert later.exit_code == 0 and "Dry run: 0 file(s)" in later.stdout, str(later)
    since = ws.cli(
        "import", "favor", "--merchant", MCHID, "--created-since", "2027-01-31", "--dry-run"
    )
    assert "Dry run: 3 file(s)" in since.stdout, str(since)
    mixed = ws.cli("import", "favor", made[0], "--merchant", MCHID, "--status", "running")
    assert mixed.exit_code == 1 and "leave them out" in mixed.stderr, str(mixed)


def test_an_interrupted_import_writes_nothing(ws: Workspace, local: LocalEmulator) -> None:
    import os
    import threading

    from reconciler import engine
    from reconciler.config import load_project
    from reconciler.engine.importing import ImportInterrupted, ImportRequest, import_stocks
    from reconciler.runtime import Runtime

    ids = _made(ws, local, 5)
    project, _ = load_project(ws.project_file)
    assert project is not None
    environ = {**os.environ, **ws.clock.env()}
    workspace = engine.open_workspace(
        project, Runtime(ws.root, environ, ws.clock.clock(), ws.transport)
    )
    cancel = threading.Event()

    def progress(done: int, total: int) -> None:
        if done >= 2:
            cancel.set()  # as Ctrl-C does, through stop_on_signals

    request = ImportRequest(kind="busifavor", merchant=MCHID, stock_ids=tuple(ids))
    with pytest.raises(ImportInterrupted, match="nothing was written"):
        import_stocks(workspace, request, progress, cancel)
    assert not list(ws.stocks_dir.rglob("*.yaml")) and not ws.state_path.exists()
    cancel.set()
    with pytest.raises(ImportInterrupted, match="nothing was written"):
        import_stocks(workspace, ImportRequest(kind="favor", merchant=MCHID), cancel=cancel)


def test_a_stock_that_makes_no_valid_file_is_named_and_the_others_are_imported(
    ws: Workspace,
) -> None:
    with LocalEmulator(ws, persist=True) as local:
        ids = _made(ws, local, 2)

        def odd(data: dict[str, Any]) -> None:
            # Changed in the merchant platform past what the documented rules allow.
            stored = next(s for s in data["stocks"] if s["stock_id"] == ids[0])
            stored["body"]["stock_send_rule"]["max_coupons_per_user"] = 1000

        local.restart(odd)
        done = ws.cli("import", "busifavor", *ids, "--merchant", MCHID)
    assert done.exit_code == 0, str(done)
    assert (
        f"! {ids[0]}: not imported: WeChat Pay's answer does not make a valid stock file"
        in done.stderr
    )
    assert "max_coupons_per_user" in done.stderr
    assert [s.stock_id for s in ws.state().stocks.values()] == [ids[1]]
    assert len(list(ws.stocks_dir.rglob("*.yaml"))) == 1


def test_progress_on_a_terminal_is_a_bar_that_follows_the_reads() -> None:
    from reconciler.commands.import_cmd import ImportProgress

    lines: list[str] = []
    progress = ImportProgress(live=True, echo=lines.append)
    for done in range(0, 4):
        progress(done, 3)
    bar = progress._bar
    assert bar is not None and bar.tasks[0].completed == 3 and bar.tasks[0].total == 3
    progress.stop()
    assert lines == []
