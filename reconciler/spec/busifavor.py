"""商家券 (busifavor) create body: POST /v3/marketing/busifavor/stocks.

Field names and nesting are exactly the API's (including its spelling `irregulary_avaliable_time`).
Shape and simple bounds live here; cross-field rules live in `rules_busifavor.py`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reconciler.spec.common import Rfc3339, Strict
from reconciler.spec.images import BUSIFAVOR_COUPON_IMAGE, FINDER_COVER, LOGO, ImageRef, ImageUrl
from reconciler.spec.traits import MODIFY, REVIEW, REVIEW_MONEY, Budget, Modify

BusifavorStockType = Literal["NORMAL", "DISCOUNT", "EXCHANGE"]
UseMethod = Literal["OFF_LINE", "MINI_PROGRAMS", "PAYMENT_CODE", "SELF_CONSUME"]
CouponCodeMode = Literal["WECHATPAY_MODE", "MERCHANT_API", "MERCHANT_UPLOAD"]
CodeDisplayMode = Literal["NOT_SHOW", "BARCODE", "QRCODE"]

AMOUNT_MAX = 10_000_000
COUNT_MAX = 1_000_000_000


class BusifavorTimeRange(Strict):
    begin_time: int = Field(ge=0, le=86400)
    """Seconds after midnight."""
    end_time: int = Field(ge=0, le=86400)
    """Seconds after midnight."""


class BusifavorAvailableWeek(Strict):
    week_day: list[int] | None = None
    """Weekdays, 0 = Sunday."""
    available_day_time: list[BusifavorTimeRange] | None = None
    """At most 2 time ranges within each day."""


class BusifavorIrregularTime(Strict):
    begin_time: Rfc3339
    end_time: Rfc3339


class BusifavorCouponAvailableTime(Strict):
    available_begin_time: Annotated[Rfc3339, REVIEW]
    """RFC3339 with offset."""
    available_end_time: Annotated[Rfc3339, REVIEW]
    """RFC3339 with offset; the validity period is at most one year."""
    available_day_after_receive: int | None = Field(default=None, ge=1)
    """Valid for N days after taking effect."""
    available_week: BusifavorAvailableWeek | None = None
    irregulary_avaliable_time: list[BusifavorIrregularTime] | None = None
    """The API's own spelling."""
    wait_days_after_receive: int | None = Field(default=None, ge=0, le=30)
    """Days before the coupon takes effect; needs available_day_after_receive."""
    available_second_after_receive: int | None = Field(default=None, ge=1)


class BusifavorFixedNormalCoupon(Strict):
    discount_amount: Annotated[int, REVIEW_MONEY] = Field(ge=1, le=AMOUNT_MAX)
    """优惠金额 in fen (note: not favor's coupon_amount)."""
    transaction_minimum: Annotated[int, REVIEW_MONEY] = Field(ge=1, le=AMOUNT_MAX)
    """消费门槛 in fen."""


class BusifavorDiscountCoupon(Strict):
    discount_percent: Annotated[int, REVIEW] = Field(ge=1, le=99)
    """折扣比例: 88 means pay 88%."""
    transaction_minimum: Annotated[int, REVIEW_MONEY] = Field(ge=1, le=AMOUNT_MAX)
    """消费门槛 in fen."""


class BusifavorExchangeCoupon(Strict):
    exchange_price: Annotated[int, REVIEW_MONEY] = Field(ge=0, le=AMOUNT_MAX)
    """单品换购价 in fen."""
    transaction_minimum: Annotated[int, REVIEW_MONEY] = Field(ge=1, le=AMOUNT_MAX)
    """消费门槛 in fen."""


class BusifavorCouponUseRule(Strict):
    coupon_available_time: BusifavorCouponAvailableTime
    fixed_normal_coupon: BusifavorFixedNormalCoupon | None = None
    """For stock_type NORMAL."""
    discount_coupon: BusifavorDiscountCoupon | None = None
    """For stock_type DISCOUNT."""
    exchange_coupon: BusifavorExchangeCoupon | None = None
    """For stock_type EXCHANGE."""
    use_method: Annotated[UseMethod, MODIFY]
    """OFF_LINE, MINI_PROGRAMS, PAYMENT_CODE (SELF_CONSUME is not supported yet)."""
    mini_programs_appid: Annotated[str | None, MODIFY] = Field(default=None, min_length=1)
    """Required with use_method MINI_PROGRAMS."""
    mini_programs_path: Annotated[str | None, MODIFY] = Field(default=None, min_length=1)
    """Required with use_method MINI_PROGRAMS."""


class BusifavorStockSendRule(Strict):
    max_amount: int | None = Field(default=None, ge=1)
    """Not open yet per the docs."""
    max_coupons: Annotated[int | None, Budget("max_coupons"), REVIEW] = Field(
        default=None, ge=1, le=COUNT_MAX
    )
    """发放总上限, 1 to 1,000,000,000 (required by most sources)."""
    max_coupons_per_user: Annotated[int, REVIEW] = Field(ge=1, le=100)
    """单用户领取上限, at most 100."""
    max_amount_by_day: int | None = Field(default=None, ge=1)
    """Not open yet per the docs."""
    max_coupons_by_day: Annotated[int | None, Budget("max_coupons_by_day"), REVIEW] = Field(
        default=None, ge=1, le=COUNT_MAX
    )
    """单天发放上限个数."""
    natural_person_limit: bool | None = None
    prevent_api_abuse: Annotated[bool | None, MODIFY] = None
    transferable: bool | None = None
    """Not open yet per the docs."""
    shareable: bool | None = None
    """Not open yet per the docs."""


class BusifavorMiniProgramsInfo(Strict):
    mini_programs_appid: str = Field(min_length=1)
    mini_programs_path: str = Field(min_length=1)
    entrance_words: str = Field(min_length=1, max_length=5)
    """入口文案, at most 5 characters."""
    guiding_words: str | None = Field(default=None, min_length=1, max_length=6)
    """引导文案, at most 6 characters."""


class BusifavorCustomEntrance(Strict):
    mini_programs_info: Annotated[BusifavorMiniProgramsInfo | None, MODIFY] = None
    appid: Annotated[str | None, MODIFY] = Field(default=None, min_length=1)
    hall_id: Annotated[str | None, MODIFY] = Field(default=None, min_length=1)
    store_id: str | None = Field(default=None, min_length=1)
    code_display_mode: Annotated[CodeDisplayMode | None, MODIFY] = None


class BusifavorFinderInfo(Strict):
    finder_id: str = Field(min_length=1)
    finder_video_id: str = Field(min_length=1)
    finder_video_cover_image_url: Annotated[ImageUrl, ImageRef(FINDER_COVER)]
    """Uploaded image URL, or {file: path} to upload."""


class BusifavorDisplayPatternInfo(Strict):
    description: Annotated[str | None, MODIFY] = Field(default=None, min_length=1, max_length=1000)
    """使用须知, at most 1000 characters."""
    merchant_logo_url: Annotated[ImageUrl | None, ImageRef(LOGO)] = None
    """Uploaded image URL (120×120 px), or {file: path} to upload."""
    merchant_name: str | None = Field(default=None, min_length=1)
    """Taken from the brand by WeChat Pay; not customisable per the docs."""
    background_color: Annotated[str | None, MODIFY] = None
    """Color010 … Color100."""
    coupon_image_url: Annotated[ImageUrl | None, MODIFY, ImageRef(BUSIFAVOR_COUPON_IMAGE)] = None
    """Uploaded image URL, or {file: path} to upload."""
    finder_info: Annotated[BusifavorFinderInfo | None, MODIFY] = None


class BusifavorNotifyConfig(Strict):
    notify_appid: str | None = Field(default=None, min_length=1)


class BusifavorSpec(Strict):
    """The create body of a 商家券 stock, without out_request_no (the tool derives it)."""

    stock_name: Annotated[str, REVIEW] = Field(min_length=1, max_length=21)
    """批次名称, at most 21 characters."""
    belong_merchant: str = Field(min_length=1, max_length=15)
    """批次归属商户号."""
    comment: Annotated[str | None, MODIFY] = Field(default=None, min_length=1, max_length=20)
    """批次备注, at most 20 characters."""
    goods_name: Annotated[str, MODIFY] = Field(min_length=1, max_length=15)
    """适用商品范围, shown in the card pack; at most 15 characters."""
    stock_type: Annotated[BusifavorStockType, REVIEW]
    coupon_use_rule: BusifavorCouponUseRule
    stock_send_rule: BusifavorStockSendRule
    custom_entrance: BusifavorCustomEntrance | None = None
    display_pattern_info: BusifavorDisplayPatternInfo | None = None
    coupon_code_mode: CouponCodeMode
    notify_config: Annotated[BusifavorNotifyConfig | None, MODIFY] = None
    subsidy: Annotated[bool | None, Modify(only_to=(True,))] = None
    """Not open yet per the docs; default false."""
