"""How a plan shows its image uploads: `upload logo.png (34 KB, 120×120)`. Pure."""

from __future__ import annotations

from reconciler.i18n import Lang
from reconciler.operation import OpType
from reconciler.plan import ACTING, Change
from reconciler.spec.images import size_text


def upload_lines(change: Change, lang: Lang = "en") -> list[str]:
    """One line per image file apply uploads for this change (none when it does not act)."""
    if change.action not in ACTING:
        return []
    out = []
    for op in change.operations:
        if op.type is OpType.UPLOAD_IMAGE:
            b = op.body
            out.append(
                f"{'上传' if lang == 'zh' else 'upload'} {b.get('filename')} ({size_text(int(b.get('size', 0)))}, "
                f"{b.get('width')}×{b.get('height')})"
            )
    return out
