"""From YAML text to plain Python values, keeping every node's position.

libyaml (through ruamel's C extension) composes the node tree in C with a small YAML 1.2
core-schema resolver supplied here; `build` turns nodes into plain values (times stay text),
counting the expanded size as it goes, so alias bombs and deep nesting are refused early.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    CollectionStartEvent,
    Event,
    ScalarEvent,
)
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.tag import Tag

from reconciler.diagnostic_messages import Msg, msg
from reconciler.diagnostics import FieldPath

try:
    from _ruamel_yaml import CParser  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - exercised only where the C extension is missing
    CParser = None

MAX_NODES = 20_000
MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100
"""No field takes a number longer than 20 digits; a longer one is refused before it is
converted (int() of thousands of digits is slow, and str() of them raises)."""
PRESCAN_ABOVE_BYTES = 64 * 1024
PRESCAN_ABOVE_DEPTH = 512
"""libyaml composes nodes recursively in C and its scanner does work per open level for every
token: deep input is quadratic, and tens of thousands of levels overflow the C stack (a crash,
not an exception). A file that might nest deeper than this, or is larger than the byte limit,
is first streamed as events and refused as soon as it goes too deep or too wide."""
_BLOCK_PREFIX = re.compile(r"^[ \t?:-]*", re.MULTILINE)

_T = "tag:yaml.org,2002:"
STR, INT, FLOAT, BOOL, NULL, SEQ, MAP = (
    _T + n for n in ("str", "int", "float", "bool", "null", "seq", "map")
)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|0x[0-9a-fA-F_]+)$")
_FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


_PLAIN_TEXT_START = frozenset("abcdeghijklmopqrsuvwxyzABCDEGHIJKLMOPQRSUVWXYZ_/")
"""First characters that no null, boolean or number starts with (those start with a digit,
a sign, a dot, ~, n, N, t, T, f or F), so such a plain scalar is text without any regex."""


def _resolve_plain(value: str) -> str:
    if value and (value[0] in _PLAIN_TEXT_START or ord(value[0]) > 0x7F):
        return STR
    if _NULL.match(value):
        return NULL
    if value in _BOOL:
        return BOOL
    if _INT.match(value):
        return INT
    if _FLOAT.match(value):
        return FLOAT
    return STR


_TAGS = {t: Tag(suffix=t) for t in (STR, INT, FLOAT, BOOL, NULL, SEQ, MAP)}

if CParser is not None:

    class _FastParser(CParser):  # type: ignore[misc]
        """libyaml composer with a YAML 1.2 core-schema resolver (no 1.1 booleans, no dates)."""

        def descend_resolver(self, *_: object) -> None:
            return None

        def ascend_resolver(self, *_: object) -> None:
            return None

        def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> Tag:
            # Shared Tag objects: ruamel's Node would otherwise build one per node.
            if kind is ScalarNode:
                return _TAGS[_resolve_plain(value) if implicit[0] else STR]
            return _TAGS[SEQ] if kind is SequenceNode else _TAGS[MAP]


def events(text: str) -> Iterator[Event]:
    """The parser's events, one at a time (libyaml's parser is iterative: safe at any depth)."""
    if CParser is not None:
        parser = _FastParser(text)
        while parser.check_event():
            yield parser.get_event()
        return
    yield from YAML(typ="safe", pure=True).parse(text)


def nesting_bound(text: str) -> int:
    """A cheap upper bound on how deep `text` can nest: every flow level needs a bracket, and
    a nested block collection starts further right than its parent (or one level more for a
    sequence under a key), within the run of blanks and indicators that begins its line."""
    flow = text.count("[") + text.count("{")
    block = max(map(len, _BLOCK_PREFIX.findall(text)), default=0)
    return flow + 2 * block + 2


def may_nest_deeper(text: str, depth: int) -> bool:
    """`nesting_bound(text) > depth`, without measuring every line: only whether one line
    starts with a run long enough to pass `depth` (most files are read with this, so it is
    a search that stops at the first such line, not a list of every line's run)."""
    flow = text.count("[") + text.count("{")
    room = depth - flow - 2  # what 2 × the longest run may reach without passing `depth`
    if room < 0:
        return True
    return _long_prefix(room // 2 + 1).search(text) is not None


@functools.cache
def _long_prefix(length: int) -> re.Pattern[str]:
    return re.compile(f"^[ \\t?:-]{{{length}}}", re.MULTILINE)


def prescan(text: str, max_nodes: int = MAX_NODES) -> None:
    """Stream the events and raise BuildError at the first value nested more than MAX_DEPTH
    deep or beyond `max_nodes` values; linear in the size of the file."""
    depth = nodes = 0
    for event in events(text):
        if isinstance(event, CollectionEndEvent):
            depth -= 1
        elif isinstance(event, ScalarEvent | AliasEvent | CollectionStartEvent):
            if depth > MAX_DEPTH:
                raise BuildError(event, _too_deep(), "too_deep")
            nodes += 1
            if nodes > max_nodes:
                raise BuildError(event, _too_many(max_nodes), "too_many_nodes")
            if isinstance(event, CollectionStartEvent):
                depth += 1


def compose_all(text: str) -> list[Node]:
    if CParser is not None:
        parser = _FastParser(text)
        out = []
        while parser.check_node():
            out.append(parser.get_node())
        return out
    return list(YAML(typ="safe", pure=True).compose_all(text))


class BuildError(Exception):
    """A document that parses as YAML but cannot become data (duplicate key, odd tag, ...)."""

    def __init__(self, node: Node | Event, message: str | Msg, code: str) -> None:
        super().__init__(message.en if isinstance(message, Msg) else message)
        self.message = message
        self.node = node
        self.line = node.start_mark.line + 1
        self.col = node.start_mark.column + 1
        self.code = code


def node_path(root: Node, target: Node | Event) -> FieldPath:
    """The field path of `target` (a value, or a key for its own entry) under `root`; () when
    it is the root or not found. Each node is visited once, so aliases cannot blow this up."""
    seen: set[int] = set()
    stack: list[tuple[Node, FieldPath]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node is target or id(node) in seen:
            if node is target:
                return path
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for knode, vnode in reversed(node.value):
                if not isinstance(knode, ScalarNode):
                    if knode is target:  # a list or mapping used as a key: its mapping
                        return path
                    continue
                if knode is target:
                    return (*path, str(knode.value))
                stack.append((vnode, (*path, str(knode.value))))
        elif isinstance(node, SequenceNode):
            stack.extend((child, (*path, i)) for i, child in reversed(list(enumerate(node.value))))
    return ()


def _too_many(max_nodes: int) -> Msg:
    return msg("yaml.too_many_nodes", max=f"{max_nodes:,}")


def _too_deep() -> Msg:
    return msg("yaml.too_deep", max=MAX_DEPTH)


def _tag(node: Node) -> str:
    # Our resolver hands back plain strings, kept as a Tag's suffix; str(tag) is slow.
    ctag = node.ctag
    return str(ctag.suffix) if ctag.handle is None else str(ctag)


def build(root: Node, max_nodes: int = MAX_NODES) -> Any:
    """Plain Python values from nodes. Aliases share one object, and the expanded size is
    counted as we go (memoised per node), so an alias bomb is refused in linear time."""
    memo: dict[int, Any] = {}
    sizes: dict[int, int] = {}

    def scalar(node: ScalarNode) -> Any:
        tag, value = _tag(node), node.value
        if tag == STR or tag.endswith(":timestamp"):
            return value
        if tag == NULL:
            if _NULL.match(value):
                return None
            raise BuildError(node, msg("yaml.not_null", value=value[:40]), "yaml_value")
        if tag == BOOL:
            if value in _BOOL:
                return _BOOL[value]
            raise BuildError(node, msg("yaml.not_bool", value=value[:40]), "yaml_value")
        if tag in (INT, FLOAT) and len(value) > MAX_NUMBER_CHARS:
            raise BuildError(
                node,
                msg("yaml.long_number", n=f"{len(value):,}"),
                "yaml_value",
            )
        try:
            if tag == INT:
                text = value.replace("_", "")
                if text.startswith(("0o", "0x")):
                    return int(text[2:], 8 if text[1] == "o" else 16)
                return int(text)
            if tag == FLOAT:
                number = float(value.replace("_", ""))
                if math.isinf(number):
                    raise ValueError(value)
                return number
        except ValueError:
            raise BuildError(node, msg("yaml.bad_number", value=value[:40]), "yaml_value") from None
        raise BuildError(node, msg("yaml.tag", tag=tag), "yaml_tag")

    def walk(node: Node, depth: int) -> Any:
        value, _ = walk_sized(node, depth)
        return value

    def walk_sized(node: Node, depth: int) -> tuple[Any, int]:
        if depth > MAX_DEPTH:
            raise BuildError(node, _too_deep(), "too_deep")
        if isinstance(node, ScalarNode):
            return scalar(node), 1
        key = id(node)
        if key in memo:
            if sizes[key] < 0:
                raise BuildError(node, msg("yaml.recursive"), "yaml_recursive")
            return memo[key], sizes[key]
        sizes[key] = -1
        total = 1
        tag = _tag(node)
        if tag != (SEQ if isinstance(node, SequenceNode) else MAP):
            raise BuildError(node, msg("yaml.tag", tag=tag), "yaml_tag")
        if isinstance(node, SequenceNode):
            items: list[Any] = []
            memo[key] = items
            for child in node.value:
                value, n = walk_sized(child, depth + 1)
                items.append(value)
                total += n
                if total > max_nodes:
                    raise BuildError(node, _too_many(max_nodes), "too_many_nodes")
            sizes[key] = total
            return items, total
        if isinstance(node, MappingNode):
            mapping: dict[Any, Any] = {}
            memo[key] = mapping
            # Keyed with the type: 1, 1.0 and true are equal in Python but not in YAML.
            seen: dict[tuple[type, Any], Node] = {}
            for knode, vnode in node.value:
                # A plain `<<` (libyaml gives plain scalars style "", the pure parser None).
                if _tag(knode) == _T + "merge" or (
                    isinstance(knode, ScalarNode) and knode.value == "<<" and not knode.style
                ):
                    total += merge(mapping, vnode, depth)
                    if total > max_nodes:
                        raise BuildError(node, _too_many(max_nodes), "too_many_nodes")
                    continue
                if not isinstance(knode, ScalarNode):
                    raise BuildError(
                        knode,
                        msg("yaml.key"),
                        "yaml_key",
                    )
                k = scalar(knode)
                if (type(k), k) in seen:
                    first = seen[type(k), k].start_mark.line + 1
                    raise BuildError(
                        knode,
                        msg("yaml.duplicate_key", key=k, first=first),
                        "duplicate_key",
                    )
                seen[type(k), k] = knode
                value, n = walk_sized(vnode, depth + 1)
                mapping[k] = value
                total += n + 1
                if total > max_nodes:
                    raise BuildError(node, _too_many(max_nodes), "too_many_nodes")
            sizes[key] = total
            return mapping, total
        raise BuildError(node, msg("yaml.node"), "yaml_node")

    def merge(mapping: dict[Any, Any], vnode: Node, depth: int) -> int:
        """Merge the sources' entries; returns their expanded size, which counts towards the
        mapping's (merged values are shared, not copied, but whoever reads them walks them)."""
        sources = vnode.value if isinstance(vnode, SequenceNode) else [vnode]
        size = 0
        for src in sources:
            value, n = walk_sized(src, depth + 1)
            size += n
            if not isinstance(value, dict):
                raise BuildError(src, msg("yaml.merge"), "yaml_merge")
            for k, v in value.items():
                mapping.setdefault(k, v)
        return size

    return walk(root, 0)
