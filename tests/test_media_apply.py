"""Image files through the planner and the applier, against the in-memory fake of the API.

A file is uploaded once per merchant and content, whatever stocks use it; the state maps its
sha256 to the URL; the create or modify after the upload carries the URL, never the token; an
upload that fails or is interrupted sends nothing that needs it, and the next apply redoes it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.applier import Applier, Outcome, Report
from reconciler.desired import DesiredStock
from reconciler.media import catalog
from reconciler.operation import OpType
from reconciler.plan import Action, Plan
from reconciler.planner import PlanInputs, make_plan
from reconciler.runtime import Clock
from reconciler.spec.images import token
from reconciler.state.store import StateStore, parse_state
from tests.fake_api import FakeStockApi, lost_answer, refused
from tests.media_support import write_image
from tests.test_planner import loaded

NOW = datetime(2027, 2, 1, 1, 0, tzinfo=UTC)
M = "1900000001"
FAVOR_ID = "spring-sale-10-off-100"
LATTE_ID = "member-day-latte-8-off"


class World:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.api = FakeStockApi(M)
        self.store = StateStore(root / "state.json", Clock(source=lambda: NOW.timestamp()))
        self.state = self.store.load(create_if_missing=True)

    def plan(self, *desired: DesiredStock) -> Plan:
        self.state = self.store.load(create_if_missing=True)
        return make_plan(
            PlanInputs(
                desired=list(desired),
                state=self.state,
                observed={},
                now=NOW,
                images=catalog(desired, self.root),
            )
        )

    def apply(self, plan: Plan, stop: threading.Event | None = None) -> Report:
        applier = Applier(
            self.store, self.state, {M: self.api}, lambda: NOW, stop=stop, root=self.root
        )
        report = applier.apply(plan)
        self.state = self.store.load(create_if_missing=True)
        return report


def with_logo(kind: str, file: str = "img/logo.png") -> DesiredStock:
    def mutate(data: dict[str, Any]) -> None:
        if kind == "favor":
            data["spec"].setdefault("pattern_info", {"description": "满100减10"})
            data["spec"]["pattern_info"]["merchant_logo"] = {"file": file}
        else:
            data["spec"]["display_pattern_info"]["merchant_logo_url"] = {"file": file}

    return loaded(kind, mutate)


def test_the_plan_uploads_first_and_keeps_a_token_in_the_create_body(tmp_path: Path) -> None:
    logo = write_image(tmp_path / "stocks" / "img" / "logo.png")
    digest = hashlib.sha256(logo).hexdigest()
    w = World(tmp_path)
    plan = w.plan(with_logo("favor"))
    ops = plan.changes[0].operations
    assert [o.type for o in ops] == [OpType.UPLOAD_IMAGE, OpType.CREATE, OpType.START]
    assert ops[0].request_no == digest
    assert ops[0].body == {
        "file": "stocks/img/logo.png",
        "filename": "logo.png",
        "sha256": digest,
        "size": len(logo),
        "format": "PNG",
        "width": 120,
        "height": 120,
    }
    assert ops[1].body["pattern_info"]["merchant_logo"] == token(digest)
    # Deterministic: the same files give the same plan, operation for operation.
    assert w.plan(with_logo("favor")).changes[0].operations == ops


def test_one_upload_for_two_stocks_and_none_in_the_next_run(tmp_path: Path) -> None:
    logo = write_image(tmp_path / "stocks" / "img" / "logo.png")
    digest = hashlib.sha256(logo).hexdigest()
    w = World(tmp_path)
    report = w.apply(w.plan(with_logo("favor"), with_logo("busifavor")))
    assert report.ok, report.results
    assert w.api.uploads == {digest: 1}
    url = w.state.media_urls(M)[digest]
    sent = [w.api.stocks[s.stock_id] for s in w.state.stocks.values() if s.stock_id]
    logos = sorted(
        str(
            b.get("pattern_info", {}).get("merchant_logo")
            or b["display_pattern_info"]["merchant_logo_url"]
        )
        for b in sent
    )
    assert logos == [url, url]
    for st in w.state.stocks.values():
        assert "media:sha256:" not in str(st.sent_body)

    again = w.plan(with_logo("favor"), with_logo("busifavor"))
    assert {c.action for c in again.changes} == {Action.NOOP}
    assert w.api.uploads == {digest: 1}


def test_a_busifavor_coupon_image_change_is_an_upload_then_a_modify(tmp_path: Path) -> None:
    write_image(tmp_path / "stocks" / "img" / "logo.png")
    w = World(tmp_path)
    assert w.apply(w.plan(with_logo("busifavor"))).ok
    cover = write_image(tmp_path / "stocks" / "img" / "coupon.png", 850, 350, color="blue")

    def coupon(data: dict[str, Any]) -> None:
        data["spec"]["display_pattern_info"]["merchant_logo_url"] = {"file": "img/logo.png"}
        data["spec"]["display_pattern_info"]["coupon_image_url"] = {"file": "img/coupon.png"}

    plan = w.plan(loaded("busifavor", coupon))
    change = plan.changes[0]
    assert change.action is Action.UPDATE
    assert [o.type for o in change.operations] == [OpType.UPLOAD_IMAGE, OpType.MODIFY]
    assert w.apply(plan).ok
    digest = hashlib.sha256(cover).hexdigest()
    url = w.state.media_urls(M)[digest]
    stock = w.api.stocks[w.state.stock(LATTE_ID).stock_id or ""]
    assert stock["display_pattern_info"]["coupon_image_url"] == url
    applied: dict[str, Any] = dict(w.state.stock(LATTE_ID).applied_body or {})
    assert applied["display_pattern_info"]["coupon_image_url"] == url
    assert w.plan(loaded("busifavor", coupon)).changes[0].action is Action.NOOP


def test_a_failed_upload_sends_nothing_that_needs_it_and_is_redone(tmp_path: Path) -> None:
    logo = write_image(tmp_path / "stocks" / "img" / "logo.png")
    digest = hashlib.sha256(logo).hexdigest()
    w = World(tmp_path)
    w.api.fail("media_upload", refused())
    result = w.apply(w.plan(with_logo("favor"))).results[0]
    assert result.outcome is Outcome.FAILED
    assert w.api.count("favor_create") == 0
    assert w.state.media_urls(M) == {}
    assert w.state.images[M][digest].media_url is None  # the intent, recorded before the send

    assert w.apply(w.plan(with_logo("favor"))).ok
    assert w.api.uploads == {digest: 1} and w.api.count("favor_create") == 1


def test_an_upload_whose_answer_was_lost_is_simply_redone(tmp_path: Path) -> None:
    logo = write_image(tmp_path / "stocks" / "img" / "logo.png")
    digest = hashlib.sha256(logo).hexdigest()
    w = World(tmp_path)
    w.api.fail("media_upload", lost_answer(), when="after")
    assert w.apply(w.plan(with_logo("favor"))).results[0].outcome is Outcome.FAILED
    assert w.apply(w.plan(with_logo("favor"))).ok
    # WeChat Pay saw the content twice (a spare URL), and the stock uses the recorded one.
    assert w.api.uploads == {digest: 2}
    assert w.api.count("favor_create") == 1


def test_an_image_changed_after_the_plan_is_not_uploaded(tmp_path: Path) -> None:
    write_image(tmp_path / "stocks" / "img" / "logo.png")
    w = World(tmp_path)
    plan = w.plan(with_logo("favor"))
    write_image(tmp_path / "stocks" / "img" / "logo.png", color="green")
    result = w.apply(plan).results[0]
    assert result.outcome is Outcome.FAILED and "changed since the plan" in result.message
    assert w.api.calls == []


def test_the_images_survive_the_journal_and_the_snapshot(tmp_path: Path) -> None:
    logo = write_image(tmp_path / "stocks" / "img" / "logo.png")
    w = World(tmp_path)
    w.store = StateStore(
        tmp_path / "state.json", Clock(source=lambda: NOW.timestamp()), journal=True
    )
    assert w.apply(w.plan(with_logo("favor"))).ok
    digest = hashlib.sha256(logo).hexdigest()
    assert digest in w.store.load().media_urls(M)  # journal replayed
    w.store.compact()
    text = (tmp_path / "state.json").read_text(encoding="utf-8")
    assert parse_state(text.encode()).media_urls(M) == w.state.media_urls(M)
    assert f'    "{M}": {{"{digest}":' in text  # one merchant per line


def test_every_rendering_shows_the_upload(tmp_path: Path) -> None:
    from reconciler.render.json_doc import render_json
    from reconciler.render.markdown import render_markdown
    from reconciler.render.text import render_text

    logo = write_image(tmp_path / "stocks" / "img" / "logo.png")
    plan = World(tmp_path).plan(with_logo("busifavor"))
    shown = (
        f"upload logo.png ({round(len(logo) / 1024)} KB, 120×120)"
        if len(logo) >= 1024
        else (f"upload logo.png ({len(logo)} B, 120×120)")
    )
    assert f"    {shown}\n" in render_text(plan)
    assert f"`{shown}`" in render_markdown(plan)
    doc = json.loads(render_json(plan))
    (op,) = [o for o in doc["changes"][0]["operations"] if o["type"] == "upload_image"]
    assert op["body"]["filename"] == "logo.png" and op["body"]["size"] == len(logo)
