"""The plan as a versioned JSON document (see docs/plan-json.md). Renderers format; they never
decide: this is `Plan.to_data()` plus the plan's own checksum, pretty-printed."""

from __future__ import annotations

import json

from reconciler.plan import Plan


def render_json(plan: Plan) -> str:
    """Sorted keys, two-space indent, UTF-8 text kept as is, one trailing newline.

    `checksum` is `Plan.checksum()`: sha256 over the compact canonical JSON of every other field,
    so a consumer can tell a saved plan was edited, and `Plan.from_data` reads the document back
    (it ignores `checksum`).
    """
    doc = plan.to_data()
    doc["checksum"] = plan.checksum()
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
