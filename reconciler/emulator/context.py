"""What a route sees of one authenticated request, and the helpers every route shares."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from reconciler.emulator.checks import pointer_to
from reconciler.emulator.failures import ApiFailure, invalid_request, param_error, stock_not_found
from reconciler.emulator.settings import EmulatorSettings
from reconciler.emulator.store import KindName, RequestRecord, Store, StoredStock

UNSUPPORTED_CHARACTER = "请求参数包含不支持的字符,仅支持1-3字节的UTF-8字符(不支持emoji等)"
REUSED_DIFFERENT = "单号已存在但信息不一致,请查单后比较确认"
NESTED_TOO_DEEP = "请求体JSON嵌套层数过多"
MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in a body (real bodies nest 3-4 levels).
Deeper is 400 PARAM_ERROR: past about 1,000 levels Python's parser (and every recursive walk
of the value) would overflow the stack and the request would fail without an answer."""


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None


@dataclass
class RequestContext:
    """One authenticated request: caller, emulator time, store, settings and the commit hook."""

    request: httpx.Request
    body: bytes
    mchid: str
    now: float
    params: dict[str, str]
    store: Store
    settings: EmulatorSettings
    commit: Callable[[], None]

    def json_body(self) -> object:
        """The parsed body; refuses non-JSON, NaN, and characters beyond the 3-byte UTF-8 range."""
        content_type = self.request.headers.get("Content-Type", "")
        if not content_type.lower().startswith("application/json"):
            raise invalid_request("Http头Content-Type值应为application/json")
        try:
            value = json.loads(self.body.decode("utf-8"), parse_constant=_no_constant)
        except RecursionError:
            raise param_error("", NESTED_TOO_DEEP) from None
        except (UnicodeDecodeError, ValueError):
            raise param_error("", "请求体不是合法的UTF-8编码的JSON") from None
        if _deeper_than(value, MAX_JSON_DEPTH):
            raise param_error("", NESTED_TOO_DEEP)
        bad = _wide_character_at(value, "")
        if bad is not None:
            raise param_error(bad, UNSUPPORTED_CHARACTER)
        return value

    def query(self) -> dict[str, str]:
        """Query parameters, percent-decoded (and `+` read as a space, as form decoding does)."""
        pairs = parse_qsl(self.request.url.query.decode("ascii"), keep_blank_values=True)
        out: dict[str, str] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out

    def stock(self, kind: KindName) -> StoredStock:
        stock = self.store.stocks.get(self.params["stock_id"])
        if stock is None or stock.kind != kind:
            raise stock_not_found()
        return stock

    # --- request numbers (out_request_no and friends) ---------------------------------------

    def replay(self, scope: str, number: object, extra: str = "") -> Reply | None:
        """The original answer for a reused request number, None for a new one.

        Checked before any other rule, so a retry of a create whose begin time has passed
        meanwhile still gets its stock back (idempotent mode).
        """
        if not isinstance(number, str):
            return None
        record = self.store.numbers(self.mchid, scope).get(number)
        if record is None:
            return None
        if self.settings.out_request_no_reuse == "reject":
            message = "批次已存在" if scope.endswith(".create") else "请求单号已被使用"
            raise ApiFailure(400, "RESOURCE_ALREADY_EXISTS", message)
        digest_json, digest_bytes = self._digests(extra)
        same = (
            record.digest_json == digest_json
            if self.settings.reuse_compare == "json"
            else record.digest_bytes == digest_bytes
        )
        if not same:
            raise invalid_request(REUSED_DIFFERENT)
        return Reply(200 if record.response is not None else 204, record.response)

    def remember(
        self,
        scope: str,
        number: str,
        stock_id: str,
        response: dict[str, Any] | None,
        extra: str = "",
    ) -> None:
        digest_json, digest_bytes = self._digests(extra)
        self.store.numbers(self.mchid, scope)[number] = RequestRecord(
            digest_json, digest_bytes, stock_id, response
        )

    def _digests(self, extra: str) -> tuple[str, str]:
        value = json.loads(self.body)
        canonical = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
        prefix = extra.encode() + b"\n"
        return (
            hashlib.sha256(prefix + canonical.encode()).hexdigest(),
            hashlib.sha256(prefix + self.body).hexdigest(),
        )


def _deeper_than(value: object, limit: int) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels (no recursion)."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _wide_character_at(value: object, pointer: str) -> str | None:
    """The pointer of the first string (or key) holding a 4-byte UTF-8 character or a surrogate."""
    if isinstance(value, str):
        return (
            pointer
            if any(ord(ch) > 0xFFFF or 0xD800 <= ord(ch) <= 0xDFFF for ch in value)
            else None
        )
    if isinstance(value, dict):
        for key, item in value.items():
            at = pointer_to(pointer, key)
            found = _wide_character_at(key, at) or _wide_character_at(item, at)
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _wide_character_at(item, pointer_to(pointer, i))
            if found is not None:
                return found
    return None
