"""The plan as a versioned JSON document (see docs/plan-json.md). Renderers format; they never
decide: this is `Plan.to_data()` plus the plan's own checksum, pretty-printed."""

from __future__ import annotations

import json

from reconciler.plan import Plan


def render_json(plan: Plan) -> str:
    """Sorted keys, two-space indent, UTF-8 text kept as is, one trailing newline.

    `checksum` is sha256 over the compact canonical JSON of every other key of the document
    (`reconciler.plan.document_checksum`), so a consumer can tell a saved plan was edited, and
    `Plan.from_document` reads it back.
    """
    doc = plan.to_document()
    return json.dumps(doc, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
