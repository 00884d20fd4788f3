"""Error answers as values: the routes raise them, the app signs and sends them."""

from __future__ import annotations

from typing import Any

SYSTEM_BUSY = "系统繁忙,请稍后重试"
STOCK_NOT_FOUND = "批次不存在"
BAD_MERCHANT = "非法的商户号"
NO_PERMISSION = "无权限"


class ApiFailure(Exception):
    """A WeChat Pay error answer: HTTP status, `code`, `message` and an optional `detail`."""

    def __init__(
        self, status: int, code: str, message: str, detail: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def param_error(
    field: str, message: str, *, location: str = "body", value: object = None
) -> ApiFailure:
    """400 PARAM_ERROR; `field` is a JSON pointer for the body, a parameter name otherwise."""
    detail: dict[str, Any] = {"field": field, "location": location, "issue": message}
    if value is not None:
        detail["value"] = value
    return ApiFailure(400, "PARAM_ERROR", message, detail)


def invalid_request(message: str, detail: dict[str, Any] | None = None) -> ApiFailure:
    return ApiFailure(400, "INVALID_REQUEST", message, detail)


def stock_not_found() -> ApiFailure:
    return ApiFailure(404, "RESOURCE_NOT_EXISTS", STOCK_NOT_FOUND)


def system_error() -> ApiFailure:
    return ApiFailure(500, "SYSTEM_ERROR", SYSTEM_BUSY)
