"""One valid and one invalid case per documented rule, asserting the field path and the line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from reconciler.diagnostics import Severity
from reconciler.loader import load_stock_file
from tests.conftest import dump, example, line_of

Mutation = Callable[[dict[str, Any]], None]


def _set(path: tuple[str | int, ...], value: Any) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node.setdefault(part, {}) if isinstance(part, str) else node[part]
        node[path[-1]] = value

    return apply


def _del(path: tuple[str | int, ...]) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        node: Any = data
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]

    return apply


def _all(*mutations: Mutation) -> Mutation:
    def apply(data: dict[str, Any]) -> None:
        for m in mutations:
            m(data)

    return apply


F_RULE = ("spec", "stock_use_rule")
F_CUR = ("spec", "coupon_use_rule")
B_CUR = ("spec", "coupon_use_rule")
B_TIME = (*B_CUR, "coupon_available_time")
B_SEND = ("spec", "stock_send_rule")

# (case id, kind, mutation, expected field path, severity, text in the message)
CASES: list[tuple[str, str, Mutation, tuple[str | int, ...], Severity, str]] = [
    # --- favor: text ---
    (
        "favor-name-too-long-cjk",
        "favor",
        _set(("spec", "stock_name"), "一二三四五六七八九十"),
        ("spec", "stock_name"),
        Severity.ERROR,
        "9 Chinese",
    ),
    (
        "favor-name-too-long-latin",
        "favor",
        _set(("spec", "stock_name"), "a" * 21),
        ("spec", "stock_name"),
        Severity.ERROR,
        "20 letters",
    ),
    (
        "favor-name-forbidden-char",
        "favor",
        _set(("spec", "stock_name"), "spring_sale"),
        ("spec", "stock_name"),
        Severity.ERROR,
        "'_'",
    ),
    (
        "favor-name-forbidden-pipe",
        "favor",
        _set(("spec", "stock_name"), "a|b;c"),
        ("spec", "stock_name"),
        Severity.ERROR,
        "';'",
    ),
    (
        "favor-comment-too-long",
        "favor",
        _set(("spec", "comment"), "备" * 61),
        ("spec", "comment"),
        Severity.ERROR,
        "60",
    ),
    (
        "favor-belong-merchant",
        "favor",
        _set(("spec", "belong_merchant"), "1900000002"),
        ("spec", "belong_merchant"),
        Severity.ERROR,
        "creating merchant",
    ),
    (
        "favor-description-too-long",
        "favor",
        _set(("spec", "pattern_info", "description"), "说" * 1001),
        ("spec", "pattern_info", "description"),
        Severity.ERROR,
        "1000",
    ),
    (
        "favor-merchant-name",
        "favor",
        _set(("spec", "pattern_info", "merchant_name"), "一二三四五六七八九十一二三"),
        ("spec", "pattern_info", "merchant_name"),
        Severity.ERROR,
        "12 Chinese",
    ),
    (
        "favor-color-unknown",
        "favor",
        _set(("spec", "pattern_info", "background_color"), "COLOR999"),
        ("spec", "pattern_info", "background_color"),
        Severity.ERROR,
        "not a colour",
    ),
    (
        "favor-color-case",
        "favor",
        _set(("spec", "pattern_info", "background_color"), "Color020"),
        ("spec", "pattern_info", "background_color"),
        Severity.WARNING,
        "upper case",
    ),
    (
        "favor-jump-mini-needs-appid",
        "favor",
        _set(("spec", "pattern_info", "jump_target"), "MINI_PROGRAM"),
        ("spec", "pattern_info", "mini_program_appid"),
        Severity.ERROR,
        "MINI_PROGRAM",
    ),
    (
        "favor-jump-enum",
        "favor",
        _set(("spec", "pattern_info", "jump_target"), "HOME"),
        ("spec", "pattern_info", "jump_target"),
        Severity.ERROR,
        "MINI_PROGRAM",
    ),
    (
        "favor-emoji",
        "favor",
        _set(("spec", "pattern_info", "description"), "好券🎉"),
        ("spec", "pattern_info", "description"),
        Severity.ERROR,
        "U+1F389",
    ),
    # --- favor: times ---
    (
        "favor-time-no-offset",
        "favor",
        _set(("spec", "available_begin_time"), "2027-03-01T00:00:00"),
        ("spec", "available_begin_time"),
        Severity.ERROR,
        "offset",
    ),
    (
        "favor-time-not-a-date",
        "favor",
        _set(("spec", "available_begin_time"), "2027-02-30T00:00:00+08:00"),
        ("spec", "available_begin_time"),
        Severity.ERROR,
        "real date",
    ),
    (
        "favor-end-before-begin",
        "favor",
        _set(("spec", "available_end_time"), "2027-02-28T00:00:00+08:00"),
        ("spec", "available_end_time"),
        Severity.ERROR,
        "later than",
    ),
    (
        "favor-window-over-90-days",
        "favor",
        _set(("spec", "available_end_time"), "2027-06-01T00:00:00+08:00"),
        ("spec", "available_end_time"),
        Severity.ERROR,
        "90 days",
    ),
    # --- favor: budget ---
    (
        "favor-max-coupons-low",
        "favor",
        _all(
            _set((*F_RULE, "max_coupons"), 4),
            _set((*F_RULE, "max_amount"), 4000),
            _set((*F_RULE, "max_amount_by_day"), 4000),
            _set((*F_RULE, "max_coupons_per_user"), 1),
        ),
        (*F_RULE, "max_coupons"),
        Severity.ERROR,
        "between 5",
    ),
    (
        "favor-max-coupons-high",
        "favor",
        _all(
            _set((*F_RULE, "max_coupons"), 10_000_001),
            _set((*F_RULE, "max_amount"), 10_000_001_000),
        ),
        (*F_RULE, "max_coupons"),
        Severity.ERROR,
        "10,000,000",
    ),
    (
        "favor-budget-mismatch",
        "favor",
        _set((*F_RULE, "max_amount"), 19_999_000),
        (*F_RULE, "max_amount"),
        Severity.ERROR,
        "¥200,000.00",
    ),
    (
        "favor-budget-above-strict-cap",
        "favor",
        _all(
            _set((*F_RULE, "max_coupons"), 1_500_000), _set((*F_RULE, "max_amount"), 1_500_000_000)
        ),
        (*F_RULE, "max_amount"),
        Severity.WARNING,
        "¥10,000,000.00",
    ),
    (
        "favor-budget-above-loose-cap",
        "favor",
        _all(
            _set((*F_RULE, "max_coupons"), 10_000_000),
            _set((*F_RULE, "max_amount"), 10_000_000 * 100_000),
            _set((*F_CUR, "fixed_normal_coupon", "coupon_amount"), 100_000),
            _set((*F_CUR, "fixed_normal_coupon", "transaction_minimum"), 200_000),
        ),
        (*F_RULE, "max_amount"),
        Severity.ERROR,
        "cap",
    ),
    (
        "favor-by-day-zero",
        "favor",
        _set((*F_RULE, "max_amount_by_day"), 0),
        (*F_RULE, "max_amount_by_day"),
        Severity.ERROR,
        "not be 0",
    ),
    (
        "favor-by-day-above-total",
        "favor",
        _set((*F_RULE, "max_amount_by_day"), 20_000_001),
        (*F_RULE, "max_amount_by_day"),
        Severity.ERROR,
        "above max_amount",
    ),
    (
        "favor-per-user-zero",
        "favor",
        _set((*F_RULE, "max_coupons_per_user"), 0),
        (*F_RULE, "max_coupons_per_user"),
        Severity.ERROR,
        "between 1 and 60",
    ),
    (
        "favor-per-user-61",
        "favor",
        _set((*F_RULE, "max_coupons_per_user"), 61),
        (*F_RULE, "max_coupons_per_user"),
        Severity.ERROR,
        "between 1 and 60",
    ),
    (
        "favor-per-user-above-total",
        "favor",
        _all(
            _set((*F_RULE, "max_coupons"), 5),
            _set((*F_RULE, "max_amount"), 5000),
            _set((*F_RULE, "max_amount_by_day"), 5000),
            _set((*F_RULE, "max_coupons_per_user"), 6),
        ),
        (*F_RULE, "max_coupons_per_user"),
        Severity.ERROR,
        "above max_coupons",
    ),
    (
        "favor-natural-person-required",
        "favor",
        _del((*F_RULE, "natural_person_limit")),
        (*F_RULE, "natural_person_limit"),
        Severity.ERROR,
        "required field",
    ),
    # --- favor: coupon_use_rule ---
    (
        "favor-normal-needs-fixed",
        "favor",
        _del((*F_CUR, "fixed_normal_coupon")),
        (*F_CUR, "fixed_normal_coupon"),
        Severity.ERROR,
        "required when stock_type is NORMAL",
    ),
    (
        "favor-threshold-not-above",
        "favor",
        _set((*F_CUR, "fixed_normal_coupon", "transaction_minimum"), 1000),
        (*F_CUR, "fixed_normal_coupon", "transaction_minimum"),
        Severity.ERROR,
        "greater than coupon_amount",
    ),
    (
        "favor-coupon-amount-1-fen",
        "favor",
        _all(
            _set((*F_CUR, "fixed_normal_coupon", "coupon_amount"), 1),
            _set((*F_RULE, "max_amount"), 20000),
            _set((*F_RULE, "max_amount_by_day"), 20000),
        ),
        (*F_CUR, "fixed_normal_coupon", "coupon_amount"),
        Severity.ERROR,
        "more than 1 分",
    ),
    (
        "favor-coupon-amount-strict",
        "favor",
        _all(
            _set((*F_CUR, "fixed_normal_coupon", "coupon_amount"), 60000),
            _set((*F_CUR, "fixed_normal_coupon", "transaction_minimum"), 70000),
            _set((*F_RULE, "max_amount"), 1_200_000_000),
            _set((*F_RULE, "max_amount_by_day"), 2_000_000),
        ),
        (*F_CUR, "fixed_normal_coupon", "coupon_amount"),
        Severity.WARNING,
        "is 60000 分 (¥600.00); some docs allow only more than ¥1.00 and at most ¥500.00",
    ),
    (
        "favor-goods-tag-empty",
        "favor",
        _set((*F_CUR, "goods_tag"), []),
        (*F_CUR, "goods_tag"),
        Severity.ERROR,
        "1 to 50",
    ),
    (
        "favor-goods-tag-51",
        "favor",
        _set((*F_CUR, "goods_tag"), [f"t{i}" for i in range(51)]),
        (*F_CUR, "goods_tag"),
        Severity.ERROR,
        "has 51",
    ),
    (
        "favor-goods-tag-format",
        "favor",
        _set((*F_CUR, "goods_tag"), ["ok_1", "bad-tag"]),
        (*F_CUR, "goods_tag", 1),
        Severity.ERROR,
        "letters, digits",
    ),
    (
        "favor-limit-pay-two",
        "favor",
        _set((*F_CUR, "limit_pay"), ["ICBC_CREDIT", "CFT"]),
        (*F_CUR, "limit_pay"),
        Severity.ERROR,
        "exactly 1",
    ),
    (
        "favor-limit-card-without-pay",
        "favor",
        _set((*F_CUR, "limit_card"), {"name": "工行", "bin": ["622202"]}),
        (*F_CUR, "limit_card"),
        Severity.WARNING,
        "limit_pay",
    ),
    (
        "favor-bin-format",
        "favor",
        _all(
            _set((*F_CUR, "limit_pay"), ["ICBC_CREDIT"]),
            _set((*F_CUR, "limit_card"), {"name": "工行", "bin": ["62220"]}),
        ),
        (*F_CUR, "limit_card", "bin", 0),
        Severity.ERROR,
        "6 to 9",
    ),
    (
        "favor-bin-count",
        "favor",
        _all(
            _set((*F_CUR, "limit_pay"), ["ICBC_CREDIT"]),
            _set((*F_CUR, "limit_card"), {"bin": [f"62220{i:02d}" for i in range(11)]}),
        ),
        (*F_CUR, "limit_card", "bin"),
        Severity.ERROR,
        "1 to 10",
    ),
    (
        "favor-trade-type-enum",
        "favor",
        _set((*F_CUR, "trade_type"), ["MICROAPP", "WEB"]),
        (*F_CUR, "trade_type", 1),
        Severity.ERROR,
        "MICROAPP",
    ),
    (
        "favor-available-items-51",
        "favor",
        _set((*F_CUR, "available_items"), [f"sku{i}" for i in range(51)]),
        (*F_CUR, "available_items"),
        Severity.ERROR,
        "1 to 50",
    ),
    (
        "favor-available-merchants-51",
        "favor",
        _set((*F_CUR, "available_merchants"), [str(1900000000 + i) for i in range(51)]),
        (*F_CUR, "available_merchants"),
        Severity.ERROR,
        "1 to 50",
    ),
    (
        "favor-available-merchants-missing",
        "favor",
        _del((*F_CUR, "available_merchants")),
        (*F_CUR, "available_merchants"),
        Severity.WARNING,
        "older docs",
    ),
    (
        "favor-stock-type-enum",
        "favor",
        _set(("spec", "stock_type"), "CASH"),
        ("spec", "stock_type"),
        Severity.ERROR,
        "NORMAL",
    ),
    (
        "favor-stock-type-discount-warns",
        "favor",
        _all(
            _set(("spec", "stock_type"), "DISCOUNT"),
            _del((*F_CUR, "fixed_normal_coupon")),
            _set(
                (*F_CUR, "discount_coupon"),
                {"discount_amount_max": 1000, "discount_percent": 88, "transaction_minimum": 5000},
            ),
        ),
        ("spec", "stock_type"),
        Severity.WARNING,
        "only NORMAL",
    ),
    (
        "favor-ext-info-json",
        "favor",
        _set(("spec", "ext_info"), "{not json"),
        ("spec", "ext_info"),
        Severity.ERROR,
        "JSON",
    ),
    (
        "favor-no-cash-type",
        "favor",
        _set(("spec", "no_cash"), "false"),
        ("spec", "no_cash"),
        Severity.ERROR,
        "true or false",
    ),
    # --- favor: file level ---
    (
        "favor-unknown-key-suggestion",
        "favor",
        _set((*F_RULE, "max_coupon"), 5),
        (*F_RULE, "max_coupon"),
        Severity.ERROR,
        "did you mean 'max_coupons'",
    ),
    (
        "favor-out-request-no-forbidden",
        "favor",
        _set(("spec", "out_request_no"), "x"),
        ("spec", "out_request_no"),
        Severity.ERROR,
        "derives it",
    ),
    (
        "favor-int-as-string",
        "favor",
        _set((*F_RULE, "max_coupons"), "20000"),
        (*F_RULE, "max_coupons"),
        Severity.ERROR,
        "expected an integer",
    ),
    (
        "id-not-slug",
        "favor",
        _set(("id",), "Spring Sale"),
        ("id",),
        Severity.ERROR,
        "not a valid id: use lower-case letters",
    ),
    (
        "merchant-not-digits",
        "favor",
        _set(("merchant",), "abc"),
        ("merchant",),
        Severity.ERROR,
        "use 5 to 32 ASCII digits",
    ),
    (
        "kind-unknown",
        "favor",
        _set(("kind",), "coupon"),
        ("kind",),
        Severity.ERROR,
        "favor (代金券) or busifavor",
    ),
    # --- busifavor ---
    (
        "busi-name-21",
        "busifavor",
        _set(("spec", "stock_name"), "a" * 22),
        ("spec", "stock_name"),
        Severity.ERROR,
        "21",
    ),
    (
        "busi-name-bytes",
        "busifavor",
        _set(("spec", "stock_name"), "一二三四五六七八九"),
        ("spec", "stock_name"),
        Severity.WARNING,
        "24 UTF-8 bytes",
    ),
    (
        "busi-goods-name-15",
        "busifavor",
        _set(("spec", "goods_name"), "商" * 16),
        ("spec", "goods_name"),
        Severity.ERROR,
        "15",
    ),
    (
        "busi-comment-20",
        "busifavor",
        _set(("spec", "comment"), "c" * 21),
        ("spec", "comment"),
        Severity.ERROR,
        "20",
    ),
    (
        "busi-stock-type-needs-kind",
        "busifavor",
        _set(("spec", "stock_type"), "DISCOUNT"),
        (*B_CUR, "discount_coupon"),
        Severity.ERROR,
        "required when stock_type is DISCOUNT",
    ),
    (
        "busi-wrong-kind-present",
        "busifavor",
        _set((*B_CUR, "exchange_coupon"), {"exchange_price": 100, "transaction_minimum": 2000}),
        (*B_CUR, "exchange_coupon"),
        Severity.ERROR,
        "belongs to stock_type EXCHANGE",
    ),
    (
        "busi-discount-amount-range",
        "busifavor",
        _set((*B_CUR, "fixed_normal_coupon", "discount_amount"), 10_000_001),
        (*B_CUR, "fixed_normal_coupon", "discount_amount"),
        Severity.ERROR,
        "10000000",
    ),
    (
        "busi-use-method-enum",
        "busifavor",
        _set((*B_CUR, "use_method"), "ONLINE"),
        (*B_CUR, "use_method"),
        Severity.ERROR,
        "OFF_LINE",
    ),
    (
        "busi-mini-programs-needs-appid",
        "busifavor",
        _set((*B_CUR, "use_method"), "MINI_PROGRAMS"),
        (*B_CUR, "mini_programs_appid"),
        Severity.ERROR,
        "MINI_PROGRAMS",
    ),
    (
        "busi-self-consume-warns",
        "busifavor",
        _set((*B_CUR, "use_method"), "SELF_CONSUME"),
        (*B_CUR, "use_method"),
        Severity.WARNING,
        "not supported",
    ),
    (
        "busi-end-before-begin",
        "busifavor",
        _set((*B_TIME, "available_end_time"), "2027-03-01T00:00:00+08:00"),
        (*B_TIME, "available_end_time"),
        Severity.ERROR,
        "later than",
    ),
    (
        "busi-over-one-year",
        "busifavor",
        _set((*B_TIME, "available_end_time"), "2028-04-02T00:00:00+08:00"),
        (*B_TIME, "available_end_time"),
        Severity.ERROR,
        "one year",
    ),
    (
        "busi-wait-days-needs-day-after",
        "busifavor",
        _all(
            _del((*B_TIME, "available_day_after_receive")),
            _set((*B_TIME, "wait_days_after_receive"), 3),
        ),
        (*B_TIME, "wait_days_after_receive"),
        Severity.ERROR,
        "available_day_after_receive",
    ),
    (
        "busi-wait-days-30",
        "busifavor",
        _set((*B_TIME, "wait_days_after_receive"), 31),
        (*B_TIME, "wait_days_after_receive"),
        Severity.ERROR,
        "30",
    ),
    (
        "busi-week-day-range",
        "busifavor",
        _set((*B_TIME, "available_week", "week_day"), [1, 7]),
        (*B_TIME, "available_week", "week_day", 1),
        Severity.ERROR,
        "not a weekday",
    ),
    (
        "busi-day-time-three",
        "busifavor",
        _set(
            (*B_TIME, "available_week", "available_day_time"),
            [{"begin_time": 0, "end_time": 10}] * 3,
        ),
        (*B_TIME, "available_week", "available_day_time"),
        Severity.ERROR,
        "1 to 2",
    ),
    (
        "busi-per-user-100",
        "busifavor",
        _set((*B_SEND, "max_coupons_per_user"), 101),
        (*B_SEND, "max_coupons_per_user"),
        Severity.ERROR,
        "100",
    ),
    (
        "busi-max-coupons-range",
        "busifavor",
        _set((*B_SEND, "max_coupons"), 1_000_000_001),
        (*B_SEND, "max_coupons"),
        Severity.ERROR,
        "must be at most 1,000,000,000; is 1,000,000,001",
    ),
    (
        "busi-by-day-above-total",
        "busifavor",
        _set((*B_SEND, "max_coupons_by_day"), 50_001),
        (*B_SEND, "max_coupons_by_day"),
        Severity.ERROR,
        "above max_coupons",
    ),
    (
        "busi-max-coupons-missing",
        "busifavor",
        _del((*B_SEND, "max_coupons")),
        (*B_SEND, "max_coupons"),
        Severity.WARNING,
        "most sources",
    ),
    (
        "busi-not-open-field",
        "busifavor",
        _set((*B_SEND, "transferable"), True),
        (*B_SEND, "transferable"),
        Severity.WARNING,
        "not open",
    ),
    (
        "busi-code-mode-enum",
        "busifavor",
        _set(("spec", "coupon_code_mode"), "RANDOM"),
        ("spec", "coupon_code_mode"),
        Severity.ERROR,
        "WECHATPAY_MODE",
    ),
    (
        "busi-color",
        "busifavor",
        _set(("spec", "display_pattern_info", "background_color"), "Color015"),
        ("spec", "display_pattern_info", "background_color"),
        Severity.ERROR,
        "not a colour",
    ),
    (
        "busi-entrance-words",
        "busifavor",
        _set(
            ("spec", "custom_entrance"),
            {
                "mini_programs_info": {
                    "mini_programs_appid": "wx1",
                    "mini_programs_path": "/p",
                    "entrance_words": "六个字的入口",
                }
            },
        ),
        ("spec", "custom_entrance", "mini_programs_info", "entrance_words"),
        Severity.ERROR,
        "5",
    ),
    (
        "busi-code-display-enum",
        "busifavor",
        _set(("spec", "custom_entrance"), {"code_display_mode": "PDF417"}),
        ("spec", "custom_entrance", "code_display_mode"),
        Severity.ERROR,
        "QRCODE",
    ),
    (
        "busi-unknown-key",
        "busifavor",
        _set(("spec", "stock_send_rules"), {}),
        ("spec", "stock_send_rules"),
        Severity.ERROR,
        "did you mean 'stock_send_rule'",
    ),
]


@pytest.mark.parametrize("kind", ["favor", "busifavor"])
def test_examples_are_clean(kind: str) -> None:
    loaded, diagnostics = load_stock_file(dump(example(kind)).encode(), "x.yaml")
    assert loaded is not None
    assert diagnostics == []


@pytest.mark.parametrize(
    ("case", "kind", "mutate", "path", "severity", "needle"), CASES, ids=[c[0] for c in CASES]
)
def test_rule(
    case: str,
    kind: str,
    mutate: Mutation,
    path: tuple[str | int, ...],
    severity: Severity,
    needle: str,
) -> None:
    data = example(kind)
    mutate(data)
    text = dump(data)
    loaded, diagnostics = load_stock_file(text.encode(), "stocks/x.yaml")
    matching = [d for d in diagnostics if d.path == path and d.severity is severity]
    assert matching, (
        f"no {severity.value} at {path}; got {[(d.path, d.severity.value, d.message) for d in diagnostics]}"
    )
    d = matching[0]
    assert needle in d.message
    assert d.file == "stocks/x.yaml"
    assert d.line == line_of(text, path if _present(data, path) else path[:-1])
    if severity is Severity.ERROR:
        assert loaded is None
    else:
        assert loaded is not None


def _present(data: Any, path: tuple[str | int, ...]) -> bool:
    node = data
    for part in path:
        found = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and part < len(node)
        )
        if not found:
            return False
        node = node[part]
    return True
