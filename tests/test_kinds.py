"""The kinds: one home per stock kind, read by everything else.

The traits declared on the spec models' fields decide how each changed field may change; no
module outside `kinds/` and `spec/` names a kind (request-number letters in `ids` and the
state's kind literal aside).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from reconciler.errors import ReconcilerError
from reconciler.kinds import KINDS, FieldDiff, Verdict, kind_of

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"
ALLOWED = {"ids.py", "state/model.py"}


def test_nothing_outside_the_kinds_branches_on_a_kind_name() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(("kinds/", "spec/", "emulator/")) or rel in ALLOWED:
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"""["'](favor|busifavor)["']""", line):
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_the_registry_knows_both_kinds_and_refuses_others() -> None:
    assert set(KINDS) == {"favor", "busifavor"}
    assert kind_of("favor").label == "代金券" and kind_of("busifavor").label == "商家券"
    with pytest.raises(ReconcilerError, match="unknown stock kind"):
        kind_of("coupon")


@pytest.mark.parametrize(
    ("kind", "path", "before", "after", "verdict"),
    [
        ("busifavor", "comment", "a", "b", Verdict.MODIFY),
        ("busifavor", "display_pattern_info.description", "a", "b", Verdict.MODIFY),
        ("busifavor", "display_pattern_info.merchant_logo_url", "a", "b", Verdict.IMMUTABLE),
        (
            "busifavor",
            "custom_entrance.mini_programs_info.entrance_words",
            "a",
            "b",
            Verdict.MODIFY,
        ),
        ("busifavor", "custom_entrance.store_id", "a", "b", Verdict.IMMUTABLE),
        ("busifavor", "stock_send_rule.max_coupons", 1, 2, Verdict.BUDGET),
        ("busifavor", "stock_send_rule.max_coupons", None, 2, Verdict.IMMUTABLE),
        ("busifavor", "stock_send_rule.max_coupons_per_user", 1, 2, Verdict.IMMUTABLE),
        ("busifavor", "subsidy", None, True, Verdict.MODIFY),
        ("busifavor", "subsidy", True, False, Verdict.IMMUTABLE),
        ("busifavor", "comment", "a", None, Verdict.IMMUTABLE),
        ("busifavor", "stock_name", "a", "b", Verdict.IMMUTABLE),
        ("favor", "comment", "a", "b", Verdict.IMMUTABLE),
        ("favor", "stock_use_rule.max_coupons", 1, 2, Verdict.IMMUTABLE),
    ],
)
def test_verdicts_follow_the_traits_on_the_model_fields(
    kind: str, path: str, before: object, after: object, verdict: Verdict
) -> None:
    assert kind_of(kind).verdict(FieldDiff(path, before, after)) is verdict


def test_review_fields_come_in_the_reviewers_order() -> None:
    favor = [p for p, _ in kind_of("favor").review_fields()]
    assert favor[:4] == [
        "stock_name",
        "stock_type",
        "available_begin_time",
        "available_end_time",
    ]
    money = dict(kind_of("favor").review_fields())
    assert money["stock_use_rule.max_amount"] and not money["stock_use_rule.max_coupons"]


def test_a_modify_body_carries_only_what_the_call_can_change() -> None:
    kind = kind_of("busifavor")
    applied = {
        "custom_entrance": {"appid": "wx1", "store_id": "s1"},
        "comment": "a",
        "out_request_no": "1900000001_BC0_x_0",
    }
    desired = {**applied, "custom_entrance": {"appid": "wx2", "store_id": "s1"}}
    planned = kind.plan_update(
        "1900000001", "x", "100", 0, applied, desired, {}, kind.diff(applied, desired)
    )
    (op,) = planned.operations
    assert op.body["custom_entrance"] == {"appid": "wx2"}
    assert op.after["custom_entrance"] == {"appid": "wx2", "store_id": "s1"}


def test_the_same_instant_or_set_in_another_order_is_no_change() -> None:
    kind = kind_of("favor")
    a = {
        "available_begin_time": "2027-03-01T00:00:00+08:00",
        "coupon_use_rule": {"available_merchants": ["1", "2"]},
    }
    b = {
        "available_begin_time": "2027-02-28T16:00:00Z",
        "coupon_use_rule": {"available_merchants": ["2", "1"]},
    }
    assert kind.diff(a, b) == []
