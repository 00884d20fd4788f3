"""Stable identities: stock id slugs, request numbers and body digests.

Everything here is pure and deterministic. The request numbers are the idempotency keys WeChat
Pay sees, so **the output of `request_no` for a given input must never change**: a different
number for the same stock makes the next `apply` create a second stock (and spend its budget
twice). The golden values in `tests/test_ids.py` pin the format; changing them is a breaking
change that needs a new `generation` scheme, never an edit of this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = [
    "KIND_CODES",
    "PURPOSE_CODES",
    "REQUEST_NO_MAX_LEN",
    "REQUEST_NO_PATTERN",
    "SLUG_PATTERN",
    "SLUG_RE",
    "body_digest",
    "canonical_json",
    "check_slug",
    "is_valid_request_no",
    "is_valid_slug",
    "out_request_no",
    "update_request_no",
]

# --- stock id slugs -------------------------------------------------------------------------

SLUG_PATTERN: Final = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
"""The rule for a stock's `id`: 1 to 64 characters, lowercase ASCII letters, digits and hyphens;
it starts and ends with a letter or digit (so `-` is only ever inside). The id is the stable
identity of a stock in this repository (its state key, part of its request numbers), so it is
deliberately plain: safe in file names, URLs, shell arguments and request numbers."""

SLUG_RE: Final = re.compile(SLUG_PATTERN)
# `$` also matches before a trailing "\n"; match with fullmatch so "abc\n" is refused.
_SLUG_FULL: Final = re.compile(SLUG_PATTERN.removeprefix("^").removesuffix("$"))
_SLUG_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def is_valid_slug(value: str) -> bool:
    """True when `value` follows `SLUG_PATTERN` exactly (a trailing newline is not allowed)."""
    return _SLUG_FULL.fullmatch(value) is not None


def check_slug(value: str) -> str:
    """Return `value` if it is a valid stock id, else raise ValueError saying what is wrong.

    Usable as a pydantic `AfterValidator`; the message names the first rule that fails.
    """
    if is_valid_slug(value):
        return value
    if not value:
        problem = "it is empty"
    elif len(value) > 64:
        problem = f"it has {len(value)} characters (at most 64)"
    elif bad := sorted({c for c in value if c not in _SLUG_CHARS}):
        problem = "it contains " + ", ".join(repr(c) for c in bad)
    else:
        problem = "it starts or ends with '-'"
    raise ValueError(
        f"invalid stock id {value!r}: {problem}; an id is 1-64 lowercase letters, digits "
        "and inner hyphens, e.g. 'spring-sale-2026'"
    )


# --- request numbers ------------------------------------------------------------------------

REQUEST_NO_MAX_LEN: Final = 128
REQUEST_NO_PATTERN: Final = r"^[A-Za-z0-9|_*-]{1,128}$"
"""What WeChat Pay accepts in `out_request_no` / `modify_budget_request_no`: letters, digits and
`|`, `_`, `*`, `-`, at most 128 characters (stock API notes, §1.1 and §2.4)."""
_REQUEST_NO_FULL: Final = re.compile(r"[A-Za-z0-9|_*-]{1,128}")

KIND_CODES: Final[Mapping[str, str]] = {"favor": "F", "busifavor": "B"}
"""One letter per stock kind in the readable part. A new kind needs a new, unused letter."""

PURPOSE_CODES: Final[Mapping[str, str]] = {
    "create": "C",
    "modify": "M",
    "budget": "Q",
    "modify_goods_id": "G",
    "start": "A",
    "pause": "P",
    "restart": "R",
    "stop": "S",
    "upload_codes": "U",
    "callback": "N",
}
"""One letter per request purpose: the create call, busifavor modify (`out_request_no` of the
PATCH) and busifavor budget (`modify_budget_request_no`, Q for quota); favor modify-goods-id
(G) and the lifecycle calls: start (A, activate), pause, restart and stop. The favor calls take
no request number; theirs are derived the same way so the state's pending intent names them."""

MAX_GENERATION: Final = 999_999
_DOMAIN: Final = "reconciler/request-no/v1"
_DIGEST_HEX: Final = 32  # 128 bits of sha256: a collision needs ~2**64 numbers per merchant.
_MERCHANT_KEEP: Final = 32
_NOT_MERCHANT: Final = re.compile(r"[^A-Za-z0-9]")
_NOT_FRAGMENT: Final = re.compile(r"[^A-Za-z0-9-]")


def is_valid_request_no(value: str) -> bool:
    """True when WeChat Pay would accept `value` as a request number (charset and length)."""
    return _REQUEST_NO_FULL.fullmatch(value) is not None


def out_request_no(
    merchant: str,
    kind: str,
    stock_id: str,
    generation: int = 0,
    purpose: str = "create",
    change_digest: str | None = None,
) -> str:
    """The deterministic request number for one request about one stock.

    Format: ``<merchant>_<K><P><generation>_<id fragment>_<digest>``, for example
    ``1900000001_BC0_spring-sale-2026_<32 hex digits>``, where

    - ``merchant`` is the mchid (only ASCII letters and digits kept, at most 32 of them);
    - ``K`` is the kind code (`KIND_CODES`: F favor, B busifavor), ``P`` the purpose code
      (`PURPOSE_CODES`: C create, M modify, Q budget) and ``generation`` is in decimal;
    - the id fragment is the stock id cut to fit in 128 characters (characters outside
      ``A-Za-z0-9-`` dropped); it is for people reading the merchant platform only;
    - the digest is the first 32 hex digits of sha256 over an unambiguous encoding (a JSON
      array, with a version tag) of *all* inputs, unabridged. It alone carries uniqueness, so
      two ids that share a long prefix, or differ only in dropped characters, never share a
      number.

    Only ``A-Za-z0-9_-`` appear and the length is at most 128, the documented limits.

    Why not the documented hint "商户id+日期+流水号" (merchant id + date + serial number): a
    date, or a counter, makes the number depend on *when* or *how often* we asked. A create
    whose response was lost must be retried with the same number on the next run, maybe the
    next day or from another CI runner; with a date in it the retry would be a new request and
    WeChat Pay could create a second stock. The number is therefore a function of the stock's
    identity only. The merchant prefix from the hint is kept; the format itself is a hint, the
    charset and length are the rules.

    ``generation`` starts at 0 and is raised only to deliberately create a *new* stock for the
    same id (the old one is never reused). ``purpose`` is "create" here; update numbers also
    need ``change_digest`` (see `update_request_no`).

    Raises ValueError for an empty merchant or stock id, an unknown kind or purpose, a
    generation outside 0..999999, or a change digest given for "create" / missing for updates.
    """
    if not merchant:
        raise ValueError("merchant (mchid) must not be empty")
    if not stock_id:
        raise ValueError("stock id must not be empty")
    if kind not in KIND_CODES:
        raise ValueError(f"unknown stock kind {kind!r}; known: {', '.join(sorted(KIND_CODES))}")
    if purpose not in PURPOSE_CODES:
        raise ValueError(f"unknown purpose {purpose!r}; known: {', '.join(sorted(PURPOSE_CODES))}")
    if type(generation) is not int or not 0 <= generation <= MAX_GENERATION:
        raise ValueError(f"generation must be an int in 0..{MAX_GENERATION}, got {generation!r}")
    if purpose == "create" and change_digest is not None:
        raise ValueError("a create number takes no change digest")
    if purpose != "create" and not change_digest:
        # Without it every later update would reuse the first update's number.
        raise ValueError(f"a {purpose!r} number needs the digest of the change being made")

    encoded = json.dumps(
        [_DOMAIN, merchant, kind, stock_id, generation, purpose, change_digest],
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(encoded).hexdigest()[:_DIGEST_HEX]

    head = (
        f"{_NOT_MERCHANT.sub('', merchant)[:_MERCHANT_KEEP]}_"
        f"{KIND_CODES[kind]}{PURPOSE_CODES[purpose]}{generation}"
    )
    room = REQUEST_NO_MAX_LEN - len(head) - len(digest) - 2
    fragment = _NOT_FRAGMENT.sub("", stock_id)[:room].strip("-")
    if not fragment:
        return f"{head}_{digest}"
    return f"{head}_{fragment}_{digest}"


def update_request_no(
    merchant: str,
    kind: str,
    stock_id: str,
    purpose: str,
    change_digest: str,
    generation: int = 0,
) -> str:
    """The request number for an update ("modify" or "budget") of an existing stock.

    Derived from the stock's identity plus the purpose and `change_digest` (use `body_digest`
    of the PATCH body without its request-number field). Retrying the same change reuses the
    number; a different later change gets a new one. Reapplying a change identical to an
    earlier one also reuses its number; callers that need a fresh number for that case must
    put something distinguishing (e.g. the current remote values, as the budget API's
    `current_max_coupons` does) into the digested change.
    """
    if purpose == "create":
        raise ValueError("use out_request_no for the create number")
    return out_request_no(merchant, kind, stock_id, generation, purpose, change_digest)


# --- body digests ---------------------------------------------------------------------------


def canonical_json(value: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON with sorted keys, no whitespace and non-ASCII kept as is (NaN refused).

    The same value always gives the same bytes; note that 1 and 1.0 are different JSON.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def body_digest(body: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` of `canonical_json(body)`: the identity of a request body."""
    return "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()
