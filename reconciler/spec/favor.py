"""代金券 (favor) create body: POST /v3/marketing/favor/coupon-stocks.

Field names and nesting are exactly the API's, so every field can be checked against the docs.
Shape and simple bounds live here; cross-field rules live in `rules_favor.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reconciler.spec.common import Rfc3339, Strict
from reconciler.spec.images import COUPON_IMAGE, LOGO, ImageRef, ShortImageUrl
from reconciler.spec.traits import Detail, Modify, Review

FavorStockType = Literal["NORMAL", "DISCOUNT", "EXCHANGE", "RANDOM", "DISCOUNT_CUT"]
TradeType = Literal["MICROAPP", "APPPAY", "PPAY", "CARD", "FACE", "OTHER"]
JumpTarget = Literal["PAYMENT_CODE", "MINI_PROGRAM", "DEFAULT_PAGE"]
FAVOR_COLORS = (
    "COLOR010", "COLOR020", "COLOR030", "COLOR040", "COLOR050", "COLOR060", "COLOR070",
    "COLOR080", "COLOR081", "COLOR082", "COLOR090", "COLOR100", "COLOR101", "COLOR102",
)  # fmt: skip

UINT64_MAX = 2**64 - 1


class FavorStockUseRule(Strict):
    max_coupons: Annotated[int, Review(order=7), Detail()] = Field(ge=1, le=UINT64_MAX)
    """发放总上限: total number of coupons, 5 to 10,000,000."""
    max_amount: Annotated[int, Review(money=True, order=9), Detail()] = Field(ge=1, le=UINT64_MAX)
    """总预算 in fen: must equal coupon_amount × max_coupons."""
    max_amount_by_day: Annotated[int | None, Review(money=True, order=10), Detail()] = Field(
        default=None, ge=0, le=UINT64_MAX
    )
    """单天预算发放上限 in fen: not above max_amount, never 0."""
    max_coupons_per_user: Annotated[int, Review(order=8), Detail()] = Field(ge=0, le=2**32 - 1)
    """单个用户可领个数: 1 to 60, not above max_coupons."""
    natural_person_limit: bool
    """是否开启自然人限制: one real identity counts as one user."""
    prevent_api_abuse: bool
    """是否开启防刷拦截."""


class FavorPatternInfo(Strict):
    description: Annotated[str, Detail("description")] = Field(min_length=1)
    """使用说明, shown on the coupon page; at most 1000 characters."""
    merchant_logo: Annotated[ShortImageUrl | None, ImageRef(LOGO)] = None
    """Logo URL from the marketing image-upload API (120×120 px), or {file: path} to upload."""
    merchant_name: str | None = Field(default=None, min_length=1)
    """品牌名称: at most 12 Chinese characters or 36 letters."""
    background_color: str | None = None
    """COLOR010 … COLOR102; leave it out rather than sending an empty value."""
    coupon_image: Annotated[ShortImageUrl | None, ImageRef(COUPON_IMAGE)] = None
    """券详情图片 URL from the image-upload API (850×350 px), or {file: path} to upload."""
    jump_target: JumpTarget | None = None
    """PAYMENT_CODE, MINI_PROGRAM or DEFAULT_PAGE (the default)."""
    mini_program_appid: str | None = Field(default=None, min_length=1)
    """Required when jump_target is MINI_PROGRAM."""
    mini_program_path: str | None = Field(default=None, min_length=1)
    """Required when jump_target is MINI_PROGRAM."""


class FavorFixedNormalCoupon(Strict):
    coupon_amount: Annotated[
        int,
        Review(money=True, order=5),
        Detail("stock_use_rule.fixed_normal_coupon.coupon_amount"),
    ] = Field(ge=0, le=UINT64_MAX)
    """面额 in fen."""
    transaction_minimum: Annotated[
        int,
        Review(money=True, order=6),
        Detail("stock_use_rule.fixed_normal_coupon.transaction_minimum"),
    ] = Field(ge=0, le=UINT64_MAX)
    """门槛 in fen: must be greater than coupon_amount."""


class FavorDiscountCoupon(Strict):
    discount_amount_max: int = Field(ge=1, le=UINT64_MAX)
    """最高折扣金额 in fen."""
    discount_percent: int = Field(ge=1, le=99)
    """折扣百分比: 88 means pay 88%."""
    transaction_minimum: int = Field(ge=0, le=UINT64_MAX)
    """门槛 in fen."""


class FavorExchangeCoupon(Strict):
    exchange_price: int = Field(ge=0, le=UINT64_MAX)
    """单品换购价 in fen."""
    transaction_minimum: int = Field(ge=0, le=UINT64_MAX)
    """消费门槛 in fen."""


class FavorLimitCard(Strict):
    name: str | None = Field(default=None, min_length=1)
    """银行卡名称, at most 4 Chinese characters."""
    bin: list[str] | None = None
    """Card BINs, 1 to 10, each 6 to 9 characters."""


class FavorFixAvailableTime(Strict):
    available_week_day: list[int] | None = None
    """Weekdays, 0 = Sunday."""
    begin_time: int | None = Field(default=None, ge=0, le=86400)
    """Seconds after midnight."""
    end_time: int | None = Field(default=None, ge=0, le=86400)
    """Seconds after midnight."""


class FavorCouponAvailableTime(Strict):
    fix_available_time: FavorFixAvailableTime | None = None
    second_day_available: bool | None = None
    available_time_after_receive: int | None = Field(default=None, ge=1)
    """Minutes after the coupon is received."""


class FavorCouponUseRule(Strict):
    fixed_normal_coupon: FavorFixedNormalCoupon | None = None
    """Required when stock_type is NORMAL."""
    discount_coupon: FavorDiscountCoupon | None = None
    exchange_coupon: FavorExchangeCoupon | None = None
    goods_tag: Annotated[list[str] | None, Detail("stock_use_rule.goods_tag")] = None
    """订单优惠标记: at most 50; the order must carry the same tag."""
    limit_pay: list[str] | None = None
    """指定支付方式: exactly one entry, e.g. ICBC_CREDIT (零钱 = CFT)."""
    limit_card: FavorLimitCard | None = None
    """Takes effect only together with limit_pay."""
    trade_type: Annotated[list[TradeType] | None, Detail("stock_use_rule.trade_type")] = None
    """支付方式; leave it out for no restriction."""
    combine_use: Annotated[bool | None, Detail("stock_use_rule.combine_use")] = None
    """Whether the coupon stacks with others; left out means it may."""
    available_items: Annotated[list[str] | None, Modify(nonempty=True)] = None
    """SKU codes, 1 to 50. Changed in place (modify-goods-id); at least one must remain."""
    unavailable_items: list[str] | None = None
    """Not open yet per the docs."""
    available_merchants: list[str] | None = None
    """可核销商户号, 1 to 50."""
    coupon_available_time: FavorCouponAvailableTime | None = None


class FavorSpec(Strict):
    """The create body of a 代金券 stock, without out_request_no (the tool derives it)."""

    stock_name: Annotated[str, Review(order=1), Detail()] = Field(min_length=1)
    """批次名称: at most 9 Chinese characters or 20 letters; no _ , ; |"""
    comment: str | None = Field(default=None, min_length=1, max_length=60)
    """批次备注, visible only to the creating merchant; at most 60 characters."""
    belong_merchant: str = Field(min_length=1, max_length=20)
    """归属商户号: must be the creating merchant (other values are not supported)."""
    available_begin_time: Annotated[Rfc3339, Review(order=3), Detail()]
    """RFC3339 with offset. Not in the past and at most 365 days ahead at creation."""
    available_end_time: Annotated[Rfc3339, Review(order=4), Detail()]
    """RFC3339 with offset; after the begin time, at most 90 days later."""
    stock_use_rule: FavorStockUseRule
    pattern_info: FavorPatternInfo | None = None
    coupon_use_rule: FavorCouponUseRule
    no_cash: Annotated[bool, Detail()]
    """true = 免充值 (no pre-funding); false = 预充值 (budget locked at activation)."""
    stock_type: Annotated[FavorStockType, Review(order=2), Detail()]
    """The docs support NORMAL (固定面额满减券) only."""
    ext_info: str | None = Field(default=None, min_length=1, max_length=128)
    """A JSON string; not open yet per the docs."""
