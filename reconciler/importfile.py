"""The stock file of an imported stock: house style, with comments, through ruamel.yaml.

The file holds what WeChat Pay returned (`ImportedSpec`), and says so where it does not: a
comment line for each optional field the API does not return (so the reader knows it may be
set on the stock all the same), an end-of-line note on a required field whose value is only a
stand-in, and on a field a rule derives. Ids are slugs made from the stock name and stock_id.
"""

from __future__ import annotations

import io
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from reconciler.kinds import StockKind
from reconciler.kinds.adopt import ImportedSpec, field_names
from reconciler.mapping import MONEY_FIELDS
from reconciler.money import yuan

MAX_ID = 64
_PLAIN_UNSAFE = re.compile(
    r"^(?:[-+]?[0-9][0-9_.:eE+-]*|true|false|yes|no|on|off|null|~|\d{4}-\d{2}-\d{2}.*)$", re.I
)
NOT_RETURNED = "not returned by WeChat Pay; unknown at import (set it if you know it)"


def slug_id(kind: str, name: str, stock_id: str) -> str:
    """A stock id from the stock's name and stock_id: the name's ASCII letters and digits in
    lower case, hyphens between words, then the stock_id (which makes it unique); the kind
    stands in for a name with no ASCII letter (most Chinese names: "满100减10" gives
    "favor-<stock_id>", not "100-10-<stock_id>")."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    words = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if not re.search("[a-z]", words):
        words = kind
    tail = "-" + re.sub(r"[^a-z0-9]+", "-", stock_id.lower()).strip("-")
    words = words[: MAX_ID - len(tail)].rstrip("-") or kind[: MAX_ID - len(tail)]
    return (words + tail)[:MAX_ID].strip("-")


def _scalar(value: Any) -> Any:
    if isinstance(value, str) and _PLAIN_UNSAFE.match(value):
        return DoubleQuotedScalarString(value)
    return value


def _node(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = CommentedMap()
        for key, sub in value.items():
            out[key] = _node(sub)
        return out
    if isinstance(value, list):
        seq = CommentedSeq(_node(v) for v in value)
        if not any(isinstance(v, (Mapping, list)) for v in value):
            seq.fa.set_flow_style()
        return seq
    return _scalar(value)


MAX_COLUMN = 40


def _width(node: CommentedMap, key: str) -> int:
    """The length of `key: value` as the file shows it (the key alone for a mapping)."""
    value = node[key]
    if isinstance(value, CommentedMap):
        return len(key) + 1
    if isinstance(value, bool):
        shown = "true" if value else "false"
    elif isinstance(value, DoubleQuotedScalarString):
        shown = f'"{value}"'
    else:
        shown = str(value)
    return len(key) + 2 + len(shown)


def _keys_in_order(
    node: CommentedMap, path: str, depth: int
) -> list[tuple[CommentedMap, str, str, int]]:
    """(map, key, path, indent) of every key under `node`, in document order."""
    out = []
    for key, value in node.items():
        sub = f"{path}{key}"
        out.append((node, str(key), sub, depth * 2))
        if isinstance(value, CommentedMap):
            out += _keys_in_order(value, sub + ".", depth + 1)
    return out


def _add_before(node: CommentedMap, key: str, line: str, indent: int) -> None:
    node.yaml_set_comment_before_after_key(key, before=line, indent=indent)


def render_stock_file(
    kind: StockKind,
    id: str,
    merchant: str,
    stock_id: str,
    imported: ImportedSpec,
    today: str,
    schema: str | None = None,
) -> str:
    """The stock file's text for a remote stock."""
    top = CommentedMap()
    top["id"] = id
    top["kind"] = kind.name
    top["merchant"] = DoubleQuotedScalarString(merchant)
    for key, value in imported.top.items():
        top[key] = _node(value)
    spec = _node(imported.spec)
    top["spec"] = spec
    header = []
    if schema is not None:
        header += [f"yaml-language-server: $schema={schema}", ""]
    header += [
        f"{kind.label} ({kind.name}) imported from WeChat Pay: stock_id {stock_id} of merchant",
        f"{merchant}, by `reconciler import` on {today}. Every field WeChat Pay returned is",
        "written as it holds it; a field it does not return is marked `not returned`: the",
        'stock may hold a value there all the same (README, "Adopting existing stocks").',
    ]
    top.yaml_set_start_comment("\n".join(header))
    notes: dict[str, list[tuple[CommentedMap, str, str, int]]] = {}

    def note(node: CommentedMap, path: str, text: str, indent: int) -> None:
        """An end-of-line comment on the key at `path` ("" above spec)."""
        parent, _, key = path.rpartition(".")
        notes.setdefault(parent, []).append((node, key, text, indent))

    note(top, "id", "from the stock name and stock_id; rename with `reconciler state mv`", 0)
    for key, text in imported.top_notes.items():
        note(top, key, text, 0)
    note(top, "spec", "the create body, field names exactly as the API documents them", 0)
    order = _keys_in_order(spec, "", 1)
    paths = {p: (m, k, i) for m, k, p, i in order}
    for path, (node, key, indent) in paths.items():
        name = path.rsplit(".", 1)[-1]
        value = node[key]
        if path in imported.stand_ins:
            text = f"not returned by WeChat Pay: {str(value).lower()} stands in, unknown at import"
            note(node, f"spec.{path}", text, indent)
        elif path in imported.derived:
            text = f"not returned by WeChat Pay; from {imported.derived[path]} (the create requires it)"
            note(node, f"spec.{path}", text, indent)
        elif name in MONEY_FIELDS and isinstance(value, int) and not isinstance(value, bool):
            note(node, f"spec.{path}", yuan(value), indent)
    for group in notes.values():
        # One column per mapping, as the hand-written examples align their comments.
        column = min(MAX_COLUMN, max(i + _width(n, k) for n, k, _, i in group) + 2)
        for node, key, text, _ in group:
            node.yaml_add_eol_comment(text, key, column=column)
    trailing: list[str] = []
    for path in imported.unknown:
        if path in paths:
            continue
        parts = path.split(".")
        # The deepest mapping of the file above the field.
        parent, depth = spec, 1
        while len(parts) > 1 and isinstance(parent.get(parts[0]), CommentedMap):
            parent, parts, depth = parent[parts[0]], parts[1:], depth + 1
        prefix = path[: len(path) - len(".".join(parts))]
        line = f"{'.'.join(parts)}: {NOT_RETURNED}"
        names = field_names(kind.spec_model, prefix.rstrip("."))
        later = names[names.index(parts[0]) + 1 :] if parts[0] in names else []
        sibling = next((n for n in later if n in parent), None)
        if sibling is not None:
            _add_before(parent, sibling, line, depth * 2)
            continue
        # No field follows in that mapping: the comment goes before whatever follows it.
        last = max(
            (i for i, (_, _, p, _) in enumerate(order) if p.startswith(prefix)),
            default=None,
        )
        after = order[last + 1] if last is not None and last + 1 < len(order) else None
        if prefix == "" or after is None:
            trailing.append(" " * (depth * 2) + "# " + line)
        else:
            _add_before(after[0], after[1], line, depth * 2)
    out = io.StringIO()
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 100
    yaml.dump(top, out)
    text = out.getvalue()
    if trailing:
        text += "\n".join(trailing) + "\n"
    return text


def relative_schema(depth: int) -> str:
    """The schema's path from a file `depth` folders below the stocks folder."""
    return "../" * depth + "stock.schema.json"


__all__: Sequence[str] = ["relative_schema", "render_stock_file", "slug_id"]
