from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.ids import (
    KIND_CODES,
    PURPOSE_CODES,
    REQUEST_NO_PATTERN,
    SLUG_PATTERN,
    body_digest,
    canonical_json,
    check_slug,
    is_valid_request_no,
    is_valid_slug,
    out_request_no,
    update_request_no,
)

# --- golden values ----------------------------------------------------------------------------
# DO NOT UPDATE THESE TO MAKE A TEST PASS. Request numbers are WeChat Pay's idempotency keys and
# are recomputed on every run: if out_request_no() changes its output, the next `apply` sends a
# new number for a stock whose create response was lost, and WeChat Pay creates a duplicate
# stock (spending its budget twice). A new format must live beside the old one, chosen per
# stock, never replace it.

GOLDEN_CREATE = [
    (
        ("1900000001", "busifavor", "spring-sale-2026", 0),
        "1900000001_BC0_spring-sale-2026_48c86dc2e1d8e3bf9dc88b377d0f7761",
    ),
    (
        ("1900000001", "favor", "spring-sale-2026", 0),
        "1900000001_FC0_spring-sale-2026_ba377fabdf07ac03ba4d08a7eb095a36",
    ),
    (
        ("1900000001", "busifavor", "spring-sale-2026", 1),
        "1900000001_BC1_spring-sale-2026_e79d1d46ed2ad618895777ade29a2ffc",
    ),
    (
        ("1230000109", "favor", "a" * 64, 3),
        "1230000109_FC3_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "_bac0e31e01deb7d83bc0100d50e7c6ba",
    ),
    (
        # a long merchant string and generation: the id fragment is cut to fit 128 characters
        ("12345678901234567890123456789012", "busifavor", "b" * 60 + "-end", 999_999),
        "12345678901234567890123456789012_BC999999_"
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
        "_c488749df6377e3f8471925165aa8c04",
    ),
    (("1900000001", "favor", "x", 0), "1900000001_FC0_x_6c2c97da903303de23754f0f17526ae0"),
]

GOLDEN_UPDATE = [
    (
        ("1900000001", "busifavor", "spring-sale-2026", "modify", "sha256:" + "0" * 64),
        "1900000001_BM0_spring-sale-2026_bdf63563a6758266c20a590469a7dcc1",
    ),
    (
        ("1900000001", "busifavor", "spring-sale-2026", "budget", "sha256:" + "0" * 64),
        "1900000001_BQ0_spring-sale-2026_c649553fa98110a891b79cb74d93c3eb",
    ),
]


@pytest.mark.parametrize(("args", "expected"), GOLDEN_CREATE)
def test_golden_create_numbers(args: tuple[str, str, str, int], expected: str) -> None:
    assert out_request_no(*args) == expected


@pytest.mark.parametrize(("args", "expected"), GOLDEN_UPDATE)
def test_golden_update_numbers(args: tuple[str, str, str, str, str], expected: str) -> None:
    assert update_request_no(*args) == expected


def test_golden_body_digest() -> None:
    # Independent of the implementation: the canonical bytes written out by hand.
    raw = '{"a":"券","b":[1,{"c":null}]}'.encode()
    assert body_digest({"b": [1, {"c": None}], "a": "券"}) == (
        "sha256:" + hashlib.sha256(raw).hexdigest()
    )
    assert body_digest({}) == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )


# --- request number properties ----------------------------------------------------------------

REQUEST_NO_RE = re.compile(REQUEST_NO_PATTERN)
KINDS = sorted(KIND_CODES)
UPDATE_PURPOSES = sorted(set(PURPOSE_CODES) - {"create"})

# Characters the readable fragment drops, to build ids that look the same there.
DROPPED = st.sampled_from(["_", ".", " ", "é", "券", "|", "*", "\n", "/"])

merchants = st.one_of(
    st.from_regex(r"[0-9]{8,12}", fullmatch=True),
    st.text(min_size=1, max_size=60),
)
stock_ids = st.one_of(
    st.from_regex(SLUG_PATTERN, fullmatch=True).filter(lambda s: not s.endswith("\n")),
    st.text(min_size=1, max_size=200),
    # long ids whose tails fall outside the readable fragment
    st.text(alphabet="ab-", min_size=50, max_size=70).map(lambda s: "z" + s + "z"),
)
generations = st.integers(min_value=0, max_value=999_999)
digests = st.one_of(st.just(body_digest({})), st.text(min_size=1, max_size=80))


@st.composite
def request_inputs(draw: st.DrawFn) -> tuple[str, str, str, int, str, str | None]:
    purpose = draw(st.sampled_from(sorted(PURPOSE_CODES)))
    change = None if purpose == "create" else draw(digests)
    return (
        draw(merchants),
        draw(st.sampled_from(KINDS)),
        draw(stock_ids),
        draw(generations),
        purpose,
        change,
    )


@given(request_inputs())
def test_number_is_valid_for_wechat_pay(args: tuple[str, str, str, int, str, str | None]) -> None:
    number = out_request_no(*args)
    assert len(number) <= 128
    assert REQUEST_NO_RE.match(number)
    assert number.endswith("\n") is False
    assert is_valid_request_no(number)
    assert number == out_request_no(*args)


@given(st.lists(request_inputs(), min_size=2, max_size=30, unique=True))
def test_distinct_inputs_give_distinct_numbers(
    inputs: list[tuple[str, str, str, int, str, str | None]],
) -> None:
    numbers = {out_request_no(*args) for args in inputs}
    assert len(numbers) == len(inputs)


@given(
    st.from_regex(r"[a-z0-9]{1,40}", fullmatch=True),
    st.integers(min_value=0, max_value=40),
    DROPPED,
    st.sampled_from(KINDS),
)
def test_ids_differing_only_in_dropped_characters(
    base: str, at: int, extra: str, kind: str
) -> None:
    variant = base[:at] + extra + base[at:]
    a = out_request_no("1900000001", kind, base)
    b = out_request_no("1900000001", kind, variant)
    # Same readable part, different number: the digest alone separates them.
    assert a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0]
    assert a != b


@given(
    st.text(alphabet="ab-", min_size=1, max_size=11).map(lambda s: s + "z"),
    st.text(alphabet="ab-", min_size=1, max_size=11).map(lambda s: s + "z"),
)
def test_ids_differing_only_beyond_the_readable_fragment(tail_a: str, tail_b: str) -> None:
    # A 32-character merchant and a 6-digit generation leave room for 53 id characters.
    merchant, prefix = "1" * 32, "c" * 53
    a = out_request_no(merchant, "favor", prefix + tail_a, 999_999)
    b = out_request_no(merchant, "favor", prefix + tail_b, 999_999)
    assert a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0] == f"{merchant}_FC999999_{prefix}"
    assert (a == b) == (tail_a == tail_b)


def test_digest_is_sha256_of_the_documented_encoding() -> None:
    encoding = (
        '["reconciler/request-no/v1","1900000001","busifavor","spring-sale-2026",0,"create",null]'
    )
    digest = hashlib.sha256(encoding.encode()).hexdigest()[:32]
    assert out_request_no("1900000001", "busifavor", "spring-sale-2026").endswith("_" + digest)


def test_readable_parts() -> None:
    number = out_request_no("1900000001", "busifavor", "spring-sale-2026", 12)
    merchant, code, fragment, digest = number.split("_")
    assert (merchant, code, fragment) == ("1900000001", "BC12", "spring-sale-2026")
    assert re.fullmatch(r"[0-9a-f]{32}", digest)
    # Nothing readable survives from this id, so the fragment is left out entirely.
    assert re.fullmatch(r"1900000001_FC0_[0-9a-f]{32}", out_request_no("1900000001", "favor", "券"))
    # The fragment never ends in a hyphen left over from truncation.
    cut = out_request_no("1" * 32, "favor", "a" * 53 + "-" + "b" * 10, 999_999)
    assert len(cut) == 128
    assert "-_" not in cut


def test_every_input_changes_the_number() -> None:
    base = out_request_no("1900000001", "busifavor", "s", 0)
    others = [
        out_request_no("1900000002", "busifavor", "s", 0),
        out_request_no("1900000001", "favor", "s", 0),
        out_request_no("1900000001", "busifavor", "t", 0),
        out_request_no("1900000001", "busifavor", "s", 1),
        update_request_no("1900000001", "busifavor", "s", "modify", "sha256:1"),
        update_request_no("1900000001", "busifavor", "s", "budget", "sha256:1"),
        update_request_no("1900000001", "busifavor", "s", "budget", "sha256:2"),
        update_request_no("1900000001", "busifavor", "s", "budget", "sha256:2", generation=1),
    ]
    assert len({base, *others}) == 1 + len(others)


def test_update_number_is_reused_for_the_same_change_only() -> None:
    change = body_digest({"target_max_coupons": 200, "current_max_coupons": 100})
    first = update_request_no("1900000001", "busifavor", "s", "budget", change)
    retry = update_request_no("1900000001", "busifavor", "s", "budget", change)
    later = update_request_no(
        "1900000001",
        "busifavor",
        "s",
        "budget",
        body_digest({"target_max_coupons": 300, "current_max_coupons": 200}),
    )
    assert first == retry
    assert later != first


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"merchant": ""}, "merchant"),
        ({"stock_id": ""}, "stock id must not be empty"),
        ({"kind": "coupon"}, "unknown stock kind 'coupon'; known: busifavor, favor"),
        ({"purpose": "delete"}, "unknown purpose 'delete'"),
        ({"generation": -1}, "generation"),
        ({"generation": 1_000_000}, "generation"),
        ({"generation": True}, "generation"),
        ({"change_digest": "sha256:1"}, "a create number takes no change digest"),
        ({"purpose": "modify"}, "needs the digest of the change"),
    ],
)
def test_bad_inputs_are_refused(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"merchant": "1900000001", "kind": "favor", "stock_id": "s"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=re.escape(message)):
        out_request_no(**args)  # type: ignore[arg-type]


def test_update_request_no_refuses_create() -> None:
    with pytest.raises(ValueError, match="use out_request_no"):
        update_request_no("1900000001", "favor", "s", "create", "sha256:1")


# --- slugs ------------------------------------------------------------------------------------


def _reference_slug(value: str) -> bool:
    allowed = set("abcdefghijklmnopqrstuvwxyz0123456789-")
    return (
        1 <= len(value) <= 64
        and all(c in allowed for c in value)
        and value[0] != "-"
        and value[-1] != "-"
    )


@given(st.text(alphabet="abz09-_A\né", max_size=70))
def test_slug_rule_matches_its_description(value: str) -> None:
    assert is_valid_slug(value) == _reference_slug(value)


@pytest.mark.parametrize("value", ["a", "0", "spring-sale-2026", "a--b", "a" * 64, "9-9"])
def test_valid_slugs(value: str) -> None:
    assert is_valid_slug(value)
    assert check_slug(value) == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "it is empty"),
        ("a" * 65, "it has 65 characters (at most 64)"),
        ("Spring", "it contains 'S'"),
        ("spring sale", "it contains ' '"),
        ("spring_sale", "it contains '_'"),
        ("abc\n", "it contains '\\n'"),
        ("-abc", "it starts or ends with '-'"),
        ("abc-", "it starts or ends with '-'"),
        ("券", "it contains '券'"),
    ],
)
def test_invalid_slugs_say_why(value: str, problem: str) -> None:
    assert not is_valid_slug(value)
    with pytest.raises(ValueError, match=re.escape(problem)) as info:
        check_slug(value)
    assert "1-64 lowercase letters, digits and inner hyphens" in str(info.value)


# --- body digests -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_body_digest_ignores_key_order(body: dict[str, object]) -> None:
    reordered = dict(reversed(list(body.items())))
    assert body_digest(reordered) == body_digest(body)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", body_digest(body))


def test_body_digest_distinguishes_values() -> None:
    assert body_digest({"a": 1}) != body_digest({"a": "1"})
    assert body_digest({"a": 1}) != body_digest({"a": 1.0})
    assert body_digest({"a": [1, 2]}) != body_digest({"a": [2, 1]})


def test_canonical_json_is_compact_utf8_and_refuses_nan() -> None:
    assert canonical_json({"名": "券", "a": [1, True]}) == '{"a":[1,true],"名":"券"}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})
