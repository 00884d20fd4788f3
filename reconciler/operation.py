"""The requests apply sends, as data: one `OpType` shared by the plan, the state and the kinds.

An `Operation` carries everything apply needs to send it and record it: the type, the request
number, the exact body, the generation the number was derived with, and the create body as it
will stand once the request succeeded. The applier sends and records; it never re-derives.
Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class OpType(StrEnum):
    CREATE = "create"
    """Create the stock under its derived out_request_no."""
    MODIFY = "modify"
    """Change fields in place (busifavor PATCH /stocks/{stock_id})."""
    BUDGET = "budget"
    """Change a budget count (busifavor PATCH /stocks/{stock_id}/budget)."""
    MODIFY_GOODS_ID = "modify_goods_id"
    """Change a favor stock's available_items in place (POST .../stocks/{stock_id}/modify-goods-id)."""
    START = "start"
    """Activate a favor stock (POST .../stocks/{stock_id}/start); 预充值 locks its budget."""
    PAUSE = "pause"
    """Stop issuing from a running favor stock (POST .../pause)."""
    RESTART = "restart"
    """Issue again from a paused favor stock (POST .../restart)."""
    STOP = "stop"
    """End a never-activated favor stock, irreversibly (POST .../stop)."""
    UPLOAD_IMAGE = "upload_image"
    """Upload an image file (POST /v3/marketing/favor/media/image-upload) for the media URL
    the create or modify after it uses. `request_no` is the file's sha256 (the upload takes no
    number); `body` names the file and what it is."""
    UPLOAD_CODES = "upload_codes"
    """Upload one batch (1-200) of a 商家券 code pool (POST .../couponcodes); see codes.py."""
    CALLBACK = "callback"
    """Set a merchant's notify URL for a kind (POST /v3/marketing/{kind}/callbacks): a
    per-merchant setting, not a stock; see callbacks.py."""


TRANSITIONS = frozenset({OpType.START, OpType.PAUSE, OpType.RESTART, OpType.STOP})
"""Lifecycle calls: their request numbers are not sent (the API takes none); they are derived
like the others so that a pending intent in the state names the call."""


@dataclass(frozen=True)
class CreateResult:
    """What a stock create returns: the new stock's id and WeChat Pay's creation time."""

    stock_id: str
    create_time: str


@dataclass(frozen=True)
class Operation:
    """One request. `body` is sent byte for byte; `request_no` is the number inside it;
    `after` is the whole create body as WeChat Pay holds it once this request succeeded (for a
    create, the body itself without the number's effect on anything else)."""

    type: OpType
    request_no: str
    body: dict[str, Any]
    generation: int
    after: dict[str, Any]
    stock_id: str | None = None
    """None for a create, and for a transition that follows a create in the same change (the
    applier takes the stock_id the create returns)."""

    def to_data(self) -> dict[str, Any]:
        return {
            "type": self.type.value,
            "request_no": self.request_no,
            "body": self.body,
            "generation": self.generation,
            "after": self.after,
            "stock_id": self.stock_id,
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Operation:
        return cls(
            OpType(data["type"]),
            str(data["request_no"]),
            dict(data["body"]),
            int(data["generation"]),
            dict(data["after"]),
            data["stock_id"],
        )
