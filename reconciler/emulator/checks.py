"""Reading a JSON body the way the server does: typed, and every failure names a JSON pointer.

The first failure ends the request with 400 PARAM_ERROR (`detail.field` is the pointer,
`detail.location` is `body`), as the real API reports one problem at a time.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import datetime
from typing import Any, NoReturn, TypeGuard

from reconciler.emulator.failures import param_error
from reconciler.emulator.timefmt import parse_time

REQUEST_NO = re.compile(r"[A-Za-z0-9|_*\-]+")
"""Request numbers: letters, digits, `|`, `_`, `*` and `-` (reference §1.1 out_request_no)."""


def pointer_to(pointer: str, key: str | int) -> str:
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{token}"


def fail(pointer: str, message: str, value: object = None) -> NoReturn:
    raise param_error(pointer, message, value=value)


def _type_error(pointer: str, expected: str) -> NoReturn:
    fail(pointer, f"输入源“/body{pointer}”映射到的字段类型规则校验失败,应为{expected}")


def _is_int(value: object) -> TypeGuard[int]:
    # JSON true/false decode to bool, which Python counts as int.
    return isinstance(value, int) and not isinstance(value, bool)


class Obj:
    """Typed reads from one JSON object found at `pointer` (the root is the empty pointer)."""

    def __init__(self, data: dict[str, Any], pointer: str = "") -> None:
        self.data = data
        self.pointer = pointer

    @classmethod
    def root(cls, value: object) -> Obj:
        if not isinstance(value, dict):
            fail("", "请求体必须是JSON对象")
        return cls(value)

    def at(self, key: str | int) -> str:
        return pointer_to(self.pointer, key)

    def has(self, key: str) -> bool:
        """True when `key` is present and not null (null counts as absent, as for Go clients)."""
        return self.data.get(key) is not None

    def only(self, allowed: Collection[str], message: str = "无法识别的字段") -> None:
        for key in self.data:
            if key not in allowed:
                fail(self.at(key), f"{message}: {key}")

    def _get(self, key: str, required: bool) -> object:
        value = self.data.get(key)
        if value is None and required:
            fail(self.at(key), f"输入源“/body{self.at(key)}”映射到的字段必填性规则校验失败")
        return value

    def obj(self, key: str, *, required: bool) -> Obj | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, dict):
            _type_error(self.at(key), "对象")
        return Obj(value, self.at(key))

    def string(
        self,
        key: str,
        *,
        required: bool,
        max_len: int | None = None,
        pattern: re.Pattern[str] | None = None,
    ) -> str | None:
        value = self._get(key, required)
        if value is None:
            return None
        return _check_string(self.at(key), value, max_len, pattern)

    def integer(
        self, key: str, *, required: bool, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not _is_int(value):
            _type_error(self.at(key), "整数")
        _check_range(self.at(key), value, lo, hi)
        return value

    def boolean(self, key: str, *, required: bool) -> bool | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, bool):
            _type_error(self.at(key), "布尔值")
        return value

    def enum(self, key: str, values: Collection[str], *, required: bool) -> str | None:
        value = self.string(key, required=required)
        if value is not None and value not in values:
            fail(self.at(key), f"{key}取值不在枚举范围内,可选: {', '.join(sorted(values))}", value)
        return value

    def time(self, key: str, *, required: bool) -> datetime | None:
        value = self.string(key, required=required, max_len=32)
        if value is None:
            return None
        moment = parse_time(value)
        if moment is None:
            fail(
                self.at(key), "输入时间格式错误,应为RFC3339格式,如2015-05-20T13:29:35+08:00", value
            )
        return moment

    def _array(
        self, key: str, required: bool, min_items: int, max_items: int | None
    ) -> list[Any] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list):
            _type_error(self.at(key), "数组")
        if len(value) < min_items or (max_items is not None and len(value) > max_items):
            upper = "" if max_items is None else str(max_items)
            fail(self.at(key), f"{key}条目个数限制为[{min_items},{upper}]", len(value))
        return value

    def strings(
        self,
        key: str,
        *,
        required: bool,
        min_items: int = 1,
        max_items: int | None = None,
        max_len: int | None = None,
        pattern: re.Pattern[str] | None = None,
        values: Collection[str] | None = None,
    ) -> list[str] | None:
        items = self._array(key, required, min_items, max_items)
        if items is None:
            return None
        out = []
        for i, item in enumerate(items):
            at = pointer_to(self.at(key), i)
            text = _check_string(at, item, max_len, pattern)
            if values is not None and text not in values:
                fail(at, f"{key}取值不在枚举范围内,可选: {', '.join(sorted(values))}", text)
            out.append(text)
        return out

    def integers(
        self,
        key: str,
        *,
        required: bool,
        min_items: int = 1,
        max_items: int | None = None,
        lo: int | None = None,
        hi: int | None = None,
    ) -> list[int] | None:
        items = self._array(key, required, min_items, max_items)
        if items is None:
            return None
        for i, item in enumerate(items):
            at = pointer_to(self.at(key), i)
            if not _is_int(item):
                _type_error(at, "整数")
            _check_range(at, item, lo, hi)
        return items

    def objects(
        self, key: str, *, required: bool, min_items: int = 1, max_items: int | None = None
    ) -> list[Obj] | None:
        items = self._array(key, required, min_items, max_items)
        if items is None:
            return None
        out = []
        for i, item in enumerate(items):
            at = pointer_to(self.at(key), i)
            if not isinstance(item, dict):
                _type_error(at, "对象")
            out.append(Obj(item, at))
        return out


def _check_string(
    pointer: str, value: object, max_len: int | None, pattern: re.Pattern[str] | None
) -> str:
    if not isinstance(value, str):
        _type_error(pointer, "字符串")
    if not value:
        fail(pointer, f"输入源“/body{pointer}”映射到的字段不能为空字符串")
    if max_len is not None and len(value) > max_len:
        fail(pointer, f"字段长度超过限制,最多{max_len}个字符", value)
    if pattern is not None and pattern.fullmatch(value) is None:
        fail(pointer, "字段格式不正确,包含不允许的字符", value)
    return value


def _check_range(pointer: str, value: int, lo: int | None, hi: int | None) -> None:
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        low = "" if lo is None else str(lo)
        high = "" if hi is None else str(hi)
        fail(pointer, f"字段取值超出范围[{low},{high}]", value)
