"""Planning image files (pure): a stock whose image fields name files, as the planner sees it.

Each `{file: path}` becomes the media URL the state maps its content to for the stock's
merchant, or, when the content was never uploaded for that merchant, the token
`media:sha256:<hex>` plus an upload operation. The rest of the planner compares and sends
plain strings, so a changed image is an ordinary field change: a modify where the kind allows
one (商家券 coupon image), immutable where it does not (代金券).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel

from reconciler.desired import DesiredStock
from reconciler.operation import Operation, OpType
from reconciler.spec.images import ImageFacts, file_key, token, tokens_in


@dataclass(frozen=True)
class Resolved:
    """A stock with its image files replaced by URLs or tokens, and the uploads it may need."""

    loaded: DesiredStock
    uploads: tuple[Operation, ...] = ()
    missing: str = ""
    """An image file the catalog has no facts for (deleted or unreadable since validation)."""


def upload_operation(facts: ImageFacts, generation: int) -> Operation:
    body = {
        "file": facts.path,
        "filename": facts.filename,
        "sha256": facts.sha256,
        "size": facts.size,
        "format": facts.format,
        "width": facts.width,
        "height": facts.height,
    }
    return Operation(OpType.UPLOAD_IMAGE, facts.sha256, body, generation, {})


def resolve(
    loaded: DesiredStock, catalog: Mapping[str, ImageFacts], urls: Mapping[str, str]
) -> Resolved:
    """`loaded` as the planner compares it; `urls` is the merchant's sha256 -> media URL."""
    stock: BaseModel = loaded.stock
    uploads: list[Operation] = []
    found = loaded.images
    if not found:
        return Resolved(loaded)
    for path, _, ref in found:
        key = file_key(loaded.file, ref.file)
        facts = catalog.get(key) if key is not None else None
        if facts is None:
            return Resolved(loaded, missing=ref.file)
        url = urls.get(facts.sha256)
        if url is None:
            url = token(facts.sha256)
            if all(u.request_no != facts.sha256 for u in uploads):
                uploads.append(upload_operation(facts, loaded.stock.generation))
        stock = _set(stock, ("spec", *path.split(".")), url)
    return Resolved(replace(loaded, stock=stock), tuple(uploads))  # type: ignore[arg-type]


def with_uploads(
    operations: Sequence[Operation], uploads: Sequence[Operation]
) -> tuple[Operation, ...]:
    """The uploads whose content the operations' bodies use, first, then the operations."""
    used: list[str] = []
    for op in operations:
        for sha in tokens_in(op.body):
            if sha not in used:
                used.append(sha)
    needed = [u for u in uploads if u.request_no in used]
    return (*needed, *operations)


def _set(model: BaseModel, path: tuple[str, ...], value: Any) -> BaseModel:
    if len(path) == 1:
        return model.model_copy(update={path[0]: value})
    inner = getattr(model, path[0])
    return model.model_copy(update={path[0]: _set(inner, path[1:], value)})
