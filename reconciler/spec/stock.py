"""The stock file: identity, kind, merchant and the API create body (`spec`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from reconciler.spec.busifavor import BusifavorSpec
from reconciler.spec.common import Strict
from reconciler.spec.favor import FavorSpec

ID_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
MCHID_PATTERN = r"^[0-9]{5,32}$"

PATTERN_HELP = {ID_PATTERN: "pattern.id", MCHID_PATTERN: "pattern.mchid"}
"""The message (`reconciler.diagnostic_messages`) that says what a value matching each
pattern looks like (a regex helps nobody)."""

StockId = Annotated[str, Field(pattern=ID_PATTERN)]
"""A slug: lower-case letters, digits and inner hyphens, 1 to 64 characters."""
Mchid = Annotated[str, Field(pattern=MCHID_PATTERN)]


class _StockBase(Strict):
    id: StockId
    """Stable identity of the stock, unique across the repository. Renaming the file keeps it;
    changing it means a different stock."""
    merchant: Mchid
    """The creating merchant id (mchid) whose credentials create the stock."""
    generation: int = Field(default=0, ge=0, le=999)
    """Part of the derived out_request_no. Leave at 0; raise it only if a number must never
    be reused again (see the README)."""


FavorStatus = Literal["running", "paused", "created", "stopped"]


class FavorStock(_StockBase):
    """A 代金券 stock (POST /v3/marketing/favor/coupon-stocks)."""

    kind: Literal["favor"]
    status: FavorStatus = "running"
    """The stock's lifecycle as desired state (not part of the create body). running: activate
    after the create (预充值 locks max_amount from the balance then), restart if paused;
    paused: pause a running stock; created: create only, never activate; stopped: end a stock
    that was never activated (irreversible)."""
    spec: FavorSpec


class CodesFile(Strict):
    """Where a code pool is kept: a text file, one code per line (reconciler.codes)."""

    file: str = Field(min_length=1, max_length=1024)
    """Relative to the stock file's folder."""


class BusifavorStock(_StockBase):
    """A 商家券 stock (POST /v3/marketing/busifavor/stocks)."""

    kind: Literal["busifavor"]
    spec: BusifavorSpec
    codes: CodesFile | None = None
    """The code pool of a `coupon_code_mode: MERCHANT_UPLOAD` stock; apply uploads it."""


Stock = FavorStock | BusifavorStock
