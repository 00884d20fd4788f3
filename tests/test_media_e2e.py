"""Image files end to end: plan shows the upload, apply uploads once and sends the URL, a
second apply sends nothing (the CLI in process, the emulator behind its transport)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator.routes_media import MEDIA_URL
from tests.e2e_support import LocalEmulator, Workspace, copy_stocks, edit_stock, make_workspace
from tests.media_support import write_image

FAVOR_ID = "spring-sale-10-off-100"
LATTE_ID = "member-day-latte-8-off"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = make_workspace(tmp_path / "project")
    copy_stocks(workspace.stocks_dir)
    return workspace


@pytest.fixture
def local(ws: Workspace) -> Iterator[LocalEmulator]:
    with LocalEmulator(ws) as running:
        yield running


def test_one_logo_for_two_stocks_is_uploaded_once_and_used_by_both(
    ws: Workspace, local: LocalEmulator
) -> None:
    logo = write_image(ws.stocks_dir / "images" / "logo.png")
    url = MEDIA_URL.format(digest=hashlib.sha256(logo).hexdigest()[:40])
    edit_stock(
        ws.stock_file(LATTE_ID),
        lambda d: d["spec"]["display_pattern_info"].update(
            merchant_logo_url={"file": "../images/logo.png"}
        ),
    )
    edit_stock(
        ws.stock_file(FAVOR_ID),
        lambda d: (
            d["spec"]
            .setdefault("pattern_info", {"description": "满100减10"})
            .update(merchant_logo={"file": "../images/logo.png"})
        ),
    )
    plan = ws.cli("plan")
    assert plan.exit_code == 0, str(plan)
    assert plan.stdout.count("upload logo.png (") == 2, plan.stdout  # shown for each stock
    assert "logo.png (" in plan.stdout and "120×120" in plan.stdout

    apply = ws.cli("apply", "--yes")
    assert apply.exit_code == 0, str(apply)
    uploads = [e for e in local.emu.request_log if e.endpoint == "media.image_upload"]
    assert [e.status for e in uploads] == [200]  # one content, one merchant: one upload
    logos = sorted(
        (s.body.get("pattern_info") or s.body.get("display_pattern_info") or {}).get(
            "merchant_logo" if s.kind == "favor" else "merchant_logo_url", ""
        )
        for s in local.stocks.values()
    )
    assert logos == ["", url, url]
    state = ws.state()
    assert state.media_urls(ws.mchids[0]) == {hashlib.sha256(logo).hexdigest(): url}
    assert "media:sha256:" not in ws.state_path.read_text(encoding="utf-8")

    local.emu.clear_request_log()
    again = ws.cli("apply", "--yes")
    assert again.exit_code == 0, str(again)
    assert "No changes to apply." in again.stdout
    assert all(e.endpoint not in ("media.image_upload",) for e in local.emu.request_log)
    assert all(
        not (e.endpoint or "").endswith((".create", ".modify")) for e in local.emu.request_log
    )


def test_a_new_coupon_image_of_a_busifavor_stock_is_uploaded_then_modified(
    ws: Workspace, local: LocalEmulator
) -> None:
    assert ws.cli("apply", "--yes").exit_code == 0
    image = write_image(ws.stocks_dir / "busifavor" / "coupon.png", 850, 350, color="blue")
    edit_stock(
        ws.stock_file(LATTE_ID),
        lambda d: d["spec"]["display_pattern_info"].update(coupon_image_url={"file": "coupon.png"}),
    )
    plan = ws.cli("plan", "--format", "json")
    change = next(c for c in plan.json()["changes"] if c["id"] == LATTE_ID)
    assert change["action"] == "update"
    assert [o["type"] for o in change["operations"]] == ["upload_image", "modify"]
    assert change["operations"][0]["body"]["width"] == 850

    local.emu.clear_request_log()
    assert ws.cli("apply", "--yes").exit_code == 0
    sent = [e.endpoint for e in local.emu.request_log if e.method != "GET"]
    assert sent == ["media.image_upload", "busifavor.modify"]
    stock = next(s for s in local.stocks.values() if s.body.get("stock_name") == "会员日拿铁减8元")
    digest = hashlib.sha256(image).hexdigest()
    assert stock.body["display_pattern_info"]["coupon_image_url"] == MEDIA_URL.format(
        digest=digest[:40]
    )


def test_a_changed_logo_of_a_favor_stock_is_immutable(ws: Workspace, local: LocalEmulator) -> None:
    write_image(ws.stocks_dir / "favor" / "logo.png")
    edit_stock(
        ws.stock_file(FAVOR_ID),
        lambda d: (
            d["spec"]
            .setdefault("pattern_info", {"description": "满100减10"})
            .update(merchant_logo={"file": "logo.png"})
        ),
    )
    assert ws.cli("apply", "--yes").exit_code == 0
    write_image(ws.stocks_dir / "favor" / "logo.png", color="green")
    plan = ws.cli("plan", "--format", "json")
    change = next(c for c in plan.json()["changes"] if c["id"] == FAVOR_ID)
    assert change["action"] == "immutable", change
    assert change["operations"] == []
    assert [f["path"] for f in change["fields"]] == ["spec.pattern_info.merchant_logo"]
