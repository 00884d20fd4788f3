"""商家券 code pools: the codes file checked at file:line:col, deterministic batches, and apply
against the in-memory fake: batching, an in-doubt batch resent under its number (never a code
under two numbers), STATEMENT_CREATING and 429 retried, refusals and the count check."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.applier import Applier, Outcome, Report
from reconciler.codes import MAX_BATCH, CodePool, parse_codes, plan_batches
from reconciler.desired import DesiredStock
from reconciler.loader import load_stocks
from reconciler.operation import OpType
from reconciler.plan import Action, Plan
from reconciler.planner import PlanInputs, make_plan
from reconciler.runtime import Clock
from reconciler.state.store import StateStore
from reconciler.wechatpay.errors import ApiResponseError
from tests.e2e_support import write_code_stock
from tests.fake_api import FakeStockApi, lost_answer, refused
from tests.test_applier import NOW, M
from tests.test_planner import loaded

ID = "member-day-latte-8-off"


def pool(codes: list[str], file: str = "stocks/codes/latte.txt") -> CodePool:
    return CodePool(file, tuple(codes), tuple(range(1, len(codes) + 1)), "d" * 64)


def upload_stock(codes: list[str]) -> DesiredStock:
    def mutate(data: dict[str, Any]) -> None:
        data["spec"]["coupon_code_mode"] = "MERCHANT_UPLOAD"
        data["codes"] = {"file": "codes/latte.txt"}

    return replace(loaded("busifavor", mutate), codes=pool(codes))


CODES = [f"LATTE{i:05d}" for i in range(450)]


class Waits(threading.Event):
    """A stop event that records the back-off waits asked of it, and does not wait."""

    def __init__(self, waits: list[float]) -> None:
        super().__init__()
        self.waits = waits

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return super().wait(0)


class World:
    def __init__(self, root: Path, reuse: str = "idempotent") -> None:
        self.api = FakeStockApi(M, reuse=reuse)  # type: ignore[arg-type]
        self.store = StateStore(root / "state.json", Clock(source=lambda: NOW.timestamp()))
        self.state = self.store.load(create_if_missing=True)
        self.waits: list[float] = []

    def plan(self, *desired: DesiredStock) -> Plan:
        self.state = self.store.load(create_if_missing=True)
        return make_plan(PlanInputs(desired=list(desired), state=self.state, observed={}, now=NOW))

    def apply(self, plan: Plan, delays: tuple[float, ...] = (0.5, 1.0, 2.0)) -> Report:
        stop = Waits(self.waits)
        applier = Applier(
            self.store, self.state, {M: self.api}, lambda: NOW, stop=stop, code_retry_delays=delays
        )
        report = applier.apply(plan)
        self.state = self.store.load(create_if_missing=True)
        return report

    def uploaded_numbers(self) -> list[str]:
        return [key for call, key in self.api.calls if call == "busifavor_upload_codes"]


def only(report: Report) -> Any:
    assert len(report.results) == 1, report.results
    return report.results[0]


# --- the codes file ------------------------------------------------------------------------------


def test_each_bad_line_is_reported_at_its_line_and_column() -> None:
    text = "GOOD1\n\nBAD#CODE\n" + "X" * 33 + "\nGOOD1\n trailing\nGOOD2\r\n"
    codes, lines, problems = parse_codes(text, "codes/latte.txt")
    assert codes == ["GOOD1", "GOOD2"] and lines == [1, 7]
    found = {(d.line, d.col, d.code) for d in problems}
    assert found == {
        (3, 4, "code_character"),
        (4, 33, "code_length"),
        (5, 1, "code_duplicate"),
        (6, 1, "code_space"),
    }
    assert "also on line 1" in next(d.message for d in problems if d.line == 5)


def write_stock(root: Path, index: int, codes: list[str]) -> Path:
    return write_code_stock(root / "stocks", index, codes)


def test_validate_reads_the_codes_file_beside_the_stock(tmp_path: Path) -> None:
    write_stock(tmp_path, 1, ["A1", "A2", "A 3"])
    result = load_stocks([tmp_path / "stocks"], base=tmp_path)
    assert result.ok, result.diagnostics
    (stock,) = result.stocks
    assert stock.codes is not None and stock.codes.codes == ("A1", "A2", "A 3")
    assert stock.codes.file == "stocks/busifavor/codes/gen-codes-001.txt"


def test_a_changed_codes_file_changes_the_stock_digest(tmp_path: Path) -> None:
    path = write_stock(tmp_path, 1, ["A1", "A2"])
    before = load_stocks([tmp_path / "stocks"], base=tmp_path).stocks[0].digest
    (path.parent / "codes" / "gen-codes-001.txt").write_text("A1\nA2\nA3\n", encoding="utf-8")
    after = load_stocks([tmp_path / "stocks"], base=tmp_path).stocks[0].digest
    assert before != after


def test_validate_reports_codes_problems_with_positions(tmp_path: Path) -> None:
    write_stock(tmp_path, 1, ["A1", "A~2"])
    missing = write_stock(tmp_path, 2, ["B1"])
    (missing.parent / "codes" / "gen-codes-002.txt").unlink()
    result = load_stocks([tmp_path / "stocks"], base=tmp_path)
    shown = {(d.file, d.line, d.col, d.code) for d in result.diagnostics}
    assert ("stocks/busifavor/codes/gen-codes-001.txt", 2, 2, "code_character") in shown
    where = [d for d in result.diagnostics if d.code == "codes_unreadable"]
    assert len(where) == 1 and where[0].file == "stocks/busifavor/gen-codes-002.yaml"
    assert where[0].line > 1 and where[0].col > 1
    assert "gen-codes-002.txt" in where[0].message


def test_a_code_in_two_stocks_of_a_merchant_is_an_error(tmp_path: Path) -> None:
    write_stock(tmp_path, 1, ["A1", "SHARED"])
    write_stock(tmp_path, 2, ["B1", "B2", "SHARED"])
    result = load_stocks([tmp_path / "stocks"], base=tmp_path)
    dupes = [d for d in result.diagnostics if d.code == "code_duplicate_stock"]
    assert len(dupes) == 1
    assert (dupes[0].file, dupes[0].line) == ("stocks/busifavor/codes/gen-codes-002.txt", 3)
    assert "gen-codes-001.txt:2" in dupes[0].message


def test_fewer_codes_than_max_coupons_is_a_warning(tmp_path: Path) -> None:
    path = write_stock(tmp_path, 1, ["A1", "A2"])
    text = path.read_text(encoding="utf-8").replace("max_coupons: 2", "max_coupons: 5")
    path.write_text(text, encoding="utf-8")
    result = load_stocks([tmp_path / "stocks"], base=tmp_path)
    assert result.ok
    (warning,) = [d for d in result.diagnostics if d.code == "codes_fewer"]
    assert warning.file == "stocks/busifavor/gen-codes-001.yaml" and warning.line > 1
    assert "fewer than max_coupons (5)" in warning.message


def test_codes_are_refused_unless_the_stock_uploads_them(tmp_path: Path) -> None:
    path = write_stock(tmp_path, 1, ["A1"])
    text = path.read_text(encoding="utf-8").replace("MERCHANT_UPLOAD", "WECHATPAY_MODE")
    path.write_text(text, encoding="utf-8")
    result = load_stocks([tmp_path / "stocks"], base=tmp_path)
    (error,) = [d for d in result.diagnostics if d.code == "codes_mode"]
    assert error.path == ("codes",) and error.line > 1
    assert not result.ok


# --- batches -----------------------------------------------------------------------------------


def test_batches_are_cut_in_file_order_and_numbered_by_their_content() -> None:
    batches = plan_batches(M, "busifavor", ID, 0, pool(CODES), None)
    assert [len(b.codes) for b in batches] == [MAX_BATCH, MAX_BATCH, 50]
    assert [c for b in batches for c in b.codes] == CODES
    again = plan_batches(M, "busifavor", ID, 0, pool(CODES), None)
    assert [b.request_no for b in batches] == [b.request_no for b in again]
    assert len({b.request_no for b in batches}) == 3
    other = plan_batches(M, "busifavor", "another-stock", 0, pool(CODES), None)
    assert not {b.request_no for b in batches} & {b.request_no for b in other}


def test_plan_shows_how_many_codes_will_be_uploaded(tmp_path: Path) -> None:
    plan = World(tmp_path).plan(upload_stock(CODES))
    (change,) = plan.changes
    assert change.action is Action.CREATE
    assert "upload 450 code(s)" in change.reason and "3 batch(es)" in change.reason
    types = [o.type for o in change.operations]
    assert types == [OpType.CREATE] + [OpType.UPLOAD_CODES] * 3
    assert any(f.path == "codes" and (f.before, f.after) == (0, 450) for f in change.fields)


# --- apply -------------------------------------------------------------------------------------


def test_apply_uploads_every_code_once_and_then_nothing(tmp_path: Path) -> None:
    w = World(tmp_path)
    result = only(w.apply(w.plan(upload_stock(CODES))))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    stock_id = w.state.stock(ID).stock_id
    assert stock_id is not None and set(w.api.codes[stock_id]) == set(CODES)
    assert len(w.uploaded_numbers()) == 3
    batches = w.state.stock(ID).code_batches
    assert all(b.done for b in batches.values()) and len(batches) == 3
    again = w.plan(upload_stock(CODES))
    assert again.changes[0].action is Action.NOOP and not again.has_changes
    # One more code: one batch of one code.
    plus = w.plan(upload_stock([*CODES, "LATTE99999"]))
    assert "upload 1 code(s)" in plus.changes[0].reason
    only(w.apply(plus))
    assert w.uploaded_numbers()[3:] == [plus.changes[0].operations[-1].request_no]
    assert w.api.codes_sent_again == 0


@pytest.mark.parametrize("reuse", ["idempotent", "reject"])
def test_a_batch_whose_answer_was_lost_is_resent_under_its_number(
    tmp_path: Path, reuse: str
) -> None:
    w = World(tmp_path, reuse)
    w.api.fail("busifavor_upload_codes", lost_answer(), when="after")
    first = only(w.apply(w.plan(upload_stock(CODES))))
    assert first.outcome is Outcome.UNRESOLVED and "same upload_request_no" in first.message
    (doubt,) = [n for n, b in w.state.stock(ID).code_batches.items() if not b.done]
    plan = w.plan(upload_stock(CODES))
    change = plan.changes[0]
    assert "resent with their upload_request_no" in change.reason
    assert change.operations[0].request_no == doubt  # first, unchanged
    assert only(w.apply(plan)).outcome is Outcome.SUCCEEDED
    assert w.uploaded_numbers().count(doubt) == 2
    assert w.api.codes_sent_again == 0
    stock_id = w.state.stock(ID).stock_id
    assert stock_id is not None and len(w.api.codes[stock_id]) == 450
    assert all(b.done for b in w.state.stock(ID).code_batches.values())
    if reuse == "reject":
        assert w.api.count("busifavor_codes") >= 1  # the pool said the batch had landed


def statement_creating() -> ApiResponseError:
    return ApiResponseError(
        status=400, method="POST", path="/x", code="STATEMENT_CREATING", message="批次创建中"
    )


def rate_limited() -> ApiResponseError:
    return ApiResponseError(
        status=429, method="POST", path="/x", code="FREQUENCY_LIMITED", message="频率限制"
    )


def test_statement_creating_and_429_are_retried_with_backoff(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.api.fail("busifavor_upload_codes", statement_creating(), times=2)
    w.api.fail("busifavor_upload_codes", rate_limited())
    result = only(w.apply(w.plan(upload_stock(CODES[:10]))))
    assert result.outcome is Outcome.SUCCEEDED, result.message
    assert w.waits[:3] == [0.5, 1.0, 2.0]
    assert w.api.count("busifavor_upload_codes") == 4


def test_retries_end_with_the_batch_kept_for_the_next_apply(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.api.fail("busifavor_upload_codes", statement_creating(), times=5)
    result = only(w.apply(w.plan(upload_stock(CODES[:10])), delays=(0.1,)))
    assert result.outcome is Outcome.FAILED
    assert "STATEMENT_CREATING" in result.message and "next apply uploads it" in result.message
    assert w.state.stock(ID).code_batches == {}
    result = only(w.apply(w.plan(upload_stock(CODES[:10])), delays=(0.1,) * 5))
    assert result.outcome is Outcome.SUCCEEDED, result.message


def test_a_refused_batch_is_forgotten_and_nothing_is_recorded_uploaded(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.api.fail("busifavor_upload_codes", refused("PARAM_ERROR", "code格式错误"))
    result = only(w.apply(w.plan(upload_stock(CODES[:10]))))
    assert result.outcome is Outcome.FAILED and "refused" in result.message
    assert w.state.stock(ID).code_batches == {}
    plan = w.plan(upload_stock(CODES[:10]))
    assert "upload 10 code(s)" in plan.changes[0].reason


def test_fewer_codes_at_wechat_pay_than_recorded_fails_the_stock(tmp_path: Path) -> None:
    w = World(tmp_path)
    only(w.apply(w.plan(upload_stock(CODES[:10]))))
    stock_id = w.state.stock(ID).stock_id
    assert stock_id is not None
    w.api.codes[stock_id].pop(CODES[0])  # lost at WeChat Pay's side
    result = only(w.apply(w.plan(upload_stock(CODES[:11]))))
    assert result.outcome is Outcome.FAILED
    assert "counts 10 codes in the pool, the state records 11" in result.message


def test_codes_removed_from_the_file_are_reported_not_deleted(tmp_path: Path) -> None:
    w = World(tmp_path)
    only(w.apply(w.plan(upload_stock(CODES[:10]))))
    plan = w.plan(upload_stock(CODES[:8]))
    change = plan.changes[0]
    assert change.action is Action.NOOP and not change.operations
    assert "2 uploaded code(s) no longer in" in change.reason


def test_codes_wechat_pay_refused_are_reported_and_not_resent(tmp_path: Path) -> None:
    w = World(tmp_path)
    only(w.apply(w.plan(upload_stock(CODES[:3]))))
    stock_id = w.state.stock(ID).stock_id
    assert stock_id is not None
    w.api.refuse_codes = {CODES[4]: "code已被使用"}
    result = only(w.apply(w.plan(upload_stock(CODES[:5]))))
    assert result.outcome is Outcome.FAILED and "refused 1 of 2 code(s)" in result.message
    assert CODES[4] + ": INVALID_CODE code已被使用" in result.message
    plan = w.plan(upload_stock(CODES[:5]))
    assert not plan.has_changes
    assert "1 code(s) WeChat Pay refused are not sent again" in plan.changes[0].reason
